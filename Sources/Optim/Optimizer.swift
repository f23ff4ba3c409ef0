import TensorCore

/// An optimizer steps a parameter arena from its gradient arena, keeping any per-parameter
/// state ("slots": momentum, Adam moments) in arenas of the same layout, so one loop covers
/// the whole model and checkpoints store slots tensor by tensor.
public protocol Optimizer: AnyObject {
    /// Learning rate used by the next `step()`; schedules set it before each step.
    var lr: Float { get set }
    /// Steps taken so far.
    var stepCount: Int { get set }
    /// Named state arenas, e.g. ["momentum_buffer": …]. Empty for plain SGD.
    var slots: [(name: String, arena: Arena)] { get }
    /// Hyper-parameters and scalar state for checkpoint metadata.
    var hyperParameters: [String: Double] { get }

    func step()
}
