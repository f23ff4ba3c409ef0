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

    /// `gradientStorage(n)`, if given, supplies the gradient arena's n floats (a communicator's
    /// buffer that ranks on one host all-reduce in place).
    public init(spec: ModelSpec, source: String = "model",
                gradientStorage: ((Int) throws -> FloatStorage)? = nil) throws {
        self.spec = spec
        network = try LayerFactory.sequence(spec.layers, LayerContext(inputShape: spec.input, random: random,
                                                                      source: source, path: "model.layers",
                                                                      workspace: Workspace()))
        parameters = network.namedParameters()
        buffers = network.namedBuffers()
        let layout = ArenaLayout(parameters.reversed().map { ($0.name, $0.parameter.shape) })
        values = Arena(layout)
        grads = Arena(layout, reserve: Model.gradientReserve,
                      storage: try gradientStorage?(Arena.capacity(layout, reserve: Model.gradientReserve)))
        for (name, p) in parameters {
            let e = layout.entry(named: name)!
            p.bind(value: values.view(e), grad: grads.view(e))
        }
    }

    /// Spare floats after the gradient arena (see `Arena.reserve`).
    public static let gradientReserve = 16

    /// Where each top-level layer's parameters lie in the arenas (nil for layers without any).
    public var layerRanges: [Range<Int>?] {
        network.layers.map { layer in
            let spans = layer.namedParameters().map { p -> Range<Int> in
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
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.parameter.count } }

    /// Fills every parameter from its initializer, in state_dict order, from one seeded stream,
    /// and resets buffers and the training-time random stream.
    public func initialize(seed: UInt64, stream: String = "init") {
        var rng = RNG(seed: seed, stream: stream)
        for (_, p) in parameters { p.initialize(&rng) }
        for (_, b) in buffers { b.reset() }
        random.rng = RNG(seed: seed, stream: "dropout")
    }

    public func parameter(named name: String) -> Parameter? {
        parameters.first { $0.name == name }?.parameter
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
