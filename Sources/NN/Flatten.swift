import TensorCore

/// Flatten: [B, d1, d2, …] → [B, d1·d2·…]. The data is already contiguous, so forward and
/// backward only relabel shapes (on views, never copies).
public final class Flatten: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    private var outView: Tensor?
    private var gradView: Tensor?

    public init(_ inputShape: [Int]) {
        self.inputShape = inputShape
        outputShape = [inputShape.reduce(1, *)]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shape = [batchSize(x)] + outputShape
        if let v = outView, v.data == x.data, v.shape == shape { return v }
        let v = Tensor(viewing: x.data, shape: shape)
        outView = v
        return v
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let shape = [batchSize(dy)] + inputShape
        if let v = gradView, v.data == dy.data, v.shape == shape { return v }
        let v = Tensor(viewing: dy.data, shape: shape)
        gradView = v
        return v
    }
}
