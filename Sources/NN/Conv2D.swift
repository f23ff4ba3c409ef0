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

    /// Row taps: with stride 1 down the rows, kernel row ki reads the unfolded rows of kernel
    /// row 0 shifted down by ki·d. So only the kernel's columns are unfolded — rows
    /// (c, kj) of R = Ho + d·(kh − 1) image rows each, a third of the full unfolding for a
    /// 3×3 kernel — and the product is kh accumulated products with K = C/g·kw, one per
    /// kernel row, each reading the columns at an offset. Each sample's span of the block
    /// then holds R − Ho rows of the product that belong to no output.
    /// (Not for a handful of input channels, where K would be a few floats: see `bench conv`.)
    var usesRowTaps: Bool { kernel.h > 1 && stride.h == 1 && inChannels / groups >= 4 }
    /// Kernel rows unfolded into the columns (1 with row taps) and products per block.
    private var unfoldedTaps: Int { usesRowTaps ? 1 : kernel.h }
    private var productTaps: Int { usesRowTaps ? kernel.h : 1 }
    /// Image rows unfolded per sample, and the step between them.
    private var unfoldedRows: Int { usesRowTaps ? outputShape[1] + dilation.h * (kernel.h - 1) : outputShape[1] }
    /// Columns per sample in a block: its output plane plus, with row taps, the rows between.
    private var span: Int { unfoldedRows * outputShape[2] }
    /// Rows per group of the unfolded columns (the K of each product).
    private var kg: Int { inChannels / groups * unfoldedTaps * kernel.w }
    /// Weight rows for product tap t: [O, K] as stored without row taps; with them, the
    /// weights regrouped as [kh][O][C/g·kw] (`tapWeight`).
    private let tapWeight = Tensor.workspace()

    /// Calls body(first sample, count) for consecutive blocks of `samples`, each unfolding
    /// into at most `blockFloats` floats.
    @inline(__always)
    private func forEachBlock(_ samples: Range<Int>, _ body: (Int, Int) -> Void) {
        let perSample = groups * kg * span
        let size = max(1, Self.blockFloats / max(perSample, 1))
        var s0 = samples.lowerBound
        while s0 < samples.upperBound {
            let nb = min(size, samples.upperBound - s0)
            body(s0, nb)
            s0 += nb
        }
    }

    /// The columns of samples s0..<s0+nb, [C/g·… rows, nb·span]: x itself for one sample of a
    /// pointwise convolution, else unfolded into the part's scratch.
    private func unfold(_ x: UnsafePointer<Float>, _ s0: Int, _ nb: Int, _ s: PartScratch) -> UnsafePointer<Float> {
        let sample = inChannels * inPlane
        if isPointwise && nb == 1 { return x + s0 * sample }
        let ld = nb * span
        s.columns.resize([groups * kg, ld])
        for i in 0..<nb { im2col(x + (s0 + i) * sample, into: s.columns.data + i * span, rowStride: ld) }
        return UnsafePointer(s.columns.data)
    }

    /// The weights each product tap multiplies by: W[O, K] itself, or regrouped by kernel row.
    private func weightsForTaps() -> UnsafePointer<Float> {
        guard usesRowTaps else { return UnsafePointer(weight.value.data) }
        tapWeight.resize([kernel.h, outChannels, inChannels / groups * kernel.w])
        let w = weight.value.data, t = tapWeight.data
        forEachTapIndex { stored, tap in t[tap] = w[stored] }
        return UnsafePointer(t)
    }

    /// body(index in [O, C/g, kh, kw], index in the row-tap layout [kh][O][C/g·kw]) for every weight.
    @inline(__always)
    private func forEachTapIndex(_ body: (Int, Int) -> Void) {
        let (o, cg, kh, kw) = (outChannels, inChannels / groups, kernel.h, kernel.w)
        for oc in 0..<o { for c in 0..<cg { for ki in 0..<kh { for kj in 0..<kw {
            body(((oc * cg + c) * kh + ki) * kw + kj, (ki * o + oc) * cg * kw + c * kw + kj)
        } } } }
    }

    // MARK: forward

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x)
        input = x
        let (o, hw, og, kk, sp) = (outChannels, outPlane, outChannels / groups, kg, span)
        let tapStep = dilation.h * outputShape[2]
        output.resize([b] + outputShape)
        let scratch = workspace.reserve(Parallel.parts(b))
        let w = weightsForTaps(), biasData = bias?.value.data, out = output.data
        Parallel.forEachPart(b) { p, samples in
            let s = scratch[p]
            forEachBlock(samples) { s0, nb in
                let ld = nb * sp, n = ld - (sp - hw)
                let cols = unfold(x.data, s0, nb, s)
                // One sample's [O, Ho·Wo] product is its NCHW output; a block's is gathered into it.
                let direct = nb == 1 && sp == hw
                if !direct { s.product.resize([o, ld]) }
                let y = direct ? out + s0 * o * hw : s.product.data
                for g in 0..<groups {
                    for t in 0..<productTaps {
                        BLAS.gemm(m: og, n: n, k: kk, w + (t * o + g * og) * kk, lda: kk,
                                  cols + g * kk * ld + t * tapStep, ldb: ld, beta: t == 0 ? 0 : 1, y + g * og * ld, ldc: ld)
                    }
                }
                for i in 0..<nb {
                    for oc in 0..<o {
                        let src = y + oc * ld + i * sp, dst = out + ((s0 + i) * o + oc) * hw
                        addBias(biasData?[oc] ?? 0, src, dst, hw)
                    }
                }
            }
        }
        return output
    }

    /// cols[(c, ki, kj), r·Wo + ox] = x[c, r·s − p + ki·d, ox·s − p + kj·d] (0 outside), for
    /// one sample [C, H, W], ki < `unfoldedTaps` and r < `unfoldedRows`; rows of the block's
    /// columns are `rowStride` apart. Runs are short (7–28 floats here), so they are copied
    /// inline rather than by memcpy/memset.
    private func im2col(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rowStride n: Int) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (rows, wo, taps) = (unfoldedRows, outputShape[2], unfoldedTaps)
        let (sh, sw) = (stride.h, stride.w)
        for ci in 0..<c {
            let plane = x + ci * h * w
            for ki in 0..<taps {
                for kj in 0..<kernel.w {
                    let row = out + ((ci * taps + ki) * kernel.w + kj) * n
                    let x0 = kj * dilation.w - padding.w
                    // Output columns lo..<hi read inside the image row; the rest are padding.
                    let lo = min(wo, max(0, (-x0 + sw - 1) / sw)), hi = max(lo, min(wo, (w - x0 + sw - 1) / sw))
                    for r in 0..<rows {
                        let iy = r * sh - padding.h + ki * dilation.h
                        let d = row + r * wo
                        if iy < 0 || iy >= h { fill(d, 0, wo); continue }
                        let src = plane + iy * w + x0
                        fill(d, 0, lo)
                        if sw == 1 { copy(d + lo, src + lo, hi - lo) } else { for ox in lo..<hi { d[ox] = src[ox * sw] } }
                        fill(d + hi, 0, wo - hi)
                    }
                }
            }
        }
    }

    // MARK: backward

    public func backward(_ grad: Tensor, needInputGrad: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2D.backward before forward") }
        let b = batchSize(grad)
        let (c, o, hw, og, kk, sp) = (inChannels, outChannels, outPlane, outChannels / groups, kg, span)
        let (taps, tapStep) = (productTaps, dilation.h * outputShape[2])
        let parts = Parallel.parts(b)
        let scratch = workspace.reserve(parts)
        if needInputGrad { inputGrad.resize(x.shape) }
        let w = usesRowTaps ? UnsafePointer(tapWeight.data) : UnsafePointer(weight.value.data)
        let dx0 = inputGrad.data, dyAll = grad.data
        Parallel.forEachPart(b) { p, samples in
            let s = scratch[p]
            // Weight gradients in the products' layout: part 0 adds straight into the
            // parameter's gradient when that is the same layout, every other into its own sums.
            var dw = weight.grad.data, db = bias?.grad.data
            if p > 0 || usesRowTaps {
                s.weightGrad.resize([weight.value.count]); s.weightGrad.zero(); dw = s.weightGrad.data
            }
            if p > 0, bias != nil { s.biasGrad.resize([o]); s.biasGrad.zero(); db = s.biasGrad.data }
            forEachBlock(samples) { s0, nb in
                let ld = nb * sp, n = ld - (sp - hw)
                // dY as [O, n] with rows `ldy` apart: one sample's NCHW gradient as it is, a
                // block's gathered into its spans (the rows between spans zero).
                var dy = UnsafePointer(dyAll + s0 * o * hw), ldy = hw
                if nb > 1 {
                    s.product.resize([o, ld])
                    let yb = s.product.data
                    for i in 0..<nb {
                        for oc in 0..<o {
                            copy(yb + oc * ld + i * sp, dyAll + ((s0 + i) * o + oc) * hw, hw)
                            fill(yb + oc * ld + i * sp + hw, 0, sp - hw)
                        }
                    }
                    dy = UnsafePointer(yb); ldy = ld
                }
                if let db { for oc in 0..<o { db[oc] += sum(dy + oc * ldy, n) } }
                let cols = unfold(x.data, s0, nb, s)
                for g in 0..<groups {
                    for t in 0..<taps {
                        BLAS.gemm(transB: true, m: og, n: kk, k: n, dy + g * og * ldy, lda: ldy,
                                  cols + g * kk * ld + t * tapStep, ldb: ld, beta: 1, dw + (t * o + g * og) * kk, ldc: kk)
                    }
                }
                guard needInputGrad else { return }
                let dx = dx0 + s0 * c * inPlane
                if isPointwise && nb == 1 {
                    for g in 0..<groups {
                        BLAS.gemm(transA: true, m: kk, n: hw, k: og, w + g * og * kk, lda: kk,
                                  dy + g * og * ldy, ldb: ldy, dx + g * kk * hw, ldc: hw)
                    }
                    return
                }
                s.gradColumns.resize([groups * kk, ld])
                let dcols = s.gradColumns.data
                // Tap 0 writes columns 0..<n; the later taps add into columns up to ld.
                if n < ld { for r in 0..<groups * kk { fill(dcols + r * ld + n, 0, ld - n) } }
                for g in 0..<groups {
                    for t in 0..<taps {
                        BLAS.gemm(transA: true, m: kk, n: n, k: og, w + (t * o + g * og) * kk, lda: kk,
                                  dy + g * og * ldy, ldb: ldy, beta: t == 0 ? 0 : 1, dcols + g * kk * ld + t * tapStep, ldc: ld)
                    }
                }
                dx.update(repeating: 0, count: nb * c * inPlane)
                for i in 0..<nb { col2im(dcols + i * sp, rowStride: ld, into: dx + i * c * inPlane) }
            }
        }
        if usesRowTaps {
            for p in 0..<parts { addTapGradient(scratch[p].weightGrad.data) }
        } else {
            for p in 1..<parts { BLAS.axpy(weight.value.count, 1, scratch[p].weightGrad.data, weight.grad.data) }
        }
        if let bias { for p in 1..<parts { BLAS.axpy(o, 1, scratch[p].biasGrad.data, bias.grad.data) } }
        return needInputGrad ? inputGrad : nil
    }

    /// weight.grad[o, c, ki, kj] += g[ki, o, c·kw + kj]: a part's sums in the row-tap layout.
    private func addTapGradient(_ g: UnsafePointer<Float>) {
        let dw = weight.grad.data
        forEachTapIndex { stored, tap in dw[stored] += g[tap] }
    }

    /// dx[c, iy, ix] += dcols[(c, ki, kj), r·Wo + ox] for one sample — the adjoint of im2col.
    private func col2im(_ src: UnsafePointer<Float>, rowStride n: Int, into dx: UnsafeMutablePointer<Float>) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (rows, wo, taps) = (unfoldedRows, outputShape[2], unfoldedTaps)
        for ci in 0..<c {
            let plane = dx + ci * h * w
            for ki in 0..<taps {
                for kj in 0..<kernel.w {
                    let row = src + ((ci * taps + ki) * kernel.w + kj) * n
                    let x0 = kj * dilation.w - padding.w
                    let lo = max(0, (-x0 + stride.w - 1) / stride.w), hi = min(wo, (w - x0 + stride.w - 1) / stride.w)
                    if hi <= lo { continue }
                    for r in 0..<rows {
                        let iy = r * stride.h - padding.h + ki * dilation.h
                        if iy < 0 || iy >= h { continue }
                        let d = plane + iy * w, sr = row + r * wo
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
        if src != UnsafePointer(dst) { copy(dst, src, n) }
        return
    }
    let v = Vec8(repeating: b)
    var i = 0
    while i + 8 <= n { dst.store8(i, src.load8(i) + v); i += 8 }
    while i < n { dst[i] = src[i] + b; i += 1 }
}

/// dst[0..<n] = src[0..<n], inline (short runs: a libc call costs more than the copy).
@inline(__always)
func copy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { dst.store8(i, src.load8(i)); i += 8 }
    while i < n { dst[i] = src[i]; i += 1 }
}

/// dst[0..<n] = v, inline.
@inline(__always)
func fill(_ dst: UnsafeMutablePointer<Float>, _ v: Float, _ n: Int) {
    var i = 0
    while i + 8 <= n { dst.store8(i, Vec8(repeating: v)); i += 8 }
    while i < n { dst[i] = v; i += 1 }
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
