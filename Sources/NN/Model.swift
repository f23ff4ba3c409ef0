import Config
import TensorCore

/// A network built from a `ModelSpec`, with its parameters and gradients in two arenas.
///
/// The arenas are laid out in reverse state_dict order: backward produces the last layer's
/// gradients first, and those sit at the front, so gradient buckets are contiguous slices
/// that fill from offset 0 upward as backward proceeds.
public final class Model {
    public let spec: ModelSpec
    public let network: Sequential
    /// Parameters in state_dict order ("1.weight", "1.bias", …).
    public let parameters: [(name: String, parameter: Parameter)]
    public let values: Arena
    public let grads: Arena

    /// Non-trainable state (BatchNorm statistics) in state_dict order.
    public let buffers: [(name: String, buffer: Buffer)]
    /// Draws made during training (dropout masks); saved in checkpoints.
    public let random = RandomSource(RNG(seed: 0))
    /// Padding of the current batch, read by the attention layers.
    public let sequence = SequenceContext()

    /// `gradientStorage(n)`, if given, supplies the gradient arena's n floats (a communicator's
    /// buffer that ranks on one host all-reduce in place).
    public init(spec: ModelSpec, source: String = "model",
                gradientStorage: ((Int) throws -> FloatStorage)? = nil) throws {
        self.spec = spec
        network = try LayerFactory.sequence(spec.layers, LayerContext(inputShape: spec.input, random: random,
                                                                      source: source, path: "model.layers",
                                                                      workspace: Workspace(), sequence: sequence))
        parameters = network.namedParameters()
        buffers = network.namedBuffers()
        // A tied parameter appears under two names (both in checkpoints, as in a PyTorch state
        // dict) but lives once in the arenas, under its first name.
        var seen = Set<ObjectIdentifier>()
        unique = parameters.filter { seen.insert(ObjectIdentifier($0.parameter)).inserted }
        let layout = ArenaLayout(unique.reversed().map { ($0.name, $0.parameter.shape) })
        values = Arena(layout)
        grads = Arena(layout, reserve: Model.gradientReserve,
                      storage: try gradientStorage?(Arena.capacity(layout, reserve: Model.gradientReserve)))
        for (name, p) in unique {
            let e = layout.entry(named: name)!
            p.bind(value: values.view(e), grad: grads.view(e))
        }
    }

    /// Each parameter once, under the first name it has (the arena's entries).
    public let unique: [(name: String, parameter: Parameter)]

    /// Spare floats after the gradient arena (see `Arena.reserve`).
    public static let gradientReserve = 16

    /// Where each top-level layer's parameters lie in the arenas (nil for layers without any). A
    /// tied parameter counts for the first layer that has it: its gradient is final only once
    /// backward has passed that (earliest) layer.
    public var layerRanges: [Range<Int>?] {
        var owner: [ObjectIdentifier: Int] = [:]
        for (i, layer) in network.layers.enumerated() {
            for (_, p) in layer.namedParameters() where owner[ObjectIdentifier(p)] == nil { owner[ObjectIdentifier(p)] = i }
        }
        return network.layers.enumerated().map { i, layer in
            let spans = layer.namedParameters().filter { owner[ObjectIdentifier($0.parameter)] == i }.map { p -> Range<Int> in
                let start = values.data.distance(to: p.parameter.value.data)
                return start..<(start + p.parameter.count)
            }
            guard let lo = spans.map(\.lowerBound).min(), let hi = spans.map(\.upperBound).max() else { return nil }
            return lo..<hi
        }
    }

    /// Every layer, containers and their contents, depth first.
    public var allLayers: [Layer] {
        func walk(_ l: Layer) -> [Layer] { [l] + l.children.flatMap { walk($0.layer) } }
        return network.layers.flatMap(walk)
    }

    /// The spec with named blocks expanded into primitive layers.
    public var expandedSpec: ModelSpec {
        ModelSpec(input: spec.input, layers: LayerFactory.expanded(spec.layers, network.layers))
    }

    public var inputShape: [Int] { spec.input }
    public var outputShape: [Int] { network.outputShape }
    /// Trainable values, each tied parameter once (as `sum(p.numel() for p in model.parameters())`).
    public var parameterCount: Int { unique.reduce(0) { $0 + $1.parameter.count } }

    /// Fills every parameter from its initializer, in state_dict order, from one seeded stream,
    /// and resets buffers and the training-time random stream.
    public func initialize(seed: UInt64, stream: String = "init") {
        var rng = RNG(seed: seed, stream: stream)
        for (_, p) in unique { p.initialize(&rng) }
        for (_, b) in buffers { b.reset() }
        random.rng = RNG(seed: seed, stream: "dropout")
    }

    public func parameter(named name: String) -> Parameter? {
        parameters.first { $0.name == name }?.parameter
    }

    /// The embedding that reads the model's ids (its first layer, or an encoder–decoder's shared one).
    public var inputEmbedding: Embedding? {
        (network.layers.first as? Embedding) ?? (network.layers.first as? EncoderDecoder)?.shared
    }

    /// Whether the model reads integer ids (its first layer is an embedding).
    public var takesIndices: Bool { network.layers.first is IndexInputLayer }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        network.forward(x, training: training)
    }

    /// Integer ids go straight to the first layer (an embedding); the rest runs on its output.
    public func forward(indices: IntTensor, training: Bool) -> Tensor {
        guard let first = network.layers.first as? IndexInputLayer else {
            preconditionFailure("model takes floats, not ids (check takesIndices before)")
        }
        return network.forward(first.forward(indices: indices, training: training), from: 1, training: training)
    }

    /// Backward from dL/d(output). `onLayerDone(i)` runs once layer i's gradients are final.
    public func backward(_ dy: Tensor, onLayerDone: ((Int) -> Void)? = nil) {
        _ = network.backward(dy, needInputGrad: false, onLayerDone: onLayerDone)
    }

    /// Backward that also returns dL/d(input) (a GAN's generator trains through its
    /// discriminator's input gradient). Float inputs only.
    public func inputGradient(_ dy: Tensor) -> Tensor? {
        network.backward(dy, needInputGrad: true, onLayerDone: nil)
    }

    public func zeroGrad() { grads.zero() }
}
