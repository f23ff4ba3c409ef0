import Testing
import TensorCore

/// Naive reference: C = op(A)·op(B) in Double.
func naiveGemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float]) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = ta ? a[p * m + i] : a[i * k + p]
                let bv = tb ? b[j * k + p] : b[p * n + j]
                s += Double(av) * Double(bv)
            }
            c[i * n + j] = Float(s)
        }
    }
    return c
}

@Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
func gemmMatchesNaive(ta: Bool, tb: Bool) {
    let m = 7, n = 5, k = 9
    var rng = RNG(seed: 3)
    let a = (0..<(m * k)).map { _ in rng.uniform(-1, 1) }
    let b = (0..<(k * n)).map { _ in rng.uniform(-1, 1) }
    var c = [Float](repeating: 1, count: m * n)
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                BLAS.gemm(transA: ta, transB: tb, m: m, n: n, k: k, ap.baseAddress!, lda: ta ? m : k,
                          bp.baseAddress!, ldb: tb ? k : n, beta: 0, cp.baseAddress!, ldc: n)
            }
        }
    }
    let ref = naiveGemm(ta, tb, m, n, k, a, b)
    for i in 0..<(m * n) { #expect(abs(c[i] - ref[i]) < 1e-5) }
}

@Test func gemmAccumulatesWithBeta() {
    let a: [Float] = [1, 2, 3, 4]       // 2×2
    let b: [Float] = [1, 0, 0, 1]       // identity
    var c: [Float] = [10, 20, 30, 40]
    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
        BLAS.gemm(m: 2, n: 2, k: 2, ap.baseAddress!, lda: 2, bp.baseAddress!, ldb: 2, beta: 1, cp.baseAddress!, ldc: 2)
    } } }
    #expect(c == [11, 22, 33, 44])
}
