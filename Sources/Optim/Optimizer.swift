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

/// Weight decay as runs of the arena with one rate each: the same rate everywhere, or
/// (`matricesOnly`) only on tensors of two or more dimensions — weights and embeddings, not
/// biases or norm gains, as the two parameter groups of nanoGPT and most Transformer recipes.
/// Runs cover the whole arena (padding included) and keep its 16-float alignment.
public struct DecayRuns: Sendable {
    public struct Run: Sendable { public let range: Range<Int>; public let rate: Float }
    public let runs: [Run]

    public init(_ rate: Float, layout: ArenaLayout, matricesOnly: Bool) {
        var runs: [Run] = []
        for (i, e) in layout.entries.enumerated() {
            let end = i + 1 < layout.entries.count ? layout.entries[i + 1].offset : layout.count
            let r: Float = matricesOnly && e.shape.count < 2 ? 0 : rate
            if let last = runs.last, last.rate == r, last.range.upperBound == e.offset {
                runs[runs.count - 1] = Run(range: last.range.lowerBound..<end, rate: r)
            } else {
                runs.append(Run(range: e.offset..<end, rate: r))
            }
        }
        if runs.isEmpty { runs = [Run(range: 0..<layout.count, rate: rate)] }
        self.runs = runs
    }
}
