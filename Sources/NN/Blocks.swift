import Config

/// Named building blocks of the CNN family, expanded into primitive layers (so state-dict
/// names, summaries and checkpoints show the real layers). Each is a layer type in specs:
///
///     {type: vgg_block, out: 64, convs: 2, batchnorm: true}      VGG: [conv3×3 (+BN) + ReLU] × n, maxpool
///     {type: resnet_basic, out: 64, stride: 2}                   ResNet basic block (+ projection when needed)
///     {type: resnet_bottleneck, out: 256, width: 64, stride: 1}  1×1 → 3×3 → 1×1 bottleneck
///     {type: resnext_block, out: 256, cardinality: 32, width: 4} bottleneck with a grouped 3×3
///     {type: dense_block, growth: 12, layers: 4}                 DenseNet: x ← [x, BN-ReLU-conv3×3(x)]
///     {type: inverted_residual, out: 24, expand: 6, stride: 2}   MobileNetV2: expand → depthwise → project
///     {type: inception, b1: 16, b3r: 16, b3: 24, b5r: 4, b5: 8, pool: 8}   four parallel branches
enum Blocks {
    static func conv(_ out: Int, _ k: Int, stride: Int = 1, groups: Int = 1, bias: Bool = false) -> ConfigValue {
        .object(["type": .string("conv2d"), "out": .int(out), "kernel": .int(k), "stride": .int(stride),
                 "padding": .int(k / 2), "groups": .int(groups), "bias": .bool(bias)])
    }
    static let bn = ConfigValue.string("batchnorm")
    static let relu = ConfigValue.string("relu")

    /// Wraps a residual body (and a projection when the shape changes) followed by ReLU.
    static func residual(_ body: [ConfigValue], inChannels: Int, out: Int, stride: Int, finalReLU: Bool = true) -> [ConfigValue] {
        var r: [(String, ConfigValue)] = [("type", .string("residual")), ("body", .list(body))]
        if stride != 1 || inChannels != out { r.append(("shortcut", .list([conv(out, 1, stride: stride), bn]))) }
        return [.map(r.map { ConfigEntry(key: $0.0, value: $0.1) })] + (finalReLU ? [relu] : [])
    }

    /// A block is built as a `sequential` of primitive layers; `LayerFactory.expanded` shows it.
    static func expand(_ specs: [ConfigValue], _ c: LayerContext) throws -> Layer {
        let seq = try LayerFactory.sequence(specs, c)
        seq.expandedSpec = .object(["type": "sequential", "layers": .list(specs)])
        return seq
    }

    static func channels(_ c: LayerContext, _ type: String) throws -> Int {
        guard c.inputShape.count == 3 else { throw c.error("\(type) needs a [channels, height, width] input, got \(c.inputShape)") }
        return c.inputShape[0]
    }

    static let kinds: [LayerKind] = [
        LayerKind("vgg_block") { r, c in
            _ = try channels(c, "vgg_block")
            let out = try r.requiredInt("out", min: 1), n = try r.int("convs", default: 2, min: 1)
            let norm = try r.bool("batchnorm", default: false)
            var l: [ConfigValue] = []
            for _ in 0..<n { l += [conv(out, 3, bias: !norm)] + (norm ? [bn] : []) + [relu] }
            return try expand(l + [.string("maxpool")], c)
        },
        LayerKind("resnet_basic") { r, c in
            let cin = try channels(c, "resnet_basic")
            let out = try r.requiredInt("out", min: 1), s = try r.int("stride", default: 1, min: 1)
            return try expand(residual([conv(out, 3, stride: s), bn, relu, conv(out, 3), bn], inChannels: cin, out: out, stride: s), c)
        },
        LayerKind("resnet_bottleneck") { r, c in
            let cin = try channels(c, "resnet_bottleneck")
            let out = try r.requiredInt("out", min: 1), s = try r.int("stride", default: 1, min: 1)
            let w = try r.int("width", default: max(out / 4, 1), min: 1)
            return try expand(residual([conv(w, 1), bn, relu, conv(w, 3, stride: s), bn, relu, conv(out, 1), bn],
                                       inChannels: cin, out: out, stride: s), c)
        },
        LayerKind("resnext_block") { r, c in
            let cin = try channels(c, "resnext_block")
            let out = try r.requiredInt("out", min: 1), s = try r.int("stride", default: 1, min: 1)
            let card = try r.int("cardinality", default: 32, min: 1), w = try r.int("width", default: 4, min: 1)
            let inner = card * w
            return try expand(residual([conv(inner, 1), bn, relu, conv(inner, 3, stride: s, groups: card), bn, relu,
                                        conv(out, 1), bn], inChannels: cin, out: out, stride: s), c)
        },
        LayerKind("dense_block") { r, c in
            var ch = try channels(c, "dense_block")
            let growth = try r.int("growth", default: 12, min: 1), n = try r.int("layers", default: 4, min: 1)
            var l: [ConfigValue] = []
            for _ in 0..<n {
                l.append(.object(["type": .string("concat"),
                                  "branches": .list([.list([]), .list([bn, relu, conv(growth, 3)])])]))
                ch += growth
            }
            return try expand(l, c)
        },
        LayerKind("inverted_residual") { r, c in
            let cin = try channels(c, "inverted_residual")
            let out = try r.requiredInt("out", min: 1), s = try r.int("stride", default: 1, min: 1)
            let hidden = cin * (try r.int("expand", default: 6, min: 1))
            var body: [ConfigValue] = hidden == cin ? [] : [conv(hidden, 1), bn, .string("relu6")]
            body += [conv(hidden, 3, stride: s, groups: hidden), bn, .string("relu6"), conv(out, 1), bn]
            if s == 1 && cin == out {
                return try expand([.object(["type": .string("residual"), "body": .list(body)])], c)
            }
            return try expand(body, c)
        },
        LayerKind("inception") { r, c in
            _ = try channels(c, "inception")
            let b1 = try r.requiredInt("b1", min: 1), b3r = try r.requiredInt("b3r", min: 1), b3 = try r.requiredInt("b3", min: 1)
            let b5r = try r.requiredInt("b5r", min: 1), b5 = try r.requiredInt("b5", min: 1), pool = try r.requiredInt("pool", min: 1)
            let pooling = ConfigValue.object(["type": .string("maxpool"), "kernel": .int(3), "stride": .int(1), "padding": .int(1)])
            return try expand([.object(["type": .string("concat"), "branches": .list([
                .list([conv(b1, 1, bias: true), relu]),
                .list([conv(b3r, 1, bias: true), relu, conv(b3, 3, bias: true), relu]),
                .list([conv(b5r, 1, bias: true), relu, conv(b5, 5, bias: true), relu]),
                .list([pooling, conv(pool, 1, bias: true), relu]),
            ])])], c)
        },
    ]
}
