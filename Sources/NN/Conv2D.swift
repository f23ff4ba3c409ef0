import TensorCore

/// 2-D convolution over NCHW tensors, as `torch.nn.Conv2d`: stride, zero padding, dilation and
/// groups (grouped and depthwise convolutions). Weight `[out, in/groups, kh, kw]`, bias `[out]`.
///
/// The batch is split into one run of samples per core (`Parallel.forEachPart`), and each core
/// unfolds a block of nb samples at a time (im2col) into its own scratch, sized to stay in its
/// L2 cache, so every product reads its operands from cache and both cores are busy in the
/// unfolding as well as in the (one-thread) sgemm:
///
///     cols[K, nb·Ho·Wo]      K = in/groups · kh · kw   (1×1, stride 1, no padding, nb = 1: x itself)
///     Y[O/g, nb·Ho·Wo]       = W_g[O/g, K] · cols_g                     (forward; nb = 1: Y is the NCHW output)
///     dW_g[O/g, K]          += dY_g · cols_gᵀ                           (backward, weights; cols unfolded again)
///     dcols_g[K, nb·Ho·Wo]   = W_gᵀ · dY_g, folded back into dx (col2im) (backward, input)
///
/// Nothing is kept between forward and backward but the input: unfolding again costs less than
/// reading the whole unfolded batch back from memory. Each core adds its weight and bias
/// gradients into its own sums, added to the parameters' in part order, so the result depends
/// only on the batch and the core count.
public final class Conv2D: Layer {
    public let inChannels, outChannels: Int
    public let kernel: (h: Int, w: Int)
    public let stride: (h: Int, w: Int)
    public let padding: (h: Int, w: Int)
    public let dilation: (h: Int, w: Int)
    public let groups: Int
    public let inputShape: [Int]      // [C, H, W]
    public let outputShape: [Int]     // [O, Ho, Wo]
    public let weight: Parameter
    public let bias: Parameter?
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    private var input: Tensor?
    private let workspace: Workspace
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    /// A block's unfolded columns stay within this many floats (256 KB, a quarter of a core's
    /// L2), so its products read them from cache.
    static let blockFloats = 1 << 16

    public struct ShapeError: Error, CustomStringConvertible { public let description: String }

    public init(inputShape: [Int], workspace: Workspace = Workspace(), outChannels: Int, kernel: (Int, Int),
                stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                groups: Int = 1, bias: Bool = true) throws {
        self.workspace = workspace
        guard inputShape.count == 3 else {
            throw ShapeError(description: "conv2d needs a [channels, height, width] input, got per-sample shape \(inputShape)")
        }
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        guard groups >= 1, c % groups == 0, outChannels % groups == 0 else {
            throw ShapeError(description: "conv2d: in channels (\(c)) and out channels (\(outChannels)) must both be divisible by groups (\(groups))")
        }
        let ho = (h + 2 * padding.0 - dilation.0 * (kernel.0 - 1) - 1) / stride.0 + 1
        let wo = (w + 2 * padding.1 - dilation.1 * (kernel.1 - 1) - 1) / stride.1 + 1
        guard ho >= 1, wo >= 1, h + 2 * padding.0 >= dilation.0 * (kernel.0 - 1) + 1,
              w + 2 * padding.1 >= dilation.1 * (kernel.1 - 1) + 1 else {
            throw ShapeError(description: "conv2d: kernel \(kernel.0)×\(kernel.1) (dilation \(dilation.0)×\(dilation.1)) is larger than the padded input \(h + 2 * padding.0)×\(w + 2 * padding.1)")
        }
        inChannels = c
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.inputShape = inputShape
        outputShape = [outChannels, ho, wo]
        // PyTorch's default: kaiming_uniform(a=√5) → U(±1/√fan_in) for weight and bias.
        let fanIn = Float(c / groups * kernel.0 * kernel.1)
        let bound = 1 / fanIn.squareRoot()
        weight = Parameter("weight", shape: [outChannels, c / groups, kernel.0, kernel.1], initializer: .uniform(bound))
        self.bias = bias ? Parameter("bias", shape: [outChannels], initializer: .uniform(bound)) : nil
    }

    var k: Int { inChannels / groups * kernel.h * kernel.w }
    var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && padding == (0, 0)
    }
    private var outPlane: Int { outputShape[1] * outputShape[2] }
    private var inPlane: Int { inputShape[1] * inputShape[2] }

    /// Calls body(first sample, count) for consecutive blocks of `samples`, each unfolding
    /// into at most `blockFloats` floats.
    @inline(__always)
    private func forEachBlock(_ samples: Range<Int>, _ body: (Int, Int) -> Void) {
        let perSample = inChannels * kernel.h * kernel.w * outPlane
        let size = max(1, Self.blockFloats / max(perSample, 1))
        var s0 = samples.lowerBound
        while s0 < samples.upperBound {
            let nb = min(size, samples.upperBound - s0)
            body(s0, nb)
            s0 += nb
        }
    }

    /// The columns of samples s0..<s0+nb: x itself for one sample of a pointwise convolution,
    /// else unfolded into the part's scratch.
    private func unfold(_ x: UnsafePointer<Float>, _ s0: Int, _ nb: Int, _ s: PartScratch) -> UnsafePointer<Float> {
        let sample = inChannels * inPlane
        if isPointwise && nb == 1 { return x + s0 * sample }
        let n = nb * outPlane
        s.columns.resize([inChannels * kernel.h * kernel.w, n])
        for i in 0..<nb { im2col(x + (s0 + i) * sample, into: s.columns.data + i * outPlane, rowStride: n) }
        return UnsafePointer(s.columns.data)
    }

    // MARK: forward

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x)
        input = x
        let (o, hw, og, kk) = (outChannels, outPlane, outChannels / groups, k)
        output.resize([b] + outputShape)
        let scratch = workspace.reserve(Parallel.parts(b))
        let w = weight.value.data, biasData = bias?.value.data, out = output.data
        Parallel.forEachPart(b) { p, samples in
            let s = scratch[p]
            forEachBlock(samples) { s0, nb in
                let n = nb * hw
                let cols = unfold(x.data, s0, nb, s)
                // One sample's [O, Ho·Wo] product is its NCHW output; a block's is gathered into it.
                if nb > 1 { s.product.resize([o, n]) }
                let y = nb == 1 ? out + s0 * o * hw : s.product.data
                for g in 0..<groups {
                    BLAS.gemm(m: og, n: n, k: kk, w + g * og * kk, lda: kk, cols + g * kk * n, ldb: n, y + g * og * n, ldc: n)
                }
                for i in 0..<nb {
                    for oc in 0..<o {
                        let src = y + oc * n + i * hw, dst = out + ((s0 + i) * o + oc) * hw
                        addBias(biasData?[oc] ?? 0, src, dst, hw)
                    }
                }
            }
        }
        return output
    }

    /// cols[(c, ki, kj), oy·Wo + ox] = x[c, oy·s − p + ki·d, ox·s − p + kj·d] (0 outside), for
    /// one sample [C, H, W]; rows of the block's columns are `rowStride` apart.
    private func im2col(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rowStride n: Int) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        for ci in 0..<c {
            let plane = x + ci * h * w
            for ki in 0..<kernel.h {
                for kj in 0..<kernel.w {
                    let row = out + ((ci * kernel.h + ki) * kernel.w + kj) * n
                    let x0 = kj * dilation.w - padding.w
                    for oy in 0..<ho {
                        let iy = oy * stride.h - padding.h + ki * dilation.h
                        let d = row + oy * wo
                        if iy < 0 || iy >= h { d.update(repeating: 0, count: wo); continue }
                        let src = plane + iy * w
                        if stride.w == 1 {
                            // Contiguous run: zeros, a copy, zeros.
                            let lo = max(0, -x0), hi = min(wo, w - x0)
                            if lo > 0 { d.update(repeating: 0, count: min(lo, wo)) }
                            if hi > lo { (d + lo).update(from: src + x0 + lo, count: hi - lo) }
                            if hi < wo { (d + max(hi, lo)).update(repeating: 0, count: wo - max(hi, lo)) }
                        } else {
                            for ox in 0..<wo {
                                let ix = ox * stride.w + x0
                                d[ox] = ix >= 0 && ix < w ? src[ix] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: backward

    public func backward(_ grad: Tensor, needInputGrad: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2D.backward before forward") }
        let b = batchSize(grad)
        let (c, o, hw, og, kk) = (inChannels, outChannels, outPlane, outChannels / groups, k)
        let parts = Parallel.parts(b)
        let scratch = workspace.reserve(parts)
        if needInputGrad { inputGrad.resize(x.shape) }
        let w = weight.value.data, dx0 = inputGrad.data, dyAll = grad.data
        Parallel.forEachPart(b) { p, samples in
            let s = scratch[p]
            // Part 0 adds into the parameters' gradients, the others into their own sums.
            var dw = weight.grad.data, db = bias?.grad.data
            if p > 0 {
                s.weightGrad.resize([weight.value.count]); s.weightGrad.zero(); dw = s.weightGrad.data
                if bias != nil { s.biasGrad.resize([o]); s.biasGrad.zero(); db = s.biasGrad.data }
            }
            forEachBlock(samples) { s0, nb in
                let n = nb * hw
                // dY as [O, nb·Ho·Wo]: one sample's NCHW gradient as it is, a block's gathered.
                var dy = UnsafePointer(dyAll + s0 * o * hw)
                if nb > 1 {
                    s.product.resize([o, n])
                    for i in 0..<nb {
                        for oc in 0..<o { (s.product.data + oc * n + i * hw).update(from: dyAll + ((s0 + i) * o + oc) * hw, count: hw) }
                    }
                    dy = UnsafePointer(s.product.data)
                }
                if let db { for oc in 0..<o { db[oc] += sum(dy + oc * n, n) } }
                let cols = unfold(x.data, s0, nb, s)
                for g in 0..<groups {
                    BLAS.gemm(transB: true, m: og, n: kk, k: n, dy + g * og * n, lda: n,
                              cols + g * kk * n, ldb: n, beta: 1, dw + g * og * kk, ldc: kk)
                }
                guard needInputGrad else { return }
                let dx = dx0 + s0 * c * inPlane
                if isPointwise && nb == 1 {
                    for g in 0..<groups {
                        BLAS.gemm(transA: true, m: kk, n: hw, k: og, w + g * og * kk, lda: kk,
                                  dy + g * og * n, ldb: n, dx + g * kk * hw, ldc: hw)
                    }
                    return
                }
                s.gradColumns.resize([c * kernel.h * kernel.w, n])
                let dcols = s.gradColumns.data
                for g in 0..<groups {
                    BLAS.gemm(transA: true, m: kk, n: n, k: og, w + g * og * kk, lda: kk,
                              dy + g * og * n, ldb: n, dcols + g * kk * n, ldc: n)
                }
                dx.update(repeating: 0, count: nb * c * inPlane)
                for i in 0..<nb { col2im(dcols + i * hw, rowStride: n, into: dx + i * c * inPlane) }
            }
        }
        for p in 1..<parts {
            BLAS.axpy(weight.value.count, 1, scratch[p].weightGrad.data, weight.grad.data)
            if let bias { BLAS.axpy(o, 1, scratch[p].biasGrad.data, bias.grad.data) }
        }
        return needInputGrad ? inputGrad : nil
    }

    /// dx[c, iy, ix] += dcols[(c, ki, kj), oy·Wo + ox] for one sample — the adjoint of im2col.
    private func col2im(_ src: UnsafePointer<Float>, rowStride n: Int, into dx: UnsafeMutablePointer<Float>) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        for ci in 0..<c {
            let plane = dx + ci * h * w
            for ki in 0..<kernel.h {
                for kj in 0..<kernel.w {
                    let row = src + ((ci * kernel.h + ki) * kernel.w + kj) * n
                    let x0 = kj * dilation.w - padding.w
                    let lo = max(0, (-x0 + stride.w - 1) / stride.w), hi = min(wo, (w - x0 + stride.w - 1) / stride.w)
                    if hi <= lo { continue }
                    for oy in 0..<ho {
                        let iy = oy * stride.h - padding.h + ki * dilation.h
                        if iy < 0 || iy >= h { continue }
                        let d = plane + iy * w, sr = row + oy * wo
                        if stride.w == 1 {
                            let dd = d + x0
                            for ox in lo..<hi { dd[ox] += sr[ox] }
                        } else {
                            for ox in lo..<hi { d[ox * stride.w + x0] += sr[ox] }
                        }
                    }
                }
            }
        }
    }

    /// 2·(C_in/groups)·C_out·kh·kw per output position (seed table: Conv 2·C_in·C_out·f²·H_out·W_out).
    public var flops: Int {
        2 * (inChannels / groups) * outChannels * kernel.h * kernel.w * outputShape[1] * outputShape[2]
    }

    /// The convolution sum written out: y[o, oy, ox] = b[o] + Σ W[o, ic, ky, kx]·x[g·C/g + ic, iy, ix].
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (o, ho, wo) = (outputShape[0], outputShape[1], outputShape[2])
        let cg = c / groups, og = o / groups
        let wt = r.value(weight), bs = bias.map(r.value)
        var y = [Double](repeating: 0, count: b * o * ho * wo)
        for i in 0..<b { for oc in 0..<o { for oy in 0..<ho { for ox in 0..<wo {
            var s = bs?[oc] ?? 0
            let g = oc / og
            for ic in 0..<cg { for ky in 0..<kernel.h { for kx in 0..<kernel.w {
                let iy = oy * stride.h - padding.h + ky * dilation.h
                let ix = ox * stride.w - padding.w + kx * dilation.w
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                s += wt[((oc * cg + ic) * kernel.h + ky) * kernel.w + kx] * x[((i * c + g * cg + ic) * h + iy) * w + ix]
            } } }
            y[((i * o + oc) * ho + oy) * wo + ox] = s
        } } } }
        return y
    }

    /// `{type: conv2d, out: 32, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1, bias: true}`
    /// (kernel, stride, padding and dilation: an integer or [height, width]).
    static let kinds = [
        LayerKind("conv2d") { r, c in
            try Conv2D(inputShape: c.inputShape, workspace: c.workspace, outChannels: try r.requiredInt("out", min: 1),
                       kernel: try r.pair("kernel", default: nil, min: 1), stride: try r.pair("stride", default: 1, min: 1),
                       padding: try r.pair("padding", default: 0, min: 0), dilation: try r.pair("dilation", default: 1, min: 1),
                       groups: try r.int("groups", default: 1, min: 1), bias: try r.bool("bias", default: true))
        },
    ]
}

/// dst[0..<n] = src[0..<n] + b (src may be dst).
@inline(__always)
func addBias(_ b: Float, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    if b == 0 {
        if src != UnsafePointer(dst) { dst.update(from: src, count: n) }
        return
    }
    let v = Vec8(repeating: b)
    var i = 0
    while i + 8 <= n { dst.store8(i, src.load8(i) + v); i += 8 }
    while i < n { dst[i] = src[i] + b; i += 1 }
}

/// Σ p[0..<n], eight lanes at a time.
@inline(__always)
func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec8(repeating: 0)
    var i = 0
    while i + 8 <= n { acc += p.load8(i); i += 8 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}
