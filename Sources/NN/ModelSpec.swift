import Config

/// What a checkpoint or job file needs to rebuild a model: the per-sample input shape and the
/// layer list, each layer a type name plus options, e.g. `{type: linear, out: 256}` or `relu`.
public struct ModelSpec: Equatable, Sendable {
    public var input: [Int]
    public var layers: [ConfigValue]

    public init(input: [Int], layers: [ConfigValue]) {
        self.input = input
        self.layers = layers
    }

    /// Reads a model: a zoo name (`resnet_small`) or `{input: [...], layers: [...]}`.
    public init(_ value: ConfigValue, source: String, path: String = "model") throws {
        if case .string(let name) = value {
            guard let m = ModelSpec.zoo[name] else {
                throw ConfigError(source: source, path: path,
                                  "unknown model \"\(name)\" (zoo: \(ModelSpec.zoo.keys.sorted().joined(separator: ", ")); or give {input, layers})")
            }
            self = m
            return
        }
        try self.init(try ConfigReader(value, source: source, path: path))
    }

    /// Reads `{input: [...], layers: [...]}`, or `{base: ZOO_NAME}` for a zoo model's; `head`
    /// (a layer or a list of them) replaces the last layer — a new head for fine-tuning, e.g.
    /// `{base: cnn_bn, head: {type: linear, out: 5}}`. Every other layer keeps its index, so
    /// its tensors keep their names and `--init-partial` loads them.
    public init(_ r: ConfigReader) throws {
        var base: ModelSpec?
        if let name = try r.optionalString("base") {
            guard let m = ModelSpec.zoo[name] else {
                throw r.error("base", "unknown model \"\(name)\" (zoo: \(ModelSpec.zoo.keys.sorted().joined(separator: ", ")))")
            }
            base = m
        }
        guard let input = try r.intList("input", min: 1) ?? base?.input, !input.isEmpty else {
            throw r.error("input", "required: the per-sample input shape, e.g. [1, 28, 28]")
        }
        if base != nil && r.has("layers") { throw r.error("layers", "give base (a zoo model) or layers, not both") }
        guard var layers = try r.optionalList("layers") ?? base?.layers, !layers.isEmpty else {
            throw r.error("layers", "required: a non-empty list of layers")
        }
        if let head = r.value("head") {
            let new: [ConfigValue]
            if case .list(let l) = head { new = l } else { new = [head] }
            guard !new.isEmpty else { throw r.error("head", "expected a layer or a non-empty list of layers") }
            layers = layers.dropLast() + new
        }
        try r.finish()
        self.init(input: input, layers: layers)
    }

    /// Whether the model reads integer ids: its first layer is an embedding.
    public var takesIndices: Bool {
        let first = layers.first
        let type: String? = switch first {
        case .string(let s)?: s
        case .map?: first?["type"].flatMap { if case .string(let s) = $0 { s } else { nil } }
        default: nil
        }
        return type.flatMap { LayerRegistry.kinds[$0]?.takesIndices } ?? false
    }

    public var configValue: ConfigValue {
        .object(["input": .list(input.map { .int($0) }), "layers": .list(layers)])
    }

    /// The default Fashion-MNIST MLP: 784-256-128-10 with ReLU.
    public static let mlp = ModelSpec(input: [1, 28, 28], layers: [
        .string("flatten"),
        .object(["type": .string("linear"), "out": .int(256)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(128)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(10)]),
    ])
}
