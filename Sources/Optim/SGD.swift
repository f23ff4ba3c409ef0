import TensorCore

/// Stochastic gradient descent with the update rule of `torch.optim.SGD`:
///
///     g = ∇ + λ·θ                       (weight decay λ)
///     b = g on the first step, else μ·b + (1−τ)·g   (momentum μ, dampening τ)
///     g = g + μ·b if Nesterov, else b
///     θ = θ − lr·g
public final class SGD: Optimizer {
    public var lr: Float
    public let momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public let decayMatricesOnly: Bool
    public var stepCount = 0
    private let params: Arena
    private let grads: Arena
    private let buffer: Arena?
    public var runs: ParameterRuns

    public init(params: Arena, grads: Arena, lr: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0, decayMatricesOnly: Bool = false) {
        precondition(params.layout == grads.layout)
        self.params = params
        self.grads = grads
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decayMatricesOnly = decayMatricesOnly
        runs = ParameterRuns(weightDecay, layout: params.layout, matricesOnly: decayMatricesOnly)
        buffer = momentum != 0 ? Arena(params.layout) : nil
    }

    public var slots: [(name: String, arena: Arena)] {
        buffer.map { [("momentum_buffer", $0)] } ?? []
    }

    public var hyperParameters: [String: Double] {
        ["lr": Double(lr), "momentum": Double(momentum), "dampening": Double(dampening),
         "nesterov": nesterov ? 1 : 0, "weight_decay": Double(weightDecay),
         "decay_matrices_only": decayMatricesOnly ? 1 : 0]
    }

    /// One pass over the arena, 8 lanes at a time (arena sizes are multiples of 16).
    public func step() {
        let p = params.data, g = grads.data
        let mu = Vec8(repeating: momentum), damp = Vec8(repeating: 1 - dampening)
        defer { stepCount += 1 }
        let first = stepCount == 0
        for run in runs.trained {
            let wd = Vec8(repeating: run.rate), lr = Vec8(repeating: self.lr * run.lrScale)
            guard let b = buffer?.data else {
                for i in stride(from: run.range.lowerBound, to: run.range.upperBound, by: 8) {
                    let pv = p.load8(i)
                    p.store8(i, pv - lr * (g.load8(i) + wd * pv))
                }
                continue
            }
            for i in stride(from: run.range.lowerBound, to: run.range.upperBound, by: 8) {
                let pv = p.load8(i)
                let d = g.load8(i) + wd * pv
                let bv = first ? d : mu * b.load8(i) + damp * d
                b.store8(i, bv)
                p.store8(i, pv - lr * (nesterov ? d + mu * bv : bv))
            }
        }
    }
}
