import TensorCore

/// Fully connected layer on the last axis: y = x·Wᵀ + b, W stored `[out, in]` as in
/// `torch.nn.Linear`. Inputs `[B, …, in]` are `n = B·…` rows of `in` features.
///
/// Forward:  x[n, in] · Wᵀ[in, out] → y[n, out]           (one sgemm)
/// Backward: dW[out, in] += dyᵀ[out, n] · x[n, in]        (one sgemm)
///           db[out]     += Σ_n dy
///           dx[n, in]    = dy[n, out] · W[out, in]       (one sgemm, skipped for the first layer)
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// Per-sample output shape: the input's leading axes, then `out`.
    public let outputShape: [Int]
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    /// Rows per sample (the product of the axes before the last).
    public let rowsPerSample: Int

    private var input: Tensor?
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public enum Init: String, CaseIterable, Sendable {
        /// PyTorch's default: W, b ~ U(±1/√in).
        case torch
        /// He/Kaiming normal (fan_in, ReLU gain): W ~ N(0, 2/in), b = 0.
        case he
        /// Xavier/Glorot uniform: W ~ U(±√(6/(in+out))), b = 0.
        case xavier
    }

    /// `inputShape` is per sample, `[…, in]`; a flat `[in]` when omitted. `tied`: use another
    /// layer's `[out, in]` weight (a language model's head tied to its embedding), gradients
    /// from both uses adding up in one parameter. `zeroBias`: the bias starts at 0 whatever
    /// the scheme (MultiheadAttention's out_proj).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, init scheme: Init = .torch, inputShape: [Int]? = nil,
                tied: Parameter? = nil, zeroBias: Bool = false) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let lead = Array((inputShape ?? [inFeatures]).dropLast())
        outputShape = lead + [outFeatures]
        rowsPerSample = lead.reduce(1, *)
        let fanIn = Float(inFeatures), fanOut = Float(outFeatures)
        let w: Initializer, b: Initializer
        switch scheme {
        case .torch: w = .uniform(1 / fanIn.squareRoot()); b = .uniform(1 / fanIn.squareRoot())
        case .he: w = .normal((2 / fanIn).squareRoot()); b = .zeros
        case .xavier: w = .uniform((6 / (fanIn + fanOut)).squareRoot()); b = .zeros
        }
        weight = tied ?? Parameter("weight", shape: [outFeatures, inFeatures], initializer: w)
        self.bias = bias ? Parameter("bias", shape: [outFeatures], initializer: zeroBias ? .zeros : b) : nil
    }

    /// 2·in·out per row (seed table: Linear d→h is 2dh).
    public var flops: Int { 2 * inFeatures * outFeatures * rowsPerSample }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.count / inFeatures
        input = x
        output.resize(Array(x.shape.dropLast()) + [outFeatures])
        let y = output.data
        if let b = bias?.value.data {
            for r in 0..<n { (y + r * outFeatures).update(from: b, count: outFeatures) }
        }
        BLAS.gemm(transB: true, m: n, n: outFeatures, k: inFeatures,
                  x.data, lda: inFeatures, weight.value.data, ldb: inFeatures,
                  beta: bias == nil ? 0 : 1, y, ldc: outFeatures)
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let n = dy.count / outFeatures
        BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: n,
                  dy.data, lda: outFeatures, x.data, ldb: inFeatures,
                  beta: 1, weight.grad.data, ldc: inFeatures)
        if let db = bias?.grad.data {
            let g = dy.data
            for r in 0..<n {
                let row = g + r * outFeatures
                for j in 0..<outFeatures { db[j] += row[j] }
            }
        }
        guard needInputGrad else { return nil }
        inputGrad.resize(Array(dy.shape.dropLast()) + [inFeatures])
        BLAS.gemm(m: n, n: inFeatures, k: outFeatures,
                  dy.data, lda: outFeatures, weight.value.data, ldb: inFeatures,
                  inputGrad.data, ldc: inFeatures)
        return inputGrad
    }

    /// y[r, o] = b[o] + Σ_k W[o, k]·x[r, k] for every row r.
    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let w = r.value(weight), b = bias.map(r.value)
        let rows = x.count / inFeatures
        var y = [Double](repeating: 0, count: rows * outFeatures)
        for i in 0..<rows { for o in 0..<outFeatures {
            var s = b?[o] ?? 0
            for k in 0..<inFeatures { s += w[o * inFeatures + k] * x[i * inFeatures + k] }
            y[i * outFeatures + o] = s
        } }
        return y
    }

    /// `{type: linear, out: 256, bias: true, init: torch|he|xavier, tie: N}`, on the last input axis;
    /// `tie` shares the weight of layer N of the same list (an embedding `[vocab, dim]`).
    static let kinds = [
        LayerKind("linear") { r, c in
            guard let features = c.inputShape.last, !c.inputShape.isEmpty else {
                throw c.error("linear needs an input with at least one axis")
            }
            let out = try r.requiredInt("out", min: 1)
            let scheme = try r.choice("init", default: Init.torch)
            var tied: Parameter?
            if let n = try r.optionalInt("tie", min: 0) {
                // An embedding's weight, or an encoder–decoder's shared embedding.
                guard n < c.earlier.count, let w = (c.earlier[n] as? EncoderDecoder)?.shared.weight
                        ?? c.earlier[n].parameters.first(where: { $0.name == "weight" }) else {
                    throw r.error("tie", "layer \(n) of this list comes before this one and has a weight to share")
                }
                guard w.shape == [out, features] else {
                    throw r.error("tie", "layer \(n)'s weight is \(w.shape); this layer needs [\(out), \(features)]")
                }
                tied = w
            }
            return Linear(features, out, bias: try r.bool("bias", default: true), init: scheme, inputShape: c.inputShape, tied: tied)
        },
    ]
}

/// Each position alone: generation runs it on `[B, in]`.
extension Linear: PositionWise {}
