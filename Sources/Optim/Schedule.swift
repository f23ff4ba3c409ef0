import Glibc

/// Learning-rate schedule: a factor applied to the base lr, as a function of progress.
/// Evaluated per optimizer step (`step` counts steps already taken).
public enum LRSchedule: Equatable, Sendable {
    case constant
    /// Cosine annealing from 1 to `minFactor` over `totalSteps` steps.
    case cosine(totalSteps: Int, minFactor: Double)
    /// Multiply by `gamma` every `everySteps` steps (step decay).
    case step(everySteps: Int, gamma: Double)
    /// Linear warmup from 0 over `warmup` steps, then cosine annealing (the transformer recipe).
    case warmupCosine(warmup: Int, totalSteps: Int, minFactor: Double)

    public func factor(step: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case .cosine(let total, let minFactor):
            let t = min(Double(step) / Double(max(total, 1)), 1)
            return minFactor + (1 - minFactor) * 0.5 * (1 + cos(Double.pi * t))
        case .step(let every, let gamma):
            return pow(gamma, Double(step / max(every, 1)))
        case .warmupCosine(let warmup, let total, let minFactor):
            if step < warmup { return Double(step + 1) / Double(warmup) }
            return LRSchedule.cosine(totalSteps: max(total - warmup, 1), minFactor: minFactor).factor(step: step - warmup)
        }
    }
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau` (mode min, relative threshold): multiplies the
/// learning rate by `factor` when the metric has not improved for more than `patience` epochs.
public struct ReduceOnPlateau: Equatable, Sendable {
    public let factor: Double, patience: Int, threshold: Double, minFactor: Double, cooldown: Int
    public private(set) var scale = 1.0
    public private(set) var best = Double.infinity
    public private(set) var badEpochs = 0
    private var cooldownLeft = 0

    public init(factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4, minFactor: Double = 0, cooldown: Int = 0) {
        self.factor = factor; self.patience = patience; self.threshold = threshold
        self.minFactor = minFactor; self.cooldown = cooldown
    }

    /// Records one epoch's metric (lower is better); returns the new lr scale.
    @discardableResult
    public mutating func step(_ metric: Double) -> Double {
        if metric < best * (1 - threshold) { best = metric; badEpochs = 0 } else { badEpochs += 1 }
        if cooldownLeft > 0 { cooldownLeft -= 1; badEpochs = 0 }
        if badEpochs > patience {
            scale = max(scale * factor, minFactor)
            cooldownLeft = cooldown
            badEpochs = 0
        }
        return scale
    }

    /// State for checkpoints: (scale, best, bad epochs, cooldown left).
    public var state: [Double] { [scale, best, Double(badEpochs), Double(cooldownLeft)] }
    public mutating func restore(_ s: [Double]) {
        guard s.count == 4 else { return }
        scale = s[0]; best = s[1]; badEpochs = Int(s[2]); cooldownLeft = Int(s[3])
    }
}
