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
    /// Parameter groups: weight decay and lr scale per run of the arena (freezing is scale 0).
    var runs: ParameterRuns { get set }

    func step()
}

/// The arena as runs of parameters that share a weight-decay rate and a learning-rate scale —
/// PyTorch's parameter groups, flattened. By default one rate everywhere, or (`matricesOnly`)
/// decay only on tensors of two or more dimensions (weights and embeddings, not biases or norm
/// gains, as nanoGPT's two groups). `group` may give a tensor (by state_dict name and shape)
/// its own lr scale and decay: scale 0 freezes it — optimizers skip its runs entirely, so its
/// state does not move either (as PyTorch skips parameters without a gradient). Runs cover the
/// whole arena (padding included) and keep its 16-float alignment.
public struct ParameterRuns: Sendable {
    public struct Run: Sendable, Equatable {
        public let range: Range<Int>
        public let rate: Float
        public let lrScale: Float
    }
    public let runs: [Run]

    public init(_ rate: Float, layout: ArenaLayout, matricesOnly: Bool,
                group: ((_ name: String, _ shape: [Int]) -> (lrScale: Float, rate: Float?))? = nil) {
        var runs: [Run] = []
        for (i, e) in layout.entries.enumerated() {
            let end = i + 1 < layout.entries.count ? layout.entries[i + 1].offset : layout.count
            let g = group?(e.name, e.shape)
            let r: Float = g?.rate ?? (matricesOnly && e.shape.count < 2 ? 0 : rate)
            let scale = g?.lrScale ?? 1
            if let last = runs.last, last.rate == r, last.lrScale == scale, last.range.upperBound == e.offset {
                runs[runs.count - 1] = Run(range: last.range.lowerBound..<end, rate: r, lrScale: scale)
            } else {
                runs.append(Run(range: e.offset..<end, rate: r, lrScale: scale))
            }
        }
        if runs.isEmpty { runs = [Run(range: 0..<layout.count, rate: rate, lrScale: 1)] }
        self.runs = runs
    }

    /// Runs that are trained (lr scale above 0).
    public var trained: [Run] { runs.filter { $0.lrScale > 0 } }
}
