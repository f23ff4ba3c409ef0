import Config
import TensorCore

/// What a layer builder knows: where the layer sits (for error messages), its input shape,
/// and the model's random source.
public struct LayerContext {
    public let inputShape: [Int]
    public let random: RandomSource
    public let source: String
    public let path: String
    public let workspace: Workspace

    public init(inputShape: [Int], random: RandomSource, source: String, path: String, workspace: Workspace = Workspace()) {
        self.inputShape = inputShape
        self.random = random
        self.source = source
        self.path = path
        self.workspace = workspace
    }

    func at(_ path: String, input: [Int]) -> LayerContext {
        LayerContext(inputShape: input, random: random, source: source, path: path, workspace: workspace)
    }

    func error(_ m: String) -> ConfigError { ConfigError(source: source, path: path, m) }
}

/// Builds layers from their spec entries, validating options and shapes. A spec entry is a
/// type name (`relu`) or a mapping with `type` and options (`{type: conv2d, out: 32, kernel: 3}`).
public enum LayerFactory {
    public typealias Builder = (_ options: ConfigReader, _ context: LayerContext) throws -> Layer

    public static func build(_ spec: ConfigValue, _ ctx: LayerContext) throws -> Layer {
        let type: String
        let options: ConfigReader
        switch spec {
        case .string(let s):
            type = s
            options = try ConfigReader(.null, source: ctx.source, path: ctx.path)
        case .map:
            options = try ConfigReader(spec, source: ctx.source, path: ctx.path)
            type = try options.requiredString("type")
        default:
            throw ctx.error("expected a layer (a name like relu, or a mapping with a type), found \(spec.summary)")
        }
        guard let builder = builders[type] else {
            throw ctx.error("unknown layer type \"\(type)\" (known: \(builders.keys.sorted().joined(separator: ", ")))")
        }
        let layer: Layer
        do {
            layer = try builder(options, ctx)
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ctx.error("\(error)")
        }
        try options.finish()
        return layer
    }

    /// A spec with every named block replaced by the primitive layers it expands to (what a
    /// `torch.nn` mirror of the model needs). Names and shapes are unchanged.
    public static func expanded(_ specs: [ConfigValue], _ layers: [Layer]) -> [ConfigValue] {
        zip(specs, layers).map { spec, layer in expandOne(spec, layer) }
    }

    static func expandOne(_ spec: ConfigValue, _ layer: Layer) -> ConfigValue {
        if let s = layer as? Sequential, let e = s.expandedSpec, case .list(let inner)? = e["layers"] {
            return .object(["type": "sequential", "layers": .list(expanded(inner, s.layers))])
        }
        guard case .map(var entries) = spec else { return spec }
        if let r = layer as? Residual {
            for i in entries.indices {
                if entries[i].key == "body", case .list(let l) = entries[i].value { entries[i].value = .list(expanded(l, r.body.layers)) }
                if entries[i].key == "shortcut", case .list(let l) = entries[i].value, let sc = r.shortcut {
                    entries[i].value = .list(expanded(l, sc.layers))
                }
            }
        } else if let c = layer as? Concat, let i = entries.firstIndex(where: { $0.key == "branches" }),
                  case .list(let bs) = entries[i].value {
            entries[i].value = .list(zip(bs, c.branches).map { b, seq in
                guard case .list(let l) = b else { return b }
                return .list(expanded(l, seq.layers))
            })
        } else if let s = layer as? Sequential, let i = entries.firstIndex(where: { $0.key == "layers" }),
                  case .list(let l) = entries[i].value {
            entries[i].value = .list(expanded(l, s.layers))
        }
        return .map(entries)
    }

    /// A list of layers as a Sequential, each built on the previous one's output.
    public static func sequence(_ specs: [ConfigValue], _ ctx: LayerContext) throws -> Sequential {
        var shape = ctx.inputShape
        var layers: [Layer] = []
        for (i, s) in specs.enumerated() {
            let l = try build(s, ctx.at("\(ctx.path)[\(i)]", input: shape))
            layers.append(l)
            shape = l.outputShape
        }
        return Sequential(inputShape: ctx.inputShape, layers)
    }

    /// Every layer type a spec may name.
    public static let builders: [String: Builder] = primitives.merging(Blocks.builders) { a, _ in a }

    static let primitives: [String: Builder] = [
        "linear": { r, c in
            guard c.inputShape.count == 1 else {
                throw c.error("linear needs a flat input, got per-sample shape \(c.inputShape); add a flatten layer before it")
            }
            let out = try r.requiredInt("out", min: 1)
            let scheme = try r.string("init", default: "torch", oneOf: Linear.Init.allCases.map(\.rawValue))
            return Linear(c.inputShape[0], out, bias: try r.bool("bias", default: true), init: Linear.Init(rawValue: scheme)!)
        },
        "conv2d": { r, c in
            try Conv2D(inputShape: c.inputShape, workspace: c.workspace, outChannels: try r.requiredInt("out", min: 1),
                       kernel: try r.pair("kernel", default: nil, min: 1), stride: try r.pair("stride", default: 1, min: 1),
                       padding: try r.pair("padding", default: 0, min: 0), dilation: try r.pair("dilation", default: 1, min: 1),
                       groups: try r.int("groups", default: 1, min: 1), bias: try r.bool("bias", default: true))
        },
        "maxpool": { r, c in
            try MaxPool2D(inputShape: c.inputShape, kernel: try r.int("kernel", default: 2, min: 1),
                          stride: try r.optionalInt("stride", min: 1), padding: try r.int("padding", default: 0, min: 0))
        },
        "avgpool": { r, c in
            try AvgPool2D(inputShape: c.inputShape, kernel: try r.int("kernel", default: 2, min: 1),
                          stride: try r.optionalInt("stride", min: 1), padding: try r.int("padding", default: 0, min: 0))
        },
        "global_avgpool": { _, c in try GlobalAvgPool(inputShape: c.inputShape) },
        "flatten": { _, c in Flatten(c.inputShape) },
        "dropout": { r, c in Dropout(shape: c.inputShape, p: Float(try r.double("p", default: 0.5, min: 0, max: 0.99)), random: c.random) },
        "batchnorm": { r, c in
            BatchNorm(inputShape: c.inputShape, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                      momentum: Float(try r.double("momentum", default: 0.1, min: 0, max: 1)))
        },
        "layernorm": { r, c in
            LayerNorm(shape: c.inputShape, eps: Float(try r.double("eps", default: 1e-5, min: 0)), affine: try r.bool("affine", default: true))
        },
        "groupnorm": { r, c in
            let g = try r.requiredInt("groups", min: 1)
            guard c.inputShape[0] % g == 0 else { throw c.error("groupnorm: \(c.inputShape[0]) channels are not divisible by \(g) groups") }
            return GroupNorm(shape: c.inputShape, groups: g, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                             affine: try r.bool("affine", default: true))
        },
        "instancenorm": { r, c in
            guard c.inputShape.count == 3 else { throw c.error("instancenorm needs a [channels, height, width] input") }
            return InstanceNorm(shape: c.inputShape, eps: Float(try r.double("eps", default: 1e-5, min: 0)),
                                affine: try r.bool("affine", default: false))
        },
        "relu": { _, c in ReLU(c.inputShape) },
        "relu6": { _, c in ReLU6(c.inputShape) },
        "sigmoid": { _, c in Sigmoid(c.inputShape) },
        "tanh": { _, c in Tanh(c.inputShape) },
        "leaky_relu": { r, c in LeakyReLU(c.inputShape, alpha: Float(try r.double("alpha", default: 0.01))) },
        "prelu": { r, c in PReLU(c.inputShape, perChannel: try r.bool("per_channel", default: false)) },
        "elu": { r, c in ELU(c.inputShape, alpha: Float(try r.double("alpha", default: 1))) },
        "gelu": { r, c in GELU(c.inputShape, approximateTanh: try r.string("approximate", default: "none", oneOf: ["none", "tanh"]) == "tanh") },
        "silu": { _, c in Swish(c.inputShape, beta: 1) },
        "swish": { r, c in Swish(c.inputShape, beta: Float(try r.double("beta", default: 1))) },
        "softplus": { r, c in
            Softplus(c.inputShape, beta: Float(try r.double("beta", default: 1, min: 1e-6)),
                     threshold: Float(try r.double("threshold", default: 20)))
        },
        "scaled_sigmoid": { r, c in
            let lo = try r.requiredDouble("low"), hi = try r.requiredDouble("high")
            guard hi > lo else { throw r.error("high", "must be greater than low (\(lo))") }
            return ScaledSigmoid(c.inputShape, lo: Float(lo), hi: Float(hi))
        },
        "softmax": { _, c in Softmax(c.inputShape, log: false) },
        "log_softmax": { _, c in Softmax(c.inputShape, log: true) },
        "sequential": { r, c in
            guard let l = try r.optionalList("layers") else { throw r.error("layers", "required: a list of layers") }
            return try sequence(l, c.at(r.join("layers"), input: c.inputShape))
        },
        "residual": { r, c in
            guard let body = try r.optionalList("body"), !body.isEmpty else { throw r.error("body", "required: a non-empty list of layers") }
            let b = try sequence(body, c.at(r.join("body"), input: c.inputShape))
            let sc = try r.optionalList("shortcut").map { try sequence($0, c.at(r.join("shortcut"), input: c.inputShape)) }
            return try Residual(body: b, shortcut: sc)
        },
        "concat": { r, c in
            guard let branches = try r.optionalList("branches"), !branches.isEmpty else {
                throw r.error("branches", "required: a list of branches (each a list of layers)")
            }
            return try Concat(branches: try branches.enumerated().map { i, b in
                guard case .list(let l) = b else { throw r.error("branches[\(i)]", "expected a list of layers") }
                return try sequence(l, c.at(r.join("branches[\(i)]"), input: c.inputShape))
            })
        },
    ]
}

extension ConfigReader {
    /// An integer or a two-integer list ([h, w]), as conv2d's kernel, stride, padding, dilation.
    func pair(_ key: String, default d: Int?, min: Int) throws -> (Int, Int) {
        guard let v = value(key) else {
            guard let d else { throw error(key, "required: an integer or [height, width]") }
            return (d, d)
        }
        switch v {
        case .int(let i) where i >= min: return (i, i)
        case .list(let l) where l.count == 2:
            if case .int(let a) = l[0], case .int(let b) = l[1], a >= min, b >= min { return (a, b) }
        default: break
        }
        throw error(key, "expected an integer ≥ \(min) or a list of two, found \(v.summary)")
    }
}
