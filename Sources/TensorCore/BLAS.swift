import CBLAS

/// Thin wrappers over OpenBLAS. Everything is row-major Float32.
///
/// A large product is cut into one slab of C's rows (or columns, when C is wider than tall) per core,
/// each a single-threaded sgemm, run on the same pool as the element-wise kernels.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C.
    /// `lda`, `ldb`, `ldc` are row strides of A, B, C as stored (before the transpose).
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false,
                            m: Int, n: Int, k: Int,
                            alpha: Float = 1,
                            _ a: UnsafePointer<Float>, lda: Int,
                            _ b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // sgemm with k = 0 only scales C; do it here so BLAS never sees a degenerate call.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            return
        }
        _ = configured
        let parts = Parallel.width
        if parts > 1 && !Parallel.busy && m * n * k >= splitThreshold && max(m, n) >= 16 * parts {
            // Along the longer side of C, so each part reads the smaller operand whole only once.
            if m >= n {
                // Rows of C: rows of op(A) (columns of A when transposed).
                Parallel.forEach(m) { r in
                    let a0 = transA ? a + r.lowerBound : a + r.lowerBound * lda
                    single(transA, transB, r.count, n, k, alpha, a0, lda, b, ldb, beta, c + r.lowerBound * ldc, ldc)
                }
            } else {
                // Columns of C: columns of op(B) (rows of B when transposed).
                Parallel.forEach(n) { r in
                    let b0 = transB ? b + r.lowerBound * ldb : b + r.lowerBound
                    single(transA, transB, m, r.count, k, alpha, a, lda, b0, ldb, beta, c + r.lowerBound, ldc)
                }
            }
            return
        }
        single(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// Products at least this large (m·n·k) are split across the cores.
    public static let splitThreshold = 1 << 17
    /// OpenBLAS runs each call on one thread and `gemm` splits large products across
    /// `Parallel.width` cores itself: one thread pool for products and element-wise kernels.
    /// (OpenBLAS's own workers spin on sched_yield between calls, taking the cores from the
    /// element-wise work: a fifth of a Transformer step.)
    static let configured: Void = { openblas_set_num_threads(1) }()

    @inline(__always)
    static func single(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += alpha · x
    @inline(__always)
    public static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        if n > 0 { cblas_saxpy(Int32(n), alpha, x, 1, y, 1) }
    }

    /// Dot product of two length-n vectors.
    public static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        n > 0 ? cblas_sdot(Int32(n), x, 1, y, 1) : 0
    }

    /// Cores one product (and every parallel kernel) uses: `Parallel.width`.
    public static var threads: Int {
        get { Parallel.width }
        set {
            _ = configured
            Parallel.width = max(1, newValue)
        }
    }

    /// The OpenBLAS build string (core type, threading model).
    public static var configuration: String { String(cString: openblas_get_config()) }
}
