import Glibc
import TensorCore

/// What a loss compares the prediction with.
public enum Target {
    /// One class index per row of the last axis: `[B]` for `[B, C]` logits, `[B, T]` for `[B, T, V]`.
    case classes(IntTensor)
    /// A dense tensor with the prediction's shape (regression values, counts, probabilities).
    case values(Tensor)
}

/// A loss function with its gradient with respect to the model output. Every loss is the mean
/// over its terms (PyTorch's `reduction="mean"`); `terms` says how many, so that sums over a
/// whole split stay exact.
public protocol Loss: AnyObject {
    /// Mean loss over the batch; writes dL/d(prediction) into `grad` when given.
    func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float
    /// How many terms the mean of `compute` divides by.
    func terms(_ prediction: Tensor) -> Int
    /// The mean loss in Double from the formula (for the gradient checks).
    func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double
}

extension Loss {
    public func terms(_ prediction: Tensor) -> Int { prediction.count }
}

/// Rows of the last axis: (count of rows, row length).
@inline(__always) func lastAxisRows(_ shape: [Int], _ count: Int) -> (Int, Int) {
    let c = shape.last ?? 1
    return (c == 0 ? 0 : count / c, c)
}

/// The target of element j of row i as a number (one-hot for class targets).
func targetValue(_ t: Target, row i: Int, column j: Int, width c: Int) -> Double {
    switch t {
    case .classes(let l): return Int(l[i]) == j ? 1 : 0
    case .values(let v): return Double(v[i * c + j])
    }
}

/// Softmax + categorical cross-entropy on logits over the last axis, fused so the gradient is
/// the clean (softmax(z) − y)/N of the backprop table (N rows: samples, or tokens for `[B, T, V]`).
/// With `.classes` targets y is one-hot; with `.values` it is a probability vector per row
/// (label smoothing, MixUp).
///
/// logits[N, C] → mean_N(−Σ_c y_c · log softmax(z)_c); grad[N, C]
public final class SoftmaxCrossEntropy: Loss {
    /// Label smoothing ε as `torch.nn.CrossEntropyLoss(label_smoothing=ε)`: the target is
    /// (1−ε)·y + ε/C.
    public let labelSmoothing: Float
    public init(labelSmoothing: Float = 0) { self.labelSmoothing = labelSmoothing }

    public func terms(_ prediction: Tensor) -> Int { lastAxisRows(prediction.shape, prediction.count).0 }

    public func compute(_ logits: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let (b, c) = lastAxisRows(logits.shape, logits.count)
        if let g = grad { g.resize(logits.shape) }
        let invB = 1 / Float(b)
        let eps = labelSmoothing, off = eps / Float(c)
        let zd = logits.data, gd = grad?.data
        // Rows are independent: split them across cores, each part summing its own loss.
        let total = Parallel.sum(b, grain: max(1, 8192 / max(c, 1))) { rows in
            var total = 0.0
            for r in rows {
                let z = zd + r * c
                let logSum = VectorMath.logSumExp(z, c)
                switch target {
                case .classes(let labels):
                    let y = Int(labels[r])
                    var l = (1 - eps) * (logSum - z[y])
                    if eps > 0 { for j in 0..<c { l += off * (logSum - z[j]) } }
                    total += Double(l)
                    if let g = gd?.advanced(by: r * c) {
                        VectorMath.expShifted(z, c, shift: logSum, offset: off, scale: invB, into: g)
                        g[y] -= (1 - eps) * invB
                    }
                case .values(let t):
                    let y = t.data + r * c
                    for j in 0..<c where y[j] != 0 { total += Double(y[j] * (logSum - z[j])) }
                    if let g = gd?.advanced(by: r * c) {
                        // Σ_j y_j may differ from 1 only for malformed targets; the general
                        // gradient is softmax·Σy − y.
                        var sy: Float = 0
                        for j in 0..<c { sy += y[j] }
                        for j in 0..<c { g[j] = (expf(z[j] - logSum) * sy - y[j]) * invB }
                    }
                }
            }
            return total
        }
        return Float(total / Double(b))
    }

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let (rows, c) = lastAxisRows(shape, z.count)
        let eps = Double(labelSmoothing)
        var total = 0.0
        for i in 0..<rows {
            let row = z[(i * c)..<((i + 1) * c)], m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            for j in 0..<c {
                var t = targetValue(target, row: i, column: j, width: c)
                if case .classes = target { t = (1 - eps) * t + eps / Double(c) }
                total += t * (lse - z[i * c + j])
            }
        }
        return total / Double(rows)
    }
}

/// Mean over elements of f(ŷ − y) for a loss of the difference alone; `term(d)` gives that
/// element's loss and its gradient (already divided by N).
@inline(__always)
func pointwise(_ p: Tensor, _ target: Target, _ grad: Tensor?, _ name: String, _ term: (Float) -> (Float, Float)) -> Float {
    guard case .values(let y) = target else { preconditionFailure("\(name) needs dense targets") }
    let n = p.count
    if let g = grad { g.resize(p.shape) }
    var total: Double = 0
    for i in 0..<n {
        let (l, d) = term(p.data[i] - y.data[i])
        total += Double(l)
        if let g = grad { g.data[i] = d }
    }
    return Float(total / Double(n))
}

/// Mean squared error, as `torch.nn.MSELoss()`: mean over all elements of (ŷ − y)²;
/// gradient 2(ŷ − y)/N.
public final class MeanSquaredError: Loss {
    public init() {}

    public func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let scale = 2 / Float(prediction.count)
        return pointwise(prediction, target, grad, "MSE") { d in (d * d, scale * d) }
    }

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let c = shape.last ?? 1
        return z.indices.reduce(0) { s, i in
            let d = z[i] - targetValue(target, row: i / c, column: i % c, width: c)
            return s + d * d
        } / Double(z.count)
    }
}

/// Mean absolute error, as `torch.nn.L1Loss()`: mean |ŷ − y|; gradient sign(ŷ − y)/N (0 at 0).
public final class MeanAbsoluteError: Loss {
    public init() {}

    public func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let inv = 1 / Float(prediction.count)
        return pointwise(prediction, target, grad, "MAE") { d in (abs(d), d > 0 ? inv : d < 0 ? -inv : 0) }
    }

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let c = shape.last ?? 1
        return z.indices.reduce(0) { $0 + abs(z[$1] - targetValue(target, row: $1 / c, column: $1 % c, width: c)) } / Double(z.count)
    }
}

/// Huber loss, as `torch.nn.HuberLoss(delta=δ)`: ½d² for |d| ≤ δ, else δ(|d| − ½δ), averaged;
/// gradient d/N inside, δ·sign(d)/N outside.
public final class HuberLoss: Loss {
    public let delta: Float
    public init(delta: Float = 1) { self.delta = delta }

    public func compute(_ prediction: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let inv = 1 / Float(prediction.count), delta = self.delta
        return pointwise(prediction, target, grad, "Huber") { d in
            let a = abs(d)
            return (a <= delta ? 0.5 * d * d : delta * (a - 0.5 * delta), (a <= delta ? d : (d > 0 ? delta : -delta)) * inv)
        }
    }

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let c = shape.last ?? 1, dl = Double(delta)
        return z.indices.reduce(0) { s, i in
            let d = z[i] - targetValue(target, row: i / c, column: i % c, width: c), a = abs(d)
            return s + (a <= dl ? 0.5 * d * d : dl * (a - 0.5 * dl))
        } / Double(z.count)
    }
}

/// Sigmoid + binary cross-entropy on logits, fused and stable (`torch.nn.BCEWithLogitsLoss`):
/// mean over all elements of max(z, 0) − z·y + log(1 + e^{−|z|}); gradient (σ(z) − y)/N. One
/// output is binary classification; several are independent labels (multilabel). With
/// `.classes` targets, y is the one-hot of the label over the last axis.
public final class SigmoidBinaryCrossEntropy: Loss {
    public init() {}

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        let n = z.count, c = z.shape.last ?? 1
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

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let c = shape.last ?? 1
        return z.indices.reduce(0) { s, i in
            let v = z[i], y = targetValue(target, row: i / c, column: i % c, width: c)
            return s + max(v, 0) - v * y + log1p(exp(-abs(v)))
        } / Double(z.count)
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

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        let c = shape.last ?? 1
        return z.indices.reduce(0) { s, i in
            let v = z[i], y = targetValue(target, row: i / c, column: i % c, width: c)
            return s + (logInput ? exp(v) - y * v : v - y * log(v + 1e-8))
        } / Double(z.count)
    }
}

/// Multiclass hinge loss of a linear SVM (`torch.nn.MultiMarginLoss`, p = 1, margin 1):
/// per row Σ_{j≠y} max(0, 1 − z_y + z_j)/C, averaged over the rows.
public final class HingeLoss: Loss {
    public let margin: Float
    public init(margin: Float = 1) { self.margin = margin }

    public func terms(_ prediction: Tensor) -> Int { lastAxisRows(prediction.shape, prediction.count).0 }

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .classes(let labels) = target else { preconditionFailure("hinge loss needs class labels") }
        let (b, c) = lastAxisRows(z.shape, z.count)
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

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        guard case .classes(let l) = target else { return .nan }
        let (rows, c) = lastAxisRows(shape, z.count)
        var total = 0.0
        for i in 0..<rows {
            let t = Int(l[i])
            for j in 0..<c where j != t { total += max(0, Double(margin) - z[i * c + t] + z[i * c + j]) }
        }
        return total / Double(rows * c)
    }
}

/// Perceptron criterion, multiclass: per row max(0, max_j z_j − z_y) — zero (no update)
/// when the sample is classified correctly, else pushes the winning class down and the true
/// one up. Averaged over the rows.
public final class PerceptronLoss: Loss {
    public init() {}

    public func terms(_ prediction: Tensor) -> Int { lastAxisRows(prediction.shape, prediction.count).0 }

    public func compute(_ z: Tensor, _ target: Target, grad: Tensor?) -> Float {
        guard case .classes(let labels) = target else { preconditionFailure("perceptron loss needs class labels") }
        let (b, c) = lastAxisRows(z.shape, z.count)
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

    public func reference(_ z: [Double], shape: [Int], _ target: Target) -> Double {
        guard case .classes(let l) = target else { return .nan }
        let (rows, c) = lastAxisRows(shape, z.count)
        var total = 0.0
        for i in 0..<rows {
            let row = z[(i * c)..<((i + 1) * c)]
            total += max(0, row.max()! - z[i * c + Int(l[i])])
        }
        return total / Double(rows)
    }
}
