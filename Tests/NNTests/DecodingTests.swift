import Config
import NN
import TensorCore
import TestSupport
import Testing

/// A decoder-only model on `[T]` ids: embedding, positions, two causal layers, norm, tied head.
func decoderSpec(_ positions: String, normFirst: Bool = true, steps: Int = 7, vocab: Int = 11) -> ModelSpec {
    var layers: [ConfigValue] = [["type": "embedding", "vocab": .int(vocab), "dim": 8]]
    var attn = "none"
    switch positions {
    case "learned": layers.append(["type": "learned_positions", "max_len": .int(steps + 3)])
    case "sinusoidal": layers.append("sinusoidal_positions")
    default: attn = positions
    }
    layers.append(["type": "repeat", "times": 2, "layer": ["type": "transformer_encoder_layer", "heads": 2, "ffn": 16, "dropout": 0,
                                                           "activation": "gelu", "norm_first": .bool(normFirst), "causal": true,
                                                           "positions": .string(attn)]])
    layers += ["layernorm", ["type": "linear", "out": .int(vocab), "bias": false, "tie": 0]]
    return ModelSpec(input: [steps], layers: layers)
}

/// Decoding positions 0…T−1 one at a time (key/value caches, recurrent state) gives the logits
/// the full causal forward gives at each position.
func expectStepsMatchForward(_ spec: ModelSpec, _ what: String) throws {
    let m = try Model(spec: spec)
    m.initialize(seed: 5)
    let t = spec.input[0], b = 2, v = m.network.outputShape.last!
    var rng = RNG(seed: 9)
    let ids = IntTensor((0..<(b * t)).map { _ in Int32(rng.below(11)) }, shape: [b, t])
    #expect(m.decodeProblem == nil, "\(what): \(m.decodeProblem ?? "")")
    let full = m.forward(indices: ids, training: false).clone()
    for p in 0..<t {
        let step = m.decodeStep(tokens: IntTensor((0..<b).map { ids[$0 * t + p] }, shape: [b]), position: p)
        #expect(step.shape == [b, v], "\(what): step shape \(step.shape)")
        var worst: Float = 0
        for bi in 0..<b { for j in 0..<v { worst = max(worst, abs(step[bi * v + j] - full[(bi * t + p) * v + j])) } }
        #expect(worst < 1e-4, "\(what): position \(p) differs from the full forward by \(worst)")
    }
    // A second sequence starts afresh at position 0 (the caches reset).
    let again = m.decodeStep(tokens: IntTensor((0..<b).map { ids[$0 * t] }, shape: [b]), position: 0)
    #expect(abs(again[0] - full[0]) < 1e-5, "\(what): position 0 after a reset")
}

@Test(arguments: ["learned", "sinusoidal", "rope", "alibi", "t5"])
func decoderStepsMatchTheFullForward(positions: String) throws {
    try expectStepsMatchForward(decoderSpec(positions), "pre-LN \(positions)")
    try expectStepsMatchForward(decoderSpec(positions, normFirst: false), "post-LN \(positions)")
}

@Test(arguments: ["rnn", "lstm", "gru"])
func recurrentStepsMatchTheFullForward(cell: String) throws {
    let spec = ModelSpec(input: [6], layers: [["type": "embedding", "vocab": 11, "dim": 5],
                                              ["type": .string(cell), "hidden": 12, "layers": 2],
                                              ["type": "linear", "out": 11]])
    try expectStepsMatchForward(spec, cell)
}

/// Models that look ahead cannot generate token by token, and say which layer is why.
@Test func lookAheadLayersCannotDecode() throws {
    func problem(_ layers: [ConfigValue]) throws -> String {
        try Model(spec: ModelSpec(input: [6], layers: layers)).decodeProblem ?? "none"
    }
    let emb: ConfigValue = ["type": "embedding", "vocab": 11, "dim": 8]
    #expect(try problem([emb, ["type": "transformer_encoder_layer", "heads": 2], ["type": "linear", "out": 11]])
        .contains("layer 1 (TransformerEncoderLayer): its attention is not causal"))
    #expect(try problem([emb, ["type": "lstm", "hidden": 4, "bidirectional": true], ["type": "linear", "out": 11]])
        .contains("bidirectional"))
    #expect(try problem([emb, ["type": "gru", "hidden": 4, "output": "last"], ["type": "linear", "out": 11]]).contains("only the last step"))
    #expect(try problem([emb, "flatten", ["type": "linear", "out": 11]]).contains("layer 1 (Reshape): cannot run one position at a time"))
    #expect(try Model(spec: ModelSpec(input: [4], layers: [["type": "linear", "out": 3]])).decodeProblem?.contains("embedding") == true)
}
