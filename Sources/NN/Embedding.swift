import TensorCore

/// Token (or node) ids to vectors, `torch.nn.Embedding(vocab, dim)`: weight `[vocab, dim]`,
/// initialised N(0, 1) as PyTorch does.
///
/// Forward:  ids[B, …] → y[B, …, dim],  y[r] = W[ids[r]]           (row copies)
/// Backward: dW[ids[r]] += dy[r]  — only the rows the batch used are touched
public final class Embedding: IndexInputLayer {
    public let vocabulary: Int
    public let dimension: Int
    public let weight: Parameter
    public let outputShape: [Int]
    public var parameters: [Parameter] { [weight] }

    private let ids = IntTensor()
    private let output = Tensor.workspace()

    public init(vocabulary: Int, dimension: Int, inputShape: [Int]) {
        self.vocabulary = vocabulary
        self.dimension = dimension
        outputShape = inputShape + [dimension]
        weight = Parameter("weight", shape: [vocabulary, dimension], initializer: .normal(1))
    }

    /// A lookup: no arithmetic (the seed table counts none).
    public var flops: Int { 0 }

    public func forward(indices: IntTensor, training: Bool) -> Tensor {
        ids.resize(indices.shape)
        ids.data.update(from: indices.data, count: indices.count)
        output.resize(indices.shape + [dimension])
        let w = weight.value.data, y = output.data, d = dimension
        Parallel.forEach(indices.count, grain: 4096 / max(d, 1) + 1) { rows in
            for r in rows { (y + r * d).update(from: w + Int(self.ids.data[r]) * d, count: d) }
        }
        return output
    }

    /// Float input holding integral ids (what the gradient checks feed); models pass the
    /// batch's `IntTensor` to `forward(indices:)` instead.
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let t = IntTensor(shape: x.shape)
        for i in 0..<x.count { t.data[i] = Int32(x.data[i].rounded()) }
        return forward(indices: t, training: training)
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let g = weight.grad.data, d = dimension, n = ids.count
        // Serial: two rows of the batch may hold the same id.
        for r in 0..<n {
            let dst = g + Int(ids.data[r]) * d, src = dy.data + r * d
            for j in 0..<d { dst[j] += src[j] }
        }
        return nil
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let w = r.value(weight)
        return x.flatMap { id in w[(Int(id) * dimension)..<(Int(id) * dimension + dimension)] }
    }

    /// `{type: embedding, vocab: 256, dim: 64}`: the model's first layer; its input is ids.
    static let kinds = [
        LayerKind("embedding", takesIndices: true) { r, c in
            Embedding(vocabulary: try r.requiredInt("vocab", min: 1), dimension: try r.requiredInt("dim", min: 1),
                      inputShape: c.inputShape)
        },
    ]
}
