import TensorCore

/// Inverted dropout: in training each element is kept with probability 1−p and scaled by
/// 1/(1−p), so evaluation is the identity. The mask is drawn from the model's random source.
public final class Dropout: Layer {
    public let p: Float
    public let outputShape: [Int]
    private let random: RandomSource
    private var mask: [Float] = []
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private var lastTraining = false

    public init(shape: [Int], p: Float, random: RandomSource) {
        self.p = p
        outputShape = shape
        self.random = random
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        lastTraining = training && p > 0
        guard lastTraining else { return x }
        output.resize(x.shape)
        if mask.count < x.count { mask = [Float](repeating: 0, count: x.count) }
        let scale = 1 / (1 - p)
        // Two 24-bit uniforms per 64-bit draw.
        let threshold = UInt64(Double(p) * 16_777_216)
        let n = x.count, xd = x.data, yd = output.data
        mask.withUnsafeMutableBufferPointer { m in
            var i = 0
            while i < n {
                let r = random.rng.next()
                let a: Float = (r >> 40) & 0xFF_FFFF >= threshold ? scale : 0
                m[i] = a
                yd[i] = xd[i] * a
                if i + 1 < n {
                    let b: Float = (r >> 8) & 0xFF_FFFF >= threshold ? scale : 0
                    m[i + 1] = b
                    yd[i + 1] = xd[i + 1] * b
                }
                i += 2
            }
        }
        return output
    }

    /// The mask costs one multiply per element.
    public var flops: Int { outputShape.reduce(1, *) }

    /// x ⊙ the mask of the last training forward (the identity in evaluation).
    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        guard training && p > 0 else { return x }
        return x.enumerated().map { $0.element * Double(mask[$0.offset]) }
    }

    /// `{type: dropout, p: 0.5}`, any input shape.
    static let kinds = [
        LayerKind("dropout") { r, c in
            Dropout(shape: c.inputShape, p: Float(try r.double("p", default: 0.5, min: 0, max: 0.99)), random: c.random)
        },
    ]

    /// A training forward with a given keep mask (1 keeps an element, 0 drops it) instead of a
    /// drawn one: what a PyTorch fixture with a fixed mask compares against.
    public func forward(_ x: Tensor, keep: [Float]) -> Tensor {
        precondition(keep.count == x.count, "dropout mask of \(keep.count) for \(x.count) elements")
        lastTraining = true
        output.resize(x.shape)
        let scale = 1 / (1 - p)
        mask = keep.map { $0 * scale }
        for i in 0..<x.count { output.data[i] = x.data[i] * mask[i] }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        guard lastTraining else { return dy }
        inputGrad.resize(dy.shape)
        for i in 0..<dy.count { inputGrad.data[i] = dy.data[i] * mask[i] }
        return inputGrad
    }
}

/// The identity in evaluation, so also while generating.
extension Dropout: PositionWise {}
