import Config
import Glibc
import TensorCore

/// Fixed sinusoidal position encodings (Vaswani et al.) added to `[B, T, E]`:
/// PE[p, 2i] = sin(p / 10000^(2i/E)), PE[p, 2i+1] = cos(p / 10000^(2i/E)). No parameters;
/// defined for any length, so a model trained at one context runs at a longer one.
///
/// y[b, t, :] = x[b, t, :] + PE[t, :];  dx = dy
public final class SinusoidalPositions: Layer {
    public let outputShape: [Int]
    let table: [Float]
    private let output = Tensor.workspace()

    public init(shape: [Int]) {
        outputShape = shape
        let (t, e) = (shape[0], shape[1])
        var pe = [Float](repeating: 0, count: t * e)
        for p in 0..<t {
            for i in 0..<e {
                let angle = Double(p) / pow(10000, Double(i / 2 * 2) / Double(e))
                pe[p * e + i] = Float(i % 2 == 0 ? sin(angle) : cos(angle))
            }
        }
        table = pe
    }

    public var flops: Int { outputShape.reduce(1, *) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        output.resize(x.shape)
        let n = table.count
        table.withUnsafeBufferPointer { pe in
            for bi in 0..<batchSize(x) {
                let src = x.data + bi * n, dst = output.data + bi * n
                for i in 0..<n { dst[i] = src[i] + pe[i] }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? { needInputGrad ? dy : nil }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let (t, e) = (outputShape[0], outputShape[1])
        return x.enumerated().map { k, v in
            let p = (k / e) % t, i = k % e
            let angle = Double(p) / pow(10000, Double(2 * (i / 2)) / Double(e))
            return v + (i % 2 == 0 ? sin(angle) : cos(angle))
        }
    }
}

/// Learned absolute positions (GPT, BERT): a `[max_len, E]` table (parameter `weight`, as an
/// `nn.Embedding(max_len, E)`), row t added at position t. A sequence longer than the table is
/// refused when the model is built: these positions cannot be extrapolated.
///
/// y[b, t, :] = x[b, t, :] + W[t, :];  dW[t, :] += Σ_b dy[b, t, :];  dx = dy
public final class LearnedPositions: Layer {
    public let outputShape: [Int]
    public let maxLength: Int
    public let weight: Parameter
    public var parameters: [Parameter] { [weight] }
    private let output = Tensor.workspace()

    public init(shape: [Int], maxLength: Int, std: Float = 1) {
        outputShape = shape
        self.maxLength = maxLength
        weight = Parameter("weight", shape: [maxLength, shape[1]], initializer: .normal(std))
    }

    public var flops: Int { outputShape.reduce(1, *) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        output.resize(x.shape)
        let n = outputShape.reduce(1, *), w = weight.value.data
        for bi in 0..<batchSize(x) {
            let src = x.data + bi * n, dst = output.data + bi * n
            for i in 0..<n { dst[i] = src[i] + w[i] }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let n = outputShape.reduce(1, *), g = weight.grad.data
        for bi in 0..<batchSize(dy) {
            let src = dy.data + bi * n
            for i in 0..<n { g[i] += src[i] }
        }
        return needInputGrad ? dy : nil
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let w = r.value(weight), n = outputShape.reduce(1, *)
        return x.enumerated().map { $0.element + w[$0.offset % n] }
    }
}

/// `sinusoidal_positions`, `learned_positions {max_len: 512, std: 1}` on `[T, E]`.
let positionKinds = [
    LayerKind("sinusoidal_positions") { _, c in
        guard c.inputShape.count == 2 else { throw c.error("sinusoidal_positions needs a [steps, width] input, got \(c.inputShape)") }
        return SinusoidalPositions(shape: c.inputShape)
    },
    LayerKind("learned_positions") { r, c in
        guard c.inputShape.count == 2 else { throw c.error("learned_positions needs a [steps, width] input, got \(c.inputShape)") }
        let maxLen = try r.int("max_len", default: c.inputShape[0], min: 1)
        guard c.inputShape[0] <= maxLen else {
            throw r.error("max_len", "the sequence has \(c.inputShape[0]) steps, longer than the learned position table (\(maxLen)); learned positions cannot be extrapolated — use sinusoidal, rope or alibi positions to run longer than training")
        }
        return LearnedPositions(shape: c.inputShape, maxLength: maxLen, std: Float(try r.double("std", default: 1, min: 0)))
    },
]

/// One position while generating: PE[p] computed for any p (so past the training context).
extension SinusoidalPositions: StepDecoding {
    public func decodeStep(_ x: Tensor, position p: Int) -> Tensor {
        output.resize(x.shape)
        let e = outputShape[1], rows = x.count / e
        for i in 0..<e {
            let angle = Double(p) / pow(10000, Double(i / 2 * 2) / Double(e))
            let pe = Float(i % 2 == 0 ? sin(angle) : cos(angle))
            for r in 0..<rows { output.data[r * e + i] = x.data[r * e + i] + pe }
        }
        return output
    }
}

/// One position while generating: row p of the table (the generator keeps p below its length).
extension LearnedPositions: StepDecoding {
    public func decodeStep(_ x: Tensor, position p: Int) -> Tensor {
        precondition(p < maxLength, "position \(p) is past the learned position table (\(maxLength))")
        output.resize(x.shape)
        let e = outputShape[1], rows = x.count / e, w = weight.value.data + p * e
        for r in 0..<rows { for i in 0..<e { output.data[r * e + i] = x.data[r * e + i] + w[i] } }
        return output
    }
}
