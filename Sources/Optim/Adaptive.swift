import Glibc
import TensorCore

/// The adaptive optimizers of `torch.optim`, same update equations and defaults; state in
/// arenas with PyTorch's slot names. One loop over the whole arena per step.

/// AdaGrad: sum += g²; θ −= lr/(1 + (t−1)·decay) · g/(√sum + ε).
public final class AdaGrad: Optimizer {
    public var lr: Float
    public let lrDecay: Float, weightDecay: Float, eps: Float, decayMatricesOnly: Bool
    public var stepCount = 0
    private let params: Arena, grads: Arena, sum: Arena
    public var runs: ParameterRuns

    public init(params: Arena, grads: Arena, lr: Float = 0.01, lrDecay: Float = 0, weightDecay: Float = 0,
                initialAccumulator: Float = 0, eps: Float = 1e-10, decayMatricesOnly: Bool = false) {
        self.params = params; self.grads = grads; self.lr = lr
        self.lrDecay = lrDecay; self.weightDecay = weightDecay; self.eps = eps; self.decayMatricesOnly = decayMatricesOnly
        runs = ParameterRuns(weightDecay, layout: params.layout, matricesOnly: decayMatricesOnly)
        sum = Arena(params.layout)
        sum.buffer.initialize(repeating: initialAccumulator)
    }
    public var slots: [(name: String, arena: Arena)] { [("sum", sum)] }
    public var hyperParameters: [String: Double] { ["lr": Double(lr), "lr_decay": Double(lrDecay), "weight_decay": Double(weightDecay), "eps": Double(eps),
                                                  "decay_matrices_only": decayMatricesOnly ? 1 : 0] }

    public func step() {
        stepCount += 1
        let clr = lr / (1 + Float(stepCount - 1) * lrDecay)
        let p = params.data, g = grads.data, s = sum.data
        for run in runs.trained {
            let lr = clr * run.lrScale
            for i in run.range {
                let d = g[i] + run.rate * p[i]
                s[i] += d * d
                p[i] -= lr * d / (s[i].squareRoot() + eps)
            }
        }
    }
}

/// RMSprop: v = αv + (1−α)g²; centered subtracts the squared running mean of g;
/// with momentum b = μb + g/(√v + ε), θ −= lr·b, else θ −= lr·g/(√v + ε).
public final class RMSprop: Optimizer {
    public var lr: Float
    public let alpha: Float, eps: Float, weightDecay: Float, momentum: Float, centered: Bool, decayMatricesOnly: Bool
    public var stepCount = 0
    private let params: Arena, grads: Arena
    public var runs: ParameterRuns
    private let squareAvg: Arena, gradAvg: Arena?, buffer: Arena?

    public init(params: Arena, grads: Arena, lr: Float = 0.01, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false, decayMatricesOnly: Bool = false) {
        self.params = params; self.grads = grads; self.lr = lr; self.alpha = alpha; self.eps = eps
        self.weightDecay = weightDecay; self.momentum = momentum; self.centered = centered
        self.decayMatricesOnly = decayMatricesOnly
        runs = ParameterRuns(weightDecay, layout: params.layout, matricesOnly: decayMatricesOnly)
        squareAvg = Arena(params.layout)
        gradAvg = centered ? Arena(params.layout) : nil
        buffer = momentum > 0 ? Arena(params.layout) : nil
    }
    public var slots: [(name: String, arena: Arena)] {
        [("square_avg", squareAvg)] + (gradAvg.map { [("grad_avg", $0)] } ?? []) + (buffer.map { [("momentum_buffer", $0)] } ?? [])
    }
    public var hyperParameters: [String: Double] {
        ["lr": Double(lr), "alpha": Double(alpha), "eps": Double(eps), "weight_decay": Double(weightDecay),
         "momentum": Double(momentum), "centered": centered ? 1 : 0, "decay_matrices_only": decayMatricesOnly ? 1 : 0]
    }

    public func step() {
        stepCount += 1
        let p = params.data, g = grads.data, v = squareAvg.data
        let ga = gradAvg?.data, b = buffer?.data
        for run in runs.trained {
            let lr = self.lr * run.lrScale
            for i in run.range {
                let d = g[i] + run.rate * p[i]
                v[i] = alpha * v[i] + (1 - alpha) * d * d
                var avg: Float
                if let ga {
                    ga[i] = alpha * ga[i] + (1 - alpha) * d
                    avg = (v[i] - ga[i] * ga[i]).squareRoot() + eps
                } else {
                    avg = v[i].squareRoot() + eps
                }
                if let b {
                    b[i] = momentum * b[i] + d / avg
                    p[i] -= lr * b[i]
                } else {
                    p[i] -= lr * d / avg
                }
            }
        }
    }
}

/// Adam (and AdamW, `decoupled`): m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
/// θ −= lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε). Adam adds λθ to g; AdamW shrinks θ by (1 − lr·λ) first.
public final class Adam: Optimizer {
    public var lr: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool, decayMatricesOnly: Bool
    public var stepCount = 0
    private let params: Arena, grads: Arena, m: Arena, v: Arena
    public var runs: ParameterRuns

    public init(params: Arena, grads: Arena, lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0, decoupled: Bool = false, decayMatricesOnly: Bool = false) {
        self.params = params; self.grads = grads; self.lr = lr; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.weightDecay = weightDecay; self.decoupled = decoupled; self.decayMatricesOnly = decayMatricesOnly
        runs = ParameterRuns(weightDecay, layout: params.layout, matricesOnly: decayMatricesOnly)
        m = Arena(params.layout)
        v = Arena(params.layout)
    }
    public var slots: [(name: String, arena: Arena)] { [("exp_avg", m), ("exp_avg_sq", v)] }
    public var hyperParameters: [String: Double] {
        ["lr": Double(lr), "beta1": Double(beta1), "beta2": Double(beta2), "eps": Double(eps),
         "weight_decay": Double(weightDecay), "decoupled": decoupled ? 1 : 0,
         "decay_matrices_only": decayMatricesOnly ? 1 : 0]
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - pow(Double(beta1), t), bc2 = 1 - pow(Double(beta2), t)
        let stepSize = Float(Double(lr) / bc1), rootBC2 = Float(bc2.squareRoot())
        let p = params.data, g = grads.data, ma = m.data, va = v.data
        for run in runs.trained {
            let shrink = decoupled ? 1 - lr * run.lrScale * run.rate : 1, stepSize = stepSize * run.lrScale
            let coupled = decoupled ? 0 : run.rate
            for i in run.range {
                p[i] *= shrink
                let d = g[i] + coupled * p[i]
                ma[i] = beta1 * ma[i] + (1 - beta1) * d
                va[i] = beta2 * va[i] + (1 - beta2) * d * d
                p[i] -= stepSize * ma[i] / (va[i].squareRoot() / rootBC2 + eps)
            }
        }
    }
}
