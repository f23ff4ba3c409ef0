import TensorCore

/// Batch normalisation (`torch.nn.BatchNorm1d/2d`): each channel is normalised over the batch
/// and spatial positions with the batch's statistics in training, and with running averages
/// (momentum as PyTorch: running ← (1−m)·running + m·batch, variance unbiased) in evaluation.
///
/// x[B, C, (H, W)] → y = γ·x̂ + β,  x̂ = (x − μ_c)/√(σ²_c + ε)
/// backward: dx = γ/(σ·N) · (N·dy − Σdy − x̂·Σ(dy·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy   (sums per channel)
public final class BatchNorm: Layer {
    public let channels: Int
    public let outputShape: [Int]
    public let eps: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Buffer
    public let runningVar: Buffer
    public let batchesTracked: Buffer
    public var parameters: [Parameter] { [weight, bias] }
    public var buffers: [Buffer] { [runningMean, runningVar, batchesTracked] }

    private var spatial: Int { outputShape.dropFirst().reduce(1, *) }
    private let xhat = Tensor.workspace()
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private var invStd: [Float]
    /// Evaluation mode normalises with constants, so its backward is a per-channel scale.
    private var lastTraining = true
    /// SyncBatchNorm: sums a buffer in place across the data-parallel ranks. When set, training
    /// statistics (and their gradients) cover the global batch, so N workers normalise exactly
    /// as one process with the whole batch would.
    public var synchronize: ((UnsafeMutableBufferPointer<Float>) -> Void)?
    private var syncBuffer: [Float] = []
    private var globalCount: Float = 0

    public init(inputShape: [Int], eps: Float = 1e-5, momentum: Float = 0.1) {
        channels = inputShape[0]
        outputShape = inputShape
        self.eps = eps
        self.momentum = momentum
        weight = Parameter("weight", shape: [channels], initializer: .ones)
        bias = Parameter("bias", shape: [channels], initializer: .zeros)
        runningMean = Buffer("running_mean", shape: [channels])
        runningVar = Buffer("running_var", shape: [channels], fill: 1)
        batchesTracked = Buffer("num_batches_tracked", shape: [], isCounter: true)
        invStd = [Float](repeating: 1, count: channels)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), hw = spatial, c = channels
        output.resize(x.shape)
        xhat.resize(x.shape)
        lastTraining = training
        let xd = x.data, xh = xhat.data, yd = output.data
        let rm = runningMean.value.data, rv = runningVar.value.data
        let gamma = weight.value.data, beta = bias.value.data
        let (eps, momentum) = (self.eps, self.momentum)
        // Per-channel Σx and Σx² (and the count), summed across ranks for SyncBatchNorm.
        if syncBuffer.count < 2 * c + 1 { syncBuffer = [Float](repeating: 0, count: 2 * c + 1) }
        if training {
            syncBuffer.withUnsafeMutableBufferPointer { st in
                Parallel.forEach(c, grain: max(1, 16384 / max(b * hw, 1))) { channels in
                    for ch in channels {
                        var s = 0.0, sq = 0.0
                        for bi in 0..<b {
                            let (ps, pq) = sums(xd + (bi * c + ch) * hw, hw)
                            s += Double(ps)
                            sq += Double(pq)
                        }
                        st[ch] = Float(s)
                        st[c + ch] = Float(sq)
                    }
                }
                st[2 * c] = Float(b * hw)
                synchronize?(UnsafeMutableBufferPointer(rebasing: st[0..<(2 * c + 1)]))
            }
            globalCount = syncBuffer[2 * c]
        }
        let n = Double(globalCount)
        syncBuffer.withUnsafeBufferPointer { st in
        invStd.withUnsafeMutableBufferPointer { invStd in
        Parallel.forEach(c, grain: max(1, 16384 / max(b * hw, 1))) { channels in
            for ch in channels {
                var mean: Float, inv: Float
                if training {
                    let m = Double(st[ch]) / n
                    let variance = max(Double(st[c + ch]) / n - m * m, 0)
                    mean = Float(m)
                    inv = 1 / Float(variance + Double(eps)).squareRoot()
                    rm[ch] = (1 - momentum) * rm[ch] + momentum * mean
                    rv[ch] = (1 - momentum) * rv[ch] + momentum * Float(n > 1 ? variance * n / (n - 1) : variance)
                } else {
                    mean = rm[ch]
                    inv = 1 / (rv[ch] + eps).squareRoot()
                }
                invStd[ch] = inv
                let g = Vec8(repeating: gamma[ch]), be = Vec8(repeating: beta[ch])
                let mv = Vec8(repeating: mean), iv = Vec8(repeating: inv)
                for bi in 0..<b {
                    let o = (bi * c + ch) * hw
                    var i = 0
                    while i + 8 <= hw {
                        let v = (xd.load8(o + i) - mv) * iv
                        xh.store8(o + i, v)
                        yd.store8(o + i, g * v + be)
                        i += 8
                    }
                    while i < hw {
                        let v = (xd[o + i] - mean) * inv
                        xh[o + i] = v
                        yd[o + i] = gamma[ch] * v + beta[ch]
                        i += 1
                    }
                }
            }
        }
        }
        }
        if training { batchesTracked.value.data[0] += 1 }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let b = batchSize(dy), hw = spatial, c = channels
        if needInputGrad { inputGrad.resize(dy.shape) }
        let gd = dy.data, xh = xhat.data, dx = inputGrad.data
        let gamma = weight.value.data, dgamma = weight.grad.data, dbeta = bias.grad.data
        let training = lastTraining
        // Per-channel Σdy and Σdy·x̂: the parameter gradients, and (summed across ranks for
        // SyncBatchNorm) the batch terms of the input gradient.
        syncBuffer.withUnsafeMutableBufferPointer { st in
            Parallel.forEach(c, grain: max(1, 16384 / max(b * hw, 1))) { channels in
                for ch in channels {
                    var sdy: Float = 0, sdyx: Float = 0
                    for bi in 0..<b {
                        let o = (bi * c + ch) * hw
                        let (a, p) = dotSums(gd + o, xh + o, hw)
                        sdy += a
                        sdyx += p
                    }
                    dgamma[ch] += sdyx
                    dbeta[ch] += sdy
                    st[ch] = sdy
                    st[c + ch] = sdyx
                }
            }
            if needInputGrad && training { synchronize?(UnsafeMutableBufferPointer(rebasing: st[0..<(2 * c)])) }
        }
        guard needInputGrad else { return nil }
        let n = training ? globalCount : Float(b * hw)
        syncBuffer.withUnsafeBufferPointer { st in
        invStd.withUnsafeBufferPointer { invStd in
        Parallel.forEach(c, grain: max(1, 16384 / max(b * hw, 1))) { channels in
            for ch in channels {
                let sdy = st[ch], sdyx = st[c + ch]
                if !training {
                    let k = gamma[ch] * invStd[ch]
                    for bi in 0..<b {
                        let o = (bi * c + ch) * hw
                        for i in 0..<hw { dx[o + i] = k * gd[o + i] }
                    }
                    continue
                }
                let k = gamma[ch] * invStd[ch] / n
                let kv = Vec8(repeating: k), nv = Vec8(repeating: n)
                let sv = Vec8(repeating: sdy), pv = Vec8(repeating: sdyx)
                for bi in 0..<b {
                    let o = (bi * c + ch) * hw
                    var i = 0
                    while i + 8 <= hw {
                        dx.store8(o + i, kv * (nv * gd.load8(o + i) - sv - xh.load8(o + i) * pv))
                        i += 8
                    }
                    while i < hw { dx[o + i] = k * (n * gd[o + i] - sdy - xh[o + i] * sdyx); i += 1 }
                }
            }
        }
        }
        }
        return inputGrad
    }
}
/// (Σx, Σx²) over n floats, eight lanes at a time.
@inline(__always)
func sums(_ p: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
    var s = Vec8(repeating: 0), q = Vec8(repeating: 0)
    var i = 0
    while i + 8 <= n { let v = p.load8(i); s += v; q += v * v; i += 8 }
    var a = s.sum(), b = q.sum()
    while i < n { a += p[i]; b += p[i] * p[i]; i += 1 }
    return (a, b)
}

/// (Σg, Σg·x) over n floats.
@inline(__always)
func dotSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
    var s = Vec8(repeating: 0), q = Vec8(repeating: 0)
    var i = 0
    while i + 8 <= n { let v = g.load8(i); s += v; q += v * x.load8(i); i += 8 }
    var a = s.sum(), b = q.sum()
    while i < n { a += g[i]; b += g[i] * x[i]; i += 1 }
    return (a, b)
}

/// Normalisation within each sample over groups of whole channels: the per-sample tensor
/// `[C, …]` is split into `groups` contiguous groups, each normalised by its own mean and
/// variance, then scaled and shifted per channel. GroupNorm is the general case; InstanceNorm
/// is one group per channel.
///
/// backward per group of M elements: dx = (1/σ)(d − mean(d) − x̂·mean(d·x̂)),  d = dy·γ
public class GroupwiseNorm: Layer {
    public let outputShape: [Int]
    public let groups: Int
    public let eps: Float
    public let weight: Parameter?
    public let bias: Parameter?
    public var parameters: [Parameter] { [weight, bias].compactMap { $0 } }

    let xhat = Tensor.workspace()
    let output = Tensor.workspace()
    let inputGrad = Tensor.workspace()
    var invStd: [Float] = []

    init(shape: [Int], groups: Int, eps: Float, affine: Bool) {
        outputShape = shape
        self.groups = groups
        self.eps = eps
        weight = affine ? Parameter("weight", shape: [shape[0]], initializer: .ones) : nil
        bias = affine ? Parameter("bias", shape: [shape[0]], initializer: .zeros) : nil
    }

    var size: Int { outputShape.reduce(1, *) }
    /// Elements per channel.
    var perChannel: Int { outputShape.count > 1 ? outputShape.dropFirst().reduce(1, *) : 1 }

    /// About 6 operations per element (statistics, normalise, scale and shift).
    public var flops: Int { 6 * size }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), size = self.size, m = size / groups
        output.resize(x.shape)
        xhat.resize(x.shape)
        if invStd.count < b * groups { invStd = [Float](repeating: 0, count: b * groups) }
        for bi in 0..<b {
            for g in 0..<groups {
                let o = bi * size + g * m
                let p = x.data + o
                var s = 0.0, sq = 0.0
                for i in 0..<m { let v = Double(p[i]); s += v; sq += v * v }
                let mean = s / Double(m)
                let inv = 1 / Float(max(sq / Double(m) - mean * mean, 0) + Double(eps)).squareRoot()
                invStd[bi * groups + g] = inv
                let xh = xhat.data + o, y = output.data + o
                for i in 0..<m {
                    let v = (p[i] - Float(mean)) * inv
                    xh[i] = v
                    let a = (g * m + i) / perChannel
                    y[i] = weight.map { $0.value.data[a] * v + bias!.value.data[a] } ?? v
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let b = batchSize(dy), size = self.size, m = size / groups
        if needInputGrad { inputGrad.resize(dy.shape) }
        for bi in 0..<b {
            for g in 0..<groups {
                let o = bi * size + g * m
                let gy = dy.data + o, xh = xhat.data + o
                var sd: Float = 0, sdx: Float = 0
                for i in 0..<m {
                    let a = (g * m + i) / perChannel
                    if let w = weight {
                        w.grad.data[a] += gy[i] * xh[i]
                        bias!.grad.data[a] += gy[i]
                    }
                    let d = gy[i] * (weight?.value.data[a] ?? 1)
                    sd += d
                    sdx += d * xh[i]
                }
                guard needInputGrad else { continue }
                let inv = invStd[bi * groups + g], mf = Float(m)
                let dx = inputGrad.data + o
                for i in 0..<m {
                    let d = gy[i] * (weight?.value.data[(g * m + i) / perChannel] ?? 1)
                    dx[i] = inv * (d - sd / mf - xh[i] * sdx / mf)
                }
            }
        }
        return needInputGrad ? inputGrad : nil
    }

    /// Each group's mean and (biased) variance computed directly.
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let m = size / groups
        let wt = weight.map(r.value), bs = bias.map(r.value)
        var y = x
        for i in 0..<b { for g in 0..<groups {
            let range = (i * size + g * m)..<(i * size + g * m + m)
            let mean = x[range].reduce(0, +) / Double(m)
            let variance = x[range].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(m)
            for j in range {
                let a = (j - i * size) / perChannel
                let v = (x[j] - mean) / (variance + Double(eps)).squareRoot()
                y[j] = wt.map { $0[a] * v + bs![a] } ?? v
            }
        } }
        return y
    }
}

/// `torch.nn.GroupNorm(groups, C)`: groups of channels (with their spatial positions), per-channel γ, β.
public final class GroupNorm: GroupwiseNorm {
    public override init(shape: [Int], groups: Int, eps: Float = 1e-5, affine: Bool = true) {
        super.init(shape: shape, groups: groups, eps: eps, affine: affine)
    }
}

/// `torch.nn.InstanceNorm2d(C)`: each channel of each sample on its own (no running statistics).
public final class InstanceNorm: GroupwiseNorm {
    public init(shape: [Int], eps: Float = 1e-5, affine: Bool = false) {
        super.init(shape: shape, groups: shape[0], eps: eps, affine: affine)
    }
}

/// `torch.nn.LayerNorm(normalized_shape)`: each run of the last axes (`normalizedShape`,
/// M elements) is normalised on its own, then scaled and shifted element-wise (γ, β of shape
/// `normalizedShape`). On `[B, T, C]` with `normalizedShape = [C]`, every token separately.
///
/// x[n, M] → y = γ ⊙ x̂ + β,  x̂ = (x − μ_row)/√(σ²_row + ε)
/// backward: dx = (1/σ)(d − mean(d) − x̂·mean(d·x̂)),  d = dy ⊙ γ   (per row)
///           dγ += Σ_rows dy ⊙ x̂,  dβ += Σ_rows dy                  (per element)
public final class LayerNorm: Layer {
    public let outputShape: [Int]
    public let normalizedShape: [Int]
    public let eps: Float
    public let weight: Parameter?
    public let bias: Parameter?
    public var parameters: [Parameter] { [weight, bias].compactMap { $0 } }

    private let xhat = Tensor.workspace()
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private var invStd: [Float] = []

    /// `normalizedShape` must be a suffix of `shape` (the whole sample when nil).
    public init(shape: [Int], normalizedShape: [Int]? = nil, eps: Float = 1e-5, affine: Bool = true) {
        outputShape = shape
        self.normalizedShape = normalizedShape ?? shape
        self.eps = eps
        weight = affine ? Parameter("weight", shape: self.normalizedShape, initializer: .ones) : nil
        bias = affine ? Parameter("bias", shape: self.normalizedShape, initializer: .zeros) : nil
    }

    private var m: Int { normalizedShape.reduce(1, *) }
    public var flops: Int { 6 * outputShape.reduce(1, *) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let m = self.m, rows = x.count / m
        output.resize(x.shape)
        xhat.resize(x.shape)
        if invStd.count < rows { invStd = [Float](repeating: 0, count: rows) }
        let xd = x.data, xh = xhat.data, yd = output.data
        let g = weight?.value.data, be = bias?.value.data, eps = self.eps
        invStd.withUnsafeMutableBufferPointer { inv in
            Parallel.forEach(rows, grain: max(1, 8192 / m)) { range in
                for r in range {
                    let p = xd + r * m
                    let (s, sq) = sums(p, m)
                    let mean = Double(s) / Double(m)
                    let variance = max(Double(sq) / Double(m) - mean * mean, 0)
                    let iv = 1 / Float(variance + Double(eps)).squareRoot()
                    inv[r] = iv
                    let mf = Float(mean), h = xh + r * m, y = yd + r * m
                    for i in 0..<m {
                        let v = (p[i] - mf) * iv
                        h[i] = v
                        y[i] = g.map { $0[i] * v + be![i] } ?? v
                    }
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let m = self.m, rows = dy.count / m
        let gd = dy.data, xh = xhat.data
        if let w = weight, let b = bias {
            // Column-wise so threads never add into the same element.
            let dg = w.grad.data, db = b.grad.data
            Parallel.forEach(m, grain: max(1, 8192 / max(rows, 1))) { cols in
                for r in 0..<rows {
                    let o = r * m
                    for j in cols { dg[j] += gd[o + j] * xh[o + j]; db[j] += gd[o + j] }
                }
            }
        }
        guard needInputGrad else { return nil }
        inputGrad.resize(dy.shape)
        let dx = inputGrad.data, g = weight?.value.data
        invStd.withUnsafeBufferPointer { inv in
            Parallel.forEach(rows, grain: max(1, 8192 / m)) { range in
                for r in range {
                    let o = r * m
                    var sd: Float = 0, sdx: Float = 0
                    for j in 0..<m {
                        let d = gd[o + j] * (g?[j] ?? 1)
                        sd += d
                        sdx += d * xh[o + j]
                    }
                    let mf = Float(m), iv = inv[r]
                    for j in 0..<m {
                        let d = gd[o + j] * (g?[j] ?? 1)
                        dx[o + j] = iv * (d - sd / mf - xh[o + j] * sdx / mf)
                    }
                }
            }
        }
        return inputGrad
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let m = self.m
        let wt = weight.map(r.value), bs = bias.map(r.value)
        var y = x
        for row in 0..<(x.count / m) {
            let range = (row * m)..<(row * m + m)
            let mean = x[range].reduce(0, +) / Double(m)
            let variance = x[range].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(m)
            for j in range {
                let v = (x[j] - mean) / (variance + Double(eps)).squareRoot()
                y[j] = wt.map { $0[j - row * m] * v + bs![j - row * m] } ?? v
            }
        }
        return y
    }
}

extension BatchNorm {
    public var flops: Int { 6 * outputShape.reduce(1, *) }

    /// Batch statistics (training) or running ones (evaluation), per channel.
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let c = channels, hw = outputShape.reduce(1, *) / c, n = Double(b * hw)
        let g = r.value(weight), be = r.value(bias)
        var y = x
        for ch in 0..<c {
            var idx: [Int] = []
            for i in 0..<b { for k in 0..<hw { idx.append((i * c + ch) * hw + k) } }
            let mean: Double, variance: Double
            if training {
                mean = idx.reduce(0) { $0 + x[$1] } / n
                variance = idx.reduce(0) { $0 + (x[$1] - mean) * (x[$1] - mean) } / n
            } else {
                mean = Double(runningMean.value[ch])
                variance = Double(runningVar.value[ch])
            }
            for j in idx { y[j] = g[ch] * (x[j] - mean) / (variance + Double(eps)).squareRoot() + be[ch] }
        }
        return y
    }
}

/// `batchnorm {eps, momentum}`, `layernorm {normalized_shape: [C] (default: the last axis), eps, affine}`,
/// `groupnorm {groups, eps, affine}`, `instancenorm {eps, affine}`.
let normalizationKinds = [
    LayerKind("batchnorm") { r, c in
        guard !c.inputShape.isEmpty else { throw c.error("batchnorm needs a [channels, …] input") }
        return BatchNorm(inputShape: c.inputShape, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                         momentum: Float(try r.double("momentum", default: 0.1, min: 0, max: 1)))
    },
    LayerKind("layernorm") { r, c in
        guard let last = c.inputShape.last else { throw c.error("layernorm needs an input with at least one axis") }
        var normalized = [last]
        if let v = r.value("normalized_shape") {
            switch v {
            case .int(let i): normalized = [i]
            case .list: normalized = try r.intList("normalized_shape", min: 1) ?? []
            default: throw r.error("normalized_shape", "expected an integer or a list of integers, found \(v.summary)")
            }
            guard !normalized.isEmpty, normalized.count <= c.inputShape.count,
                  Array(c.inputShape.suffix(normalized.count)) == normalized else {
                throw r.error("normalized_shape", "\(normalized) must be the last axes of the input \(c.inputShape)")
            }
        }
        return LayerNorm(shape: c.inputShape, normalizedShape: normalized, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                         affine: try r.bool("affine", default: true))
    },
    LayerKind("groupnorm") { r, c in
        let g = try r.requiredInt("groups", min: 1)
        guard !c.inputShape.isEmpty, c.inputShape[0] % g == 0 else {
            throw c.error("groupnorm: \(c.inputShape.first ?? 0) channels are not divisible by \(g) groups")
        }
        return GroupNorm(shape: c.inputShape, groups: g, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                         affine: try r.bool("affine", default: true))
    },
    LayerKind("instancenorm") { r, c in
        guard c.inputShape.count == 3 else { throw c.error("instancenorm needs a [channels, height, width] input") }
        return InstanceNorm(shape: c.inputShape, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                            affine: try r.bool("affine", default: false))
    },
]

/// Per position when it normalizes the last axis only (as every Transformer's LayerNorm).
extension LayerNorm: StepDecoding {
    public func decodeStep(_ x: Tensor, position: Int) -> Tensor { forward(x, training: false) }
    public var decodeBlocker: String? {
        normalizedShape.count == 1 ? nil : "it normalizes over \(normalizedShape), across positions"
    }
}
