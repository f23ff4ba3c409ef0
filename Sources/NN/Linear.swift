import TensorCore

/// Fully connected layer: y = x·Wᵀ + b, W stored `[out, in]` as in `torch.nn.Linear`.
///
/// Forward:  x[B, in] · Wᵀ[in, out] → y[B, out]           (one sgemm)
/// Backward: dW[out, in] += dyᵀ[out, B] · x[B, in]        (one sgemm)
///           db[out]     += Σ_B dy
///           dx[B, in]    = dy[B, out] · W[out, in]       (one sgemm, skipped for the first layer)
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    public var outputShape: [Int] { [outFeatures] }
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

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

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, init scheme: Init = .torch) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let fanIn = Float(inFeatures), fanOut = Float(outFeatures)
        let w: Initializer, b: Initializer
        switch scheme {
        case .torch: w = .uniform(1 / fanIn.squareRoot()); b = .uniform(1 / fanIn.squareRoot())
        case .he: w = .normal((2 / fanIn).squareRoot()); b = .zeros
        case .xavier: w = .uniform((6 / (fanIn + fanOut)).squareRoot()); b = .zeros
        }
        weight = Parameter("weight", shape: [outFeatures, inFeatures], initializer: w)
        self.bias = bias ? Parameter("bias", shape: [outFeatures], initializer: b) : nil
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = batchSize(x)
        input = x
        output.resize([n, outFeatures])
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
        let n = batchSize(dy)
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
        inputGrad.resize([n] + [inFeatures])
        BLAS.gemm(m: n, n: inFeatures, k: outFeatures,
                  dy.data, lda: outFeatures, weight.value.data, ldb: inFeatures,
                  inputGrad.data, ldc: inFeatures)
        return inputGrad
    }
}
