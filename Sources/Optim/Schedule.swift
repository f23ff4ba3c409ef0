import Glibc

/// Learning-rate schedule: a factor applied to the base lr, as a function of progress.
/// Evaluated per optimizer step (`step` counts steps already taken).
public enum LRSchedule: Equatable, Sendable {
    case constant
    /// Cosine annealing from 1 to `minFactor` over `totalSteps` steps.
    case cosine(totalSteps: Int, minFactor: Double)
    /// Multiply by `gamma` every `everySteps` steps (step decay).
    case step(everySteps: Int, gamma: Double)

    public func factor(step: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case .cosine(let total, let minFactor):
            let t = min(Double(step) / Double(max(total, 1)), 1)
            return minFactor + (1 - minFactor) * 0.5 * (1 + cos(Double.pi * t))
        case .step(let every, let gamma):
            return pow(gamma, Double(step / max(every, 1)))
        }
    }
}
