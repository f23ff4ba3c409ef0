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
    /// Label smoothing ε as `torch.nn.CrossEntropyLoss(label_smoothing=ε)`: the target is
    /// (1−ε)·y + ε/C.
    public let labelSmoothing: Float
    public init(labelSmoothing: Float = 0) { self.labelSmoothing = labelSmoothing }

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
                let eps = labelSmoothing, off = eps / Float(c)
                var l = (1 - eps) * (logSum - z[y])
                if eps > 0 { for j in 0..<c { l += off * (logSum - z[j]) } }
                total += Double(l)
                if let g = grad?.data.advanced(by: r * c) {
                    for j in 0..<c { g[j] = (expf(z[j] - logSum) - off) * invB }
                    g[y] -= (1 - eps) * invB
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

/// Sigmoid + binary cross-entropy on logits, fused and stable (`torch.nn.BCEWithLogitsLoss`):
/// mean over all elements of max(z, 0) − z·y + log(1 + e^{−|z|}); gradient (σ(z) − y)/N. One
/// output is binary classification; several are independent labels (multilabel). With
/// `.classes` targets, y is the one-hot of the label.
public final class SigmoidBinaryCrossEntropy: Loss {
    public init() {}

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let n = z.count, c = z.rowSize
        if let g = grad { g.resize(z.shape) }
        var total = 0.0
        let inv = 1 / Float(n)
        for i in 0..<n {
            let y: Float
            switch target {
            case .classes(let l): y = Int(l[i / c]) == i % c ? 1 : 0
            case .values(let t): y = t.data[i]
            }
            let v = z.data[i]
            total += Double(max(v, 0) - v * y + log1pf(expf(-abs(v))))
            if let g = grad { g.data[i] = (sigmoid(v) - y) * inv }
        }
        return Float(total / Double(n))
    }
}

/// Poisson negative log-likelihood (`torch.nn.PoissonNLLLoss`, full = false): with log inputs
/// (the exp output of the seed table) mean(eᶻ − y·z), gradient (eᶻ − y)/N; with rate inputs
/// (e.g. after softplus) mean(λ − y·log(λ + 1e-8)), gradient (1 − y/(λ + 1e-8))/N.
public final class PoissonNLL: Loss {
    public let logInput: Bool
    public init(logInput: Bool = true) { self.logInput = logInput }

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .values(let y) = target else { preconditionFailure("Poisson NLL needs count targets") }
        let n = z.count
        if let g = grad { g.resize(z.shape) }
        var total = 0.0
        let inv = 1 / Float(n)
        for i in 0..<n {
            let v = z.data[i], t = y.data[i]
            if logInput {
                total += Double(expf(v) - t * v)
                if let g = grad { g.data[i] = (expf(v) - t) * inv }
            } else {
                total += Double(v - t * logf(v + 1e-8))
                if let g = grad { g.data[i] = (1 - t / (v + 1e-8)) * inv }
            }
        }
        return Float(total / Double(n))
    }
}

/// Multiclass hinge loss of a linear SVM (`torch.nn.MultiMarginLoss`, p = 1, margin 1):
/// per sample Σ_{j≠y} max(0, 1 − z_y + z_j)/C, averaged over the batch.
public final class HingeLoss: Loss {
    public let margin: Float
    public init(margin: Float = 1) { self.margin = margin }

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .classes(let labels) = target else { preconditionFailure("hinge loss needs class labels") }
        let b = z.rows, c = z.rowSize
        if let g = grad { g.resize(z.shape); g.zero() }
        var total = 0.0
        let scale = 1 / Float(c * b)
        for r in 0..<b {
            let row = z.data + r * c, y = Int(labels[r])
            for j in 0..<c where j != y {
                let m = margin - row[y] + row[j]
                if m > 0 {
                    total += Double(m)
                    if let g = grad?.data.advanced(by: r * c) { g[j] += scale; g[y] -= scale }
                }
            }
        }
        return Float(total / Double(b * c))
    }
}

/// Perceptron criterion, multiclass: per sample max(0, max_j z_j − z_y) — zero (no update)
/// when the sample is classified correctly, else pushes the winning class down and the true
/// one up. Averaged over the batch.
public final class PerceptronLoss: Loss {
    public init() {}

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .classes(let labels) = target else { preconditionFailure("perceptron loss needs class labels") }
        let b = z.rows, c = z.rowSize
        if let g = grad { g.resize(z.shape); g.zero() }
        var total = 0.0
        for r in 0..<b {
            let row = z.data + r * c, y = Int(labels[r])
            var best = 0
            for j in 1..<c where row[j] > row[best] { best = j }
            let m = row[best] - row[y]
            if m > 0 {
                total += Double(m)
                if let g = grad?.data.advanced(by: r * c) { g[best] += 1 / Float(b); g[y] -= 1 / Float(b) }
            }
        }
        return Float(total / Double(b))
    }
}
