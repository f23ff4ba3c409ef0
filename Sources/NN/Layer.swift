import TensorCore

/// How a parameter is filled at initialisation.
public enum Initializer: Sendable, Equatable {
    case zeros
    case ones
    case constant(Float)
    case uniform(Float)      // U(−bound, bound)
    case normal(Float)       // N(0, std²)
}

/// A trainable tensor. The model binds `value` and `grad` to views of its arenas.
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public let initializer: Initializer
    public private(set) var value: Tensor
    public private(set) var grad: Tensor

    public init(_ name: String, shape: [Int], initializer: Initializer) {
        self.name = name
        self.shape = shape
        self.initializer = initializer
        value = Tensor(shape: shape)
        grad = Tensor(shape: shape)
    }

    public var count: Int { shape.reduce(1, *) }

    /// Points this parameter at arena storage.
    public func bind(value: Tensor, grad: Tensor) {
        precondition(value.shape == shape && grad.shape == shape)
        self.value = value
        self.grad = grad
    }

    public func initialize(_ rng: inout RNG) {
        let p = value.data
        switch initializer {
        case .zeros: value.fill(0)
        case .ones: value.fill(1)
        case .constant(let c): value.fill(c)
        case .uniform(let b): for i in 0..<count { p[i] = rng.uniform(-b, b) }
        case .normal(let s): for i in 0..<count { p[i] = s * rng.normal() }
        }
    }
}

/// State a layer keeps that is not trained (BatchNorm's running statistics). Saved in
/// checkpoints under the layer's prefix, like PyTorch's registered buffers.
public final class Buffer {
    public let name: String
    public let shape: [Int]
    public let value: Tensor
    /// Stored as I64 in checkpoints (PyTorch's `num_batches_tracked`).
    public let isCounter: Bool
    public let initial: Float

    public init(_ name: String, shape: [Int], fill: Float = 0, isCounter: Bool = false) {
        self.name = name
        self.shape = shape
        value = Tensor(shape: shape)
        initial = fill
        value.fill(fill)
        self.isCounter = isCounter
    }

    public func reset() { value.fill(initial) }
}

/// Random numbers for layers that draw them during training (dropout), shared by a model so
/// that one saved state reproduces every draw.
public final class RandomSource {
    public var rng: RNG
    public init(_ rng: RNG) { self.rng = rng }
}

/// Scratch memory shared by a model's layers for work that is not kept past one call: a
/// convolution unfolds a block of samples into its part's buffers, runs its products there and
/// leaves nothing behind, so the model holds one set of buffers per core instead of each layer
/// keeping the unfolded batch (hundreds of MB for an evaluation batch of 1000).
public final class Workspace {
    /// One set per part of a `Parallel.forEachPart` loop.
    private var parts: [PartScratch] = []
    public init() {}

    /// At least `count` sets, one per part (call outside the parallel loop that uses them).
    public func reserve(_ count: Int) -> [PartScratch] {
        while parts.count < count { parts.append(PartScratch()) }
        return parts
    }
}

/// The buffers one core uses inside a layer's parallel loop.
public final class PartScratch {
    public let columns, product, gradColumns, weightGrad, biasGrad: Tensor
    init() {
        columns = .workspace(); product = .workspace(); gradColumns = .workspace()
        weightGrad = .workspace(); biasGrad = .workspace()
    }
}

/// One layer with a hand-written backward pass.
///
/// `forward` caches what `backward` needs; `backward` *adds* parameter gradients into the
/// bound gradient views and returns the gradient with respect to the input (or nil when
/// `needInputGrad` is false, which lets the first layer skip that product). Inputs and
/// outputs are batch-major: shape `[batch] + sampleShape`, any number of trailing axes.
/// Returned tensors are buffers the layer owns and reuses; they stay valid until the layer's
/// next forward/backward call.
///
/// Everything about a layer family lives in its file: the kernels, the FLOP count, the naive
/// reference the tests check the kernels against, and the `LayerKind`s that build it from a
/// job file (listed once in `LayerRegistry`).
public protocol Layer: AnyObject {
    /// Per-sample output shape.
    var outputShape: [Int] { get }
    /// Trainable parameters of this layer itself, in state_dict order.
    var parameters: [Parameter] { get }
    /// Sub-layers with their state_dict name prefixes (containers only).
    var children: [(name: String, layer: Layer)] { get }
    /// Non-trainable state of this layer itself, in state_dict order.
    var buffers: [Buffer] { get }
    /// Forward FLOPs per sample by the seed table's formulas (a multiply-add counts 2);
    /// containers report the sum of their children.
    var flops: Int { get }

    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor?

    /// The forward pass in Double, written from the formula rather than from the kernel, for
    /// the gradient checks: `x` holds `batch` samples; parameters come from `r` (which the
    /// checks perturb) and containers run their children through `r`.
    func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double]
}

/// A layer whose input is integer ids (an embedding): the model hands it the batch's
/// `IntTensor` directly, so ids never pass through Float.
public protocol IndexInputLayer: Layer {
    func forward(indices: IntTensor, training: Bool) -> Tensor
}

extension Layer {
    public var parameters: [Parameter] { [] }
    public var children: [(name: String, layer: Layer)] { [] }
    public var buffers: [Buffer] { [] }

    /// Every buffer below this layer with its dotted state_dict name.
    public func namedBuffers(prefix: String = "") -> [(name: String, buffer: Buffer)] {
        var out = buffers.map { (prefix + $0.name, $0) }
        for c in children { out += c.layer.namedBuffers(prefix: prefix + c.name + ".") }
        return out
    }

    /// Every parameter below this layer with its dotted state_dict name, in state_dict order.
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var out = parameters.map { (prefix + $0.name, $0) }
        for c in children { out += c.layer.namedParameters(prefix: prefix + c.name + ".") }
        return out
    }

    /// FLOPs of the children (for containers).
    var childFlops: Int { children.reduce(0) { $0 + $1.layer.flops } }
}

/// Batch size of a batch-major tensor.
@inline(__always) func batchSize(_ x: Tensor) -> Int { x.shape.first ?? 0 }

/// Double parameter values for reference forwards, keyed by the Parameter object, so the
/// gradient checks can perturb them one at a time.
public final class Reference {
    public var params: [ObjectIdentifier: [Double]] = [:]

    public init(_ layer: Layer) {
        for (_, p) in layer.namedParameters() { params[ObjectIdentifier(p)] = p.value.array.map(Double.init) }
    }

    public func value(_ p: Parameter) -> [Double] { params[ObjectIdentifier(p)]! }

    /// The reference forward of `layer` (containers call this for their children).
    public func run(_ layer: Layer, _ x: [Double], batch: Int, training: Bool) -> [Double] {
        layer.reference(x, batch: batch, training: training, self)
    }
}
