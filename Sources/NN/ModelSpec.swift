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

    /// Reads `{input: [...], layers: [...]}`.
    public init(_ r: ConfigReader) throws {
        guard let input = try r.intList("input", min: 1), !input.isEmpty else {
            throw r.error("input", "required: the per-sample input shape, e.g. [1, 28, 28]")
        }
        guard let layers = try r.optionalList("layers"), !layers.isEmpty else {
            throw r.error("layers", "required: a non-empty list of layers")
        }
        try r.finish()
        self.init(input: input, layers: layers)
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

/// Builds layers from their spec entries, validating options and shapes.
public enum LayerFactory {
    public typealias Builder = (_ options: ConfigReader, _ inputShape: [Int]) throws -> Layer

    /// Every layer type a spec may name.
    public static let builders: [String: Builder] = [
        "linear": { r, shape in
            guard shape.count == 1 else {
                throw r.error("", "linear needs a flat input, got per-sample shape \(shape); add a flatten layer before it")
            }
            let out = try r.requiredInt("out", min: 1)
            let bias = try r.bool("bias", default: true)
            let scheme = try r.string("init", default: "torch", oneOf: Linear.Init.allCases.map(\.rawValue))
            return Linear(shape[0], out, bias: bias, init: Linear.Init(rawValue: scheme)!)
        },
        "relu": { _, shape in ReLU(shape) },
        "sigmoid": { _, shape in Sigmoid(shape) },
        "tanh": { _, shape in Tanh(shape) },
        "flatten": { _, shape in Flatten(shape) },
    ]

    public static func build(_ spec: ConfigValue, inputShape: [Int], source: String, path: String) throws -> Layer {
        let type: String
        let options: ConfigReader
        switch spec {
        case .string(let s):
            type = s
            options = try ConfigReader(.null, source: source, path: path)
        case .map:
            options = try ConfigReader(spec, source: source, path: path)
            type = try options.requiredString("type")
        default:
            throw ConfigError(source: source, path: path, "expected a layer (a name like relu, or a mapping with a type), found \(spec.summary)")
        }
        guard let builder = builders[type] else {
            throw ConfigError(source: source, path: path,
                              "unknown layer type \"\(type)\" (known: \(builders.keys.sorted().joined(separator: ", ")))")
        }
        let layer = try builder(options, inputShape)
        try options.finish()
        return layer
    }
}
