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
    /// Whether the input at this point may be integer ids (a model's first layer).
    public let indexInput: Bool
    /// Per-batch sequence facts (padding) the attention layers of one model share.
    public let sequence: SequenceContext
    /// The layers built before this one in the same list (a tied head finds its embedding here).
    public let earlier: [Layer]

    public init(inputShape: [Int], random: RandomSource, source: String, path: String,
                workspace: Workspace = Workspace(), indexInput: Bool = true, sequence: SequenceContext = SequenceContext(),
                earlier: [Layer] = []) {
        self.inputShape = inputShape
        self.random = random
        self.source = source
        self.path = path
        self.workspace = workspace
        self.indexInput = indexInput
        self.sequence = sequence
        self.earlier = earlier
    }

    func at(_ path: String, input: [Int], earlier: [Layer] = []) -> LayerContext {
        LayerContext(inputShape: input, random: random, source: source, path: path, workspace: workspace, indexInput: indexInput,
                     sequence: sequence, earlier: earlier)
    }

    var withFloatInput: LayerContext {
        LayerContext(inputShape: inputShape, random: random, source: source, path: path, workspace: workspace, indexInput: false,
                     sequence: sequence, earlier: earlier)
    }

    public func error(_ m: String) -> ConfigError { ConfigError(source: source, path: path, m) }
}

/// One layer type a job file may name: its spec name and the builder that validates its
/// options against the input shape. Each family file declares its kinds beside the layer.
public struct LayerKind {
    public let name: String
    /// The layer reads integer ids (so a model starting with it is fed ids, not floats).
    public let takesIndices: Bool
    public let build: (_ options: ConfigReader, _ context: LayerContext) throws -> Layer
    public init(_ name: String, takesIndices: Bool = false,
                _ build: @escaping (_ options: ConfigReader, _ context: LayerContext) throws -> Layer) {
        self.name = name
        self.takesIndices = takesIndices
        self.build = build
    }
}

/// Every layer type a spec may name. Adding a family means writing its file (layer, FLOPs,
/// reference, kinds) and adding its kinds to this list.
public enum LayerRegistry {
    static let families: [[LayerKind]] = [
        Linear.kinds, Embedding.kinds, Recurrent.kinds, MultiHeadAttention.kinds, TransformerEncoderLayer.kinds,
        TransformerDecoderLayer.kinds, EncoderDecoder.kinds, positionKinds,
        Conv2D.kinds, poolingKinds, normalizationKinds, activationKinds,
        Dropout.kinds, Reshape.kinds, containerKinds, Blocks.kinds,
    ]

    public static let kinds: [String: LayerKind] = {
        var d: [String: LayerKind] = [:]
        for k in families.joined() {
            precondition(d[k.name] == nil, "layer type \(k.name) registered twice")
            d[k.name] = k
        }
        return d
    }()
}

/// Builds layers from their spec entries, validating options and shapes. A spec entry is a
/// type name (`relu`) or a mapping with `type` and options (`{type: conv2d, out: 32, kernel: 3}`).
public enum LayerFactory {

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
        guard let kind = LayerRegistry.kinds[type] else {
            throw ctx.error("unknown layer type \"\(type)\" (known: \(LayerRegistry.kinds.keys.sorted().joined(separator: ", ")))")
        }
        let layer: Layer
        do {
            layer = try kind.build(options, ctx)
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

    /// A list of layers as a Sequential, each built on the previous one's output. Only the
    /// first layer of a model may take integer ids (`ctx.indexInput`).
    public static func sequence(_ specs: [ConfigValue], _ ctx: LayerContext) throws -> Sequential {
        var shape = ctx.inputShape
        var layers: [Layer] = []
        for (i, s) in specs.enumerated() {
            let c = ctx.at("\(ctx.path)[\(i)]", input: shape, earlier: layers)
            let l = try build(s, i == 0 ? c : c.withFloatInput)
            if l is IndexInputLayer && !(i == 0 && ctx.indexInput) {
                throw c.error("this layer takes integer ids, so it must be the model's first layer")
            }
            layers.append(l)
            shape = l.outputShape
        }
        return Sequential(inputShape: ctx.inputShape, layers)
    }
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
