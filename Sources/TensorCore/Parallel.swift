import Glibc

/// Splits loops across the cores: element-wise kernels, im2col, pooling, per-head attention,
/// and the slabs of large BLAS products (BLAS.gemm), all on one pool of threads (ThreadPool).
/// A loop's partition depends only on n, grain and `width`, never on who else is running, so
/// results are the same bits whether its parts ran in parallel or one after another.
public enum Parallel {
    /// Worker count: the online cores (the training process owns the machine, or its share of
    /// it through OPENBLAS_NUM_THREADS, which launchers set per worker).
    public nonisolated(unsafe) static var width: Int = {
        if let e = getenv("OPENBLAS_NUM_THREADS"), let n = Int(String(cString: e)), n >= 1 { return n }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }()

    /// Calls `body` on disjoint ranges covering 0..<n, in parallel when each part would get at
    /// least `grain` items. Blocks until all parts are done.
    @inline(__always)
    public static func forEach(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(width, n / max(grain, 1))
        if parts <= 1 || busy { body(0..<n); return }
        dispatch(parts) { p in body((p * n / parts)..<((p + 1) * n / parts)) }
    }

    /// How many parts `forEachPart` splits n items into: one per core, at most one per item.
    public static func parts(_ n: Int) -> Int { max(1, min(width, n)) }

    /// Calls `body(part, range)` for part 0..<parts(n), each on its own disjoint range of 0..<n,
    /// so a kernel can give each part its own scratch and partial sums. The partition is fixed
    /// by n and `width`: inside another parallel loop the parts run one after another here,
    /// with the same ranges (and so the same bits).
    @inline(__always)
    public static func forEachPart(_ n: Int, _ body: (Int, Range<Int>) -> Void) {
        let parts = parts(n)
        let range = { (p: Int) in (p * n / parts)..<((p + 1) * n / parts) }
        if parts == 1 || busy { for p in 0..<parts { body(p, range(p)) }; return }
        dispatch(parts) { p in body(p, range(p)) }
    }

    /// part(0..<parts) on the pool, or one after another here when another loop holds it.
    @inline(__always)
    private static func dispatch(_ parts: Int, _ part: (Int) -> Void) {
        withoutActuallyEscaping(part) { part in
            if !pool.run(parts, part) { for p in 0..<parts { part(p) } }
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
            forEach(parts) { ps in
                for p in ps { res[p] = body((p * n / parts)..<((p + 1) * n / parts)) }
            }
        }
        return results.reduce(0, +)
    }

    /// Whether this thread is running a part of a parallel loop: nested loops (a BLAS product
    /// inside the loop over attention heads) then run serially in their part instead of
    /// oversubscribing the cores. Per thread, so concurrent callers never change each other's
    /// strategy (or bits).
    public static var busy: Bool { pthread_getspecific(insideKey) != nil }

    static func markInside(_ inside: Bool) { pthread_setspecific(insideKey, inside ? marker : nil) }

    private static let insideKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()
    private static let marker = UnsafeMutableRawPointer(bitPattern: 1)
    private static let pool = ThreadPool(helpers: max(width - 1, 0))
}
