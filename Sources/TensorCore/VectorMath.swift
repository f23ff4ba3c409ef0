import Glibc

/// Eight-lane exp and erfc for the element-wise kernels (softmax, GELU, cross-entropy): libm's
/// scalar calls were a fifth of a Transformer step. Accurate to a few float ulps, as the kernels
/// they replace; NaN stays NaN.
public enum VectorMath {

    /// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r from its degree-7 Taylor-like minimax polynomial
    /// (Cephes' coefficients), 2^n written into the exponent. Below −87.3 the result is 0 (masked
    /// scores are −∞), above 88.4 it is +∞.
    @inlinable @inline(__always)
    public static func exp(_ x: Vec8) -> Vec8 {
        let log2e = Vec8(repeating: 1.442695040888963)
        // ln 2 in two parts, so n·ln2 is exact in the first (Cody–Waite reduction).
        let ln2Hi = Vec8(repeating: 0.693359375), ln2Lo = Vec8(repeating: -2.12194440e-4)
        let magic = Vec8(repeating: 12582912)
        let expMax = Vec8(repeating: 88.3762626647949), expMin = Vec8(repeating: -87.3365478515625)
        var v = x.replacing(with: expMin, where: x .< expMin)
        v.replace(with: expMax, where: v .> expMax)
        // Round to nearest by adding 1.5·2²³ (the integer lands in the low mantissa bits).
        let shifted = v * log2e + magic
        let n = shifted - magic
        let r = v - n * ln2Hi - n * ln2Lo
        var p = Vec8(repeating: 1.9875691500e-4)
        p = p * r + Vec8(repeating: 1.3981999507e-3)
        p = p * r + Vec8(repeating: 8.3334519073e-3)
        p = p * r + Vec8(repeating: 4.1665795894e-2)
        p = p * r + Vec8(repeating: 1.6666665459e-1)
        p = p * r + Vec8(repeating: 5.0000001201e-1)
        p = p * (r * r) + r + Vec8(repeating: 1)
        let k = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((k &+ 127) &<< 23, to: Vec8.self)
        var y = p * scale
        y.replace(with: 0, where: x .< expMin)
        y.replace(with: .infinity, where: x .> expMax)
        y.replace(with: x, where: x .!= x)
        return y
    }

    /// erfc(x) with relative error below 1.2e-7 everywhere (the Chebyshev fit of Numerical
    /// Recipes' erfcc): t = 1/(1 + |x|/2), erfc(|x|) = t·e^(−x² + P(t)); erfc(−x) = 2 − erfc(x).
    /// Relative accuracy in the tail is what GELU's 0.5·z·erfc(−z/√2) needs for negative z.
    @inlinable @inline(__always)
    public static func erfc(_ x: Vec8) -> Vec8 {
        let z = x.replacing(with: -x, where: x .< 0)
        let t = Vec8(repeating: 1) / (Vec8(repeating: 1) + Vec8(repeating: 0.5) * z)
        var p = Vec8(repeating: 0.17087277)
        p = p * t + Vec8(repeating: -0.82215223)
        p = p * t + Vec8(repeating: 1.48851587)
        p = p * t + Vec8(repeating: -1.13520398)
        p = p * t + Vec8(repeating: 0.27886807)
        p = p * t + Vec8(repeating: -0.18628806)
        p = p * t + Vec8(repeating: 0.09678418)
        p = p * t + Vec8(repeating: 0.37409196)
        p = p * t + Vec8(repeating: 1.00002368)
        p = p * t + Vec8(repeating: -1.26551223)
        let r = t * exp(p - z * z)
        return r.replacing(with: Vec8(repeating: 2) - r, where: x .< 0)
    }

    /// Lanes 0..<n of p as a vector, the rest `fill` (for the tail of a row).
    @inlinable @inline(__always)
    public static func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float) -> Vec8 {
        var v = Vec8(repeating: fill)
        for i in 0..<min(n, 8) { v[i] = p[i] }
        return v
    }

    /// row[j] = e^(row[j] − max) / Σ for j < n, in place (softmax of one row). A row of −∞ becomes
    /// zeros (a query with nothing to attend to).
    public static func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
        let m = maximum(row, n)
        var j = 0
        if m == -.infinity { row.update(repeating: 0, count: n); return }
        let mv = Vec8(repeating: m)
        var sum = Vec8(repeating: 0)
        j = 0
        while j + 8 <= n { let e = exp(row.load8(j) - mv); row.store8(j, e); sum += e; j += 8 }
        var s: Float = 0
        for l in 0..<8 { s += sum[l] }
        if j < n {
            let e = exp(loadPartial(row + j, n - j, fill: -.infinity) - mv)
            for i in 0..<(n - j) { row[j + i] = e[i]; s += e[i] }
        }
        let inv = Vec8(repeating: 1 / s)
        j = 0
        while j + 8 <= n { row.store8(j, row.load8(j) * inv); j += 8 }
        while j < n { row[j] *= inv[0]; j += 1 }
    }

    /// max_j row[j] for j < n (−∞ for an empty row).
    @inlinable
    public static func maximum(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
        var mx = Vec8(repeating: -.infinity)
        var j = 0
        while j + 8 <= n { let v = row.load8(j); mx.replace(with: v, where: v .> mx); j += 8 }
        var m = -Float.infinity
        for l in 0..<8 where mx[l] > m { m = mx[l] }
        while j < n { if row[j] > m { m = row[j] }; j += 1 }
        return m
    }

    /// log Σ_j e^row[j], shifted by the maximum.
    public static func logSumExp(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = maximum(row, n)
        let mv = Vec8(repeating: m)
        var sum = Vec8(repeating: 0)
        var j = 0
        while j + 8 <= n { sum += exp(row.load8(j) - mv); j += 8 }
        if j < n { sum += exp(loadPartial(row + j, n - j, fill: -.infinity) - mv) }
        var s: Float = 0
        for l in 0..<8 { s += sum[l] }
        return m + logf(s)
    }

    /// out[j] = (e^(row[j] − shift) − offset) · scale for j < n (a softmax gradient row).
    public static func expShifted(_ row: UnsafePointer<Float>, _ n: Int, shift: Float, offset: Float, scale: Float,
                                  into out: UnsafeMutablePointer<Float>) {
        let sv = Vec8(repeating: shift), ov = Vec8(repeating: offset), kv = Vec8(repeating: scale)
        var j = 0
        while j + 8 <= n { out.store8(j, (exp(row.load8(j) - sv) - ov) * kv); j += 8 }
        if j < n {
            let v = (exp(loadPartial(row + j, n - j, fill: 0) - sv) - ov) * kv
            for l in 0..<(n - j) { out[j + l] = v[l] }
        }
    }

    /// σ(x) = 1/(1 + e^−x).
    @inlinable @inline(__always)
    public static func sigmoid(_ x: Vec8) -> Vec8 { Vec8(repeating: 1) / (Vec8(repeating: 1) + exp(-x)) }

    /// tanh(x) = 1 − 2/(e^2x + 1): absolute error a few 1e-8 (relative near 0 no better than that).
    @inlinable @inline(__always)
    public static func tanh(_ x: Vec8) -> Vec8 {
        Vec8(repeating: 1) - Vec8(repeating: 2) / (exp(x + x) + Vec8(repeating: 1))
    }

    /// Lanes 0..<n of v into p (a row's tail).
    @inlinable @inline(__always)
    public static func storePartial(_ v: Vec8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<min(n, 8) { p[i] = v[i] }
    }
}

/// Eight-lane access to a row of any length: full vectors, then a zero-padded tail.
extension UnsafeMutablePointer where Pointee == Float {
    @inlinable @inline(__always) public func load8(_ i: Int, upTo n: Int) -> Vec8 {
        i + 8 <= n ? load8(i) : VectorMath.loadPartial(UnsafePointer(self) + i, n - i, fill: 0)
    }
    @inlinable @inline(__always) public func store8(_ i: Int, _ v: Vec8, upTo n: Int) {
        if i + 8 <= n { store8(i, v) } else { VectorMath.storePartial(v, self + i, n - i) }
    }
}
