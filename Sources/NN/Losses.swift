import TensorCore
import Glibc

/// What a loss compares the prediction with.
public enum Target {
    /// One class index per sample.
    case classes(Labels)
    /// A dense tensor with the prediction's shape (regression values, or class probabilities).
    case values(Tensor)
}

/// A loss function with its gradient with respect to the model output.
public protocol Loss: AnyObject {
    /// Mean loss over the batch; writes dL/d(prediction) into `grad` when given.
    func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float
}

public enum LossError: Error, CustomStringConvertible {
    case targetMismatch(String)
    public var description: String {
        switch self { case .targetMismatch(let s): return s }
    }
}

/// Softmax + categorical cross-entropy on logits, fused so the gradient is the clean
/// (softmax(z) − y)/B of the backprop table. With `.classes` targets y is one-hot; with
/// `.values` it is a probability vector per row (label smoothing, MixUp).
///
/// logits[B, C] → mean_B(−Σ_c y_c · log softmax(z)_c); grad[B, C]
public final class SoftmaxCrossEntropy: Loss {
    public init() {}

    public func compute(_ logits: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let b = logits.rows, c = logits.rowSize
        if let g = grad { g.resize(logits.shape) }
        var total: Double = 0
        let invB = 1 / Float(b)
        for r in 0..<b {
            let z = logits.data + r * c
            var m = z[0]
            for j in 1..<c where z[j] > m { m = z[j] }
            var s: Float = 0
            for j in 0..<c { s += expf(z[j] - m) }
            let logSum = m + logf(s)
            switch target {
            case .classes(let labels):
                let y = Int(labels[r])
                total += Double(logSum - z[y])
                if let g = grad?.data.advanced(by: r * c) {
                    for j in 0..<c { g[j] = expf(z[j] - logSum) * invB }
                    g[y] -= invB
                }
            case .values(let t):
                let y = t.data + r * c
                for j in 0..<c where y[j] != 0 { total += Double(y[j] * (logSum - z[j])) }
                if let g = grad?.data.advanced(by: r * c) {
                    // Σ_j y_j may differ from 1 only for malformed targets; the general
                    // gradient is softmax·Σy − y.
                    var sy: Float = 0
                    for j in 0..<c { sy += y[j] }
                    for j in 0..<c { g[j] = (expf(z[j] - logSum) * sy - y[j]) * invB }
                }
            }
        }
        return Float(total / Double(b))
    }
}

/// Mean squared error, as `torch.nn.MSELoss()`: mean over all elements of (ŷ − y)²;
/// gradient 2(ŷ − y)/N.
public final class MeanSquaredError: Loss {
    public init() {}

    public func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .values(let y) = target else {
            preconditionFailure("MSE needs dense targets")
        }
        let n = prediction.count
        if let g = grad { g.resize(prediction.shape) }
        var total: Double = 0
        let scale = 2 / Float(n)
        for i in 0..<n {
            let d = prediction.data[i] - y.data[i]
            total += Double(d * d)
            if let g = grad { g.data[i] = scale * d }
        }
        return Float(total / Double(n))
    }
}
