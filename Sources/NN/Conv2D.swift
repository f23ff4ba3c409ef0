import TensorCore

/// 2-D convolution over NCHW tensors, as `torch.nn.Conv2d`: stride, zero padding, dilation and
/// groups (grouped and depthwise convolutions). Weight `[out, in/groups, kh, kw]`, bias `[out]`.
///
/// The whole batch is unfolded at once (im2col) so each group is one sgemm:
///
///     cols[K, B·Ho·Wo]      K = in/groups · kh · kw   (1×1, stride 1, no padding: a plain copy)
///     Y[O/g, B·Ho·Wo]       = W_g[O/g, K] · cols_g                      (forward)
///     dW_g[O/g, K]         += dY_g · cols_gᵀ                            (backward, weights)
///     dcols_g[K, B·Ho·Wo]   = W_gᵀ · dY_g, folded back into dx (col2im) (backward, input)
///
/// Y is gathered from and scattered to NCHW with contiguous Ho·Wo copies.
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
    /// The unfolded input, kept for backward (training); evaluation uses the shared workspace.
    private let trainingColumns = Tensor.workspace()
    private let workspace: Workspace
    private var cols: Tensor
    private let y = Tensor.workspace()        // [O, B·Ho·Wo]
    private let output = Tensor.workspace()
    private let dy = Tensor.workspace()
    private let dcols = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public struct ShapeError: Error, CustomStringConvertible { public let description: String }

    public init(inputShape: [Int], workspace: Workspace = Workspace(), outChannels: Int, kernel: (Int, Int),
                stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                groups: Int = 1, bias: Bool = true) throws {
        self.workspace = workspace
        cols = trainingColumns
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

    // MARK: forward

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x)
        input = x
        cols = training ? trainingColumns : workspace.columns
        let (ho, wo) = (outputShape[1], outputShape[2])
        let n = b * ho * wo
        cols.resize([inChannels * kernel.h * kernel.w, n])
        im2col(x.data, b)
        y.resize([outChannels, n])
        let og = outChannels / groups, kk = k
        for g in 0..<groups {
            BLAS.gemm(m: og, n: n, k: kk, weight.value.data + g * og * kk, lda: kk,
                      cols.data + g * kk * n, ldb: n, y.data + g * og * n, ldc: n)
        }
        // [O, B, Ho·Wo] → [B, O, Ho·Wo], adding the bias on the way.
        output.resize([b] + outputShape)
        let hw = ho * wo
        let biasData = bias?.value.data
        Parallel.forEach(outChannels, grain: max(1, 32768 / max(n, 1))) { channels in
        for o in channels {
            let bv = biasData?[o] ?? 0
            for bi in 0..<b {
                let src = y.data + o * n + bi * hw
                let dst = output.data + (bi * outChannels + o) * hw
                if bv == 0 { dst.update(from: src, count: hw) } else { for i in 0..<hw { dst[i] = src[i] + bv } }
            }
        }
        }
        return output
    }

    /// cols[(c, ki, kj), (b, oy, ox)] = x[b, c, oy·s − p + ki·d, ox·s − p + kj·d] (0 outside).
    private func im2col(_ x: UnsafePointer<Float>, _ b: Int) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        let hw = ho * wo, n = b * hw
        let out = cols.data
        if isPointwise {
            for ci in 0..<c { for bi in 0..<b { (out + ci * n + bi * hw).update(from: x + (bi * c + ci) * h * w, count: hw) } }
            return
        }
        let work = c * kernel.h * kernel.w
        Parallel.forEach(work, grain: max(1, 16384 / max(n, 1))) { rows in
        for r in rows {
            let ci = r / (kernel.h * kernel.w), ki = (r / kernel.w) % kernel.h, kj = r % kernel.w
            let row = out + ((ci * kernel.h + ki) * kernel.w + kj) * n
            for bi in 0..<b {
                let plane = x + (bi * c + ci) * h * w
                let dst = row + bi * hw
                for oy in 0..<ho {
                    let iy = oy * stride.h - padding.h + ki * dilation.h
                    let d = dst + oy * wo
                    if iy < 0 || iy >= h { d.update(repeating: 0, count: wo); continue }
                    let src = plane + iy * w
                    let x0 = kj * dilation.w - padding.w
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
        let (ho, wo) = (outputShape[1], outputShape[2])
        let hw = ho * wo, n = b * hw
        // [B, O, Ho·Wo] → [O, B·Ho·Wo]; the bias gradient is the sum of each row.
        dy.resize([outChannels, n])
        let db = bias?.grad.data
        Parallel.forEach(outChannels, grain: max(1, 32768 / max(n, 1))) { channels in
            for o in channels {
                for bi in 0..<b {
                    (self.dy.data + o * n + bi * hw).update(from: grad.data + (bi * self.outChannels + o) * hw, count: hw)
                }
                if let db { db[o] += sum(self.dy.data + o * n, n) }
            }
        }
        let og = outChannels / groups, kk = k
        for g in 0..<groups {
            BLAS.gemm(transB: true, m: og, n: kk, k: n, dy.data + g * og * n, lda: n,
                      cols.data + g * kk * n, ldb: n, beta: 1, weight.grad.data + g * og * kk, ldc: kk)
        }
        guard needInputGrad else { return nil }
        dcols.resize([inChannels * kernel.h * kernel.w, n])
        for g in 0..<groups {
            BLAS.gemm(transA: true, m: kk, n: n, k: og, weight.value.data + g * og * kk, lda: kk,
                      dy.data + g * og * n, ldb: n, dcols.data + g * kk * n, ldc: n)
        }
        inputGrad.resize(x.shape)
        inputGrad.zero()
        col2im(inputGrad.data, b)
        return inputGrad
    }

    /// dx[b, c, iy, ix] += dcols[(c, ki, kj), (b, oy, ox)] — the adjoint of im2col.
    private func col2im(_ dx: UnsafeMutablePointer<Float>, _ b: Int) {
        let (c, h, w) = (inChannels, inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        let hw = ho * wo, n = b * hw
        let src = dcols.data
        if isPointwise {
            for ci in 0..<c { for bi in 0..<b { (dx + (bi * c + ci) * h * w).update(from: src + ci * n + bi * hw, count: hw) } }
            return
        }
        Parallel.forEach(c, grain: max(1, 16384 / max(n * kernel.h * kernel.w, 1))) { channels in
        for ci in channels {
            for ki in 0..<kernel.h {
                for kj in 0..<kernel.w {
                    let row = src + ((ci * kernel.h + ki) * kernel.w + kj) * n
                    for bi in 0..<b {
                        let plane = dx + (bi * c + ci) * h * w
                        let s = row + bi * hw
                        for oy in 0..<ho {
                            let iy = oy * stride.h - padding.h + ki * dilation.h
                            if iy < 0 || iy >= h { continue }
                            let d = plane + iy * w
                            let x0 = kj * dilation.w - padding.w
                            let sr = s + oy * wo
                            let lo = max(0, (-x0 + stride.w - 1) / stride.w), hi = min(wo, (w - x0 + stride.w - 1) / stride.w)
                            if hi <= lo { continue }
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
