import Dispatch
import Glibc

/// Splits loops that are not BLAS calls (im2col, pooling, element-wise kernels) across the
/// cores, which would otherwise idle while one thread does them.
public enum Parallel {
    /// Worker count: the online cores (the training process owns the machine, or its share of
    /// it through OPENBLAS_NUM_THREADS, which launchers set per worker).
    public static let width: Int = {
        if let e = getenv("OPENBLAS_NUM_THREADS"), let n = Int(String(cString: e)), n >= 1 { return n }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }()

    /// Calls `body` on disjoint ranges covering 0..<n, in parallel when each part would get at
    /// least `grain` items. Blocks until all parts are done.
    @inline(__always)
    public static func forEach(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(width, n / max(grain, 1))
        if parts <= 1 { body(0..<n); return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((p * n / parts)..<((p + 1) * n / parts))
        }
    }

    /// Σ of `body` over disjoint ranges covering 0..<n, computed as `forEach` splits them and
    /// added in range order (so the result depends only on n, grain and the core count).
    @inline(__always)
    public static func sum(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Double) -> Double {
        let parts = min(width, n / max(grain, 1))
        if parts <= 1 { return body(0..<n) }
        var results = [Double](repeating: 0, count: parts)
        results.withUnsafeMutableBufferPointer { res in
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                res[p] = body((p * n / parts)..<((p + 1) * n / parts))
            }
        }
        return results.reduce(0, +)
    }
}
