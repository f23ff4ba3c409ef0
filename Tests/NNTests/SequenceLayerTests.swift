import Config
import Glibc
import NN
import TensorCore
import TestSupport
import Testing

/// Recurrent layers against their step-by-step Double reference: outputs, input gradients and
/// every weight's gradient by central differences (BPTT over every step).
@Test(arguments: ["rnn", "lstm", "gru"])
func recurrentGradients(cell: String) throws {
    for (layers, bidirectional, last) in [(1, false, false), (2, true, false), (2, false, true), (1, true, true)] {
        let spec: ConfigValue = ["type": .string(cell), "hidden": 3, "layers": .int(layers), "bidirectional": .bool(bidirectional),
                                 "output": .string(last ? "last" : "sequence")]
        try check(spec, [4, 2], batch: 2)
    }
}

@Test func attentionGradients() throws {
    for positions in ["none", "rope", "alibi", "t5"] {
        for causal in [false, true] {
            try check(["type": "attention", "heads": 2, "causal": .bool(causal), "positions": .string(positions)], [5, 4], batch: 2)
        }
    }
    try check(["type": "attention", "heads": 3, "bias": false, "positions": "alibi"], [4, 6], batch: 2)
}

/// Keys marked as padding get no attention: changing them does not change any output, and the
/// Double reference (which skips them) agrees with the kernels' gradients.
@Test func paddingMasksKeys() throws {
    let ctx = SequenceContext()
    let a = MultiHeadAttention(embed: 4, heads: 2, steps: 5, causal: false, context: ctx)
    _ = initialized(a)
    ctx.keyPadding = [false, false, false, true, true, false, false, false, false, true]
    let x = GradCheck.input([2, 5, 4], seed: 3)
    let y = a.forward(x, training: true).clone()
    let x2 = x.clone()
    for j in [3, 4] { for c in 0..<4 { x2[(0 * 5 + j) * 4 + c] += 5 } }
    for c in 0..<4 { x2[(1 * 5 + 4) * 4 + c] -= 3 }
    let y2 = a.forward(x2, training: true)
    // Padded positions' own outputs change (their queries do); every other query's does not.
    for (bi, t) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)] {
        for c in 0..<4 { #expect(abs(y[(bi * 5 + t) * 4 + c] - y2[(bi * 5 + t) * 4 + c]) < 1e-5, "b \(bi) t \(t)") }
    }
    let d = GradCheck.inDouble(a, input: x)
    #expect(d.worst < 1e-4, "\(d)")
}

@Test func transformerAndPositionGradients() throws {
    for normFirst in [false, true] {
        for act in ["relu", "gelu"] {
            try check(["type": "transformer_encoder_layer", "heads": 2, "ffn": 6, "dropout": 0, "activation": .string(act),
                       "norm_first": .bool(normFirst), "causal": .bool(normFirst)], [3, 4], batch: 2, eps: 1e-3)
        }
    }
    try check(["type": "transformer_encoder_layer", "heads": 2, "ffn": 6, "dropout": 0, "positions": "rope", "norm_first": true], [3, 4], batch: 2, eps: 1e-3)
    try check("sinusoidal_positions", [5, 6])
    try check(["type": "learned_positions", "max_len": 8], [5, 6])
}

@Test func tiedHeadSharesTheEmbeddingWeight() throws {
    let spec = ModelSpec(input: [6], layers: [["type": "embedding", "vocab": 7, "dim": 4], ["type": "learned_positions"],
                                              ["type": "repeat", "times": 2, "layer": ["type": "transformer_encoder_layer", "heads": 2,
                                                                                      "ffn": 8, "dropout": 0, "norm_first": true, "causal": true]],
                                              "layernorm", ["type": "linear", "out": 7, "bias": false, "tie": 0]])
    let m = try Model(spec: spec)
    let head = try #require(m.network.layers[4] as? Linear), emb = try #require(m.network.layers[0] as? Embedding)
    #expect(head.weight === emb.weight)
    #expect(m.parameters.map(\.name).contains("4.weight") && m.parameters.map(\.name).contains("0.weight"))
    #expect(m.unique.count == m.parameters.count - 1)
    #expect(m.parameterCount == m.unique.reduce(0) { $0 + $1.parameter.count })
    #expect(m.parameters.map(\.name).contains("2.1.self_attn.out_proj.weight"))
    // The gradient of the shared weight is the sum of both uses: check it by central differences.
    m.initialize(seed: 2)
    let ids = IntTensor([1, 2, 3, 4, 5, 6, 0, 0, 1, 1, 2, 2], shape: [2, 6])
    let out = m.forward(indices: ids, training: true)
    let r = GradCheck.input(out.shape, seed: 5, margin: 0)
    m.zeroGrad()
    m.backward(r)
    func loss() -> Double {
        let o = m.forward(indices: ids, training: true)
        return (0..<o.count).reduce(0) { $0 + Double(o[$1]) * Double(r[$1]) }
    }
    for i in [4, 9, 14] {
        let saved = emb.weight.value[i]
        emb.weight.value[i] = saved + 1e-2; let lp = loss()
        emb.weight.value[i] = saved - 1e-2; let lm = loss()
        emb.weight.value[i] = saved
        let numeric = (lp - lm) / 2e-2
        #expect(abs(numeric - Double(emb.weight.grad[i])) < 2e-3 * max(1, abs(numeric)), "element \(i): \(emb.weight.grad[i]) vs \(numeric)")
    }
}

/// The seed table's parameter and FLOP rows: RNN/LSTM/GRU with d = h = 100 have PyTorch's
/// counts, multi-head attention 4d² + 4d parameters and 8n·d² + 4n²·d FLOPs, FFN(d, 4d)
/// 8d² + 5d parameters and 16n·d² FLOPs, LSTM 8h(h + d) FLOPs per step.
@Test func sequenceLayerCountsFollowTheSeedTable() throws {
    func model(_ input: [Int], _ layer: ConfigValue) throws -> Model { try Model(spec: ModelSpec(input: input, layers: [layer])) }
    for (cell, count) in [("rnn", 20_200), ("lstm", 80_800), ("gru", 60_600)] {
        let m = try model([7, 100], ["type": .string(cell), "hidden": 100])
        #expect(m.parameterCount == count, "\(cell)")
        #expect(m.network.layers[0].flops == 7 * 2 * (cell == "rnn" ? 1 : cell == "lstm" ? 4 : 3) * 100 * 200, "\(cell)")
    }
    #expect(try model([7, 100], ["type": "lstm", "hidden": 100]).network.layers[0].flops == 7 * 8 * 100 * (100 + 100))
    let (n, d) = (16, 32)
    let a = try model([n, d], ["type": "attention", "heads": 4])
    #expect(a.parameterCount == 4 * d * d + 4 * d)
    #expect(a.network.layers[0].flops == 8 * n * d * d + 4 * n * n * d)
    let t = try model([n, d], ["type": "transformer_encoder_layer", "heads": 4, "ffn": .int(4 * d)])
    let ffn = (t.network.layers[0] as! TransformerEncoderLayer)
    let ffnParams = ffn.linear1.parameters.reduce(0) { $0 + $1.count } + ffn.linear2.parameters.reduce(0) { $0 + $1.count }
    #expect(ffnParams == 8 * d * d + 5 * d)
    #expect(ffn.linear1.flops + ffn.linear2.flops == 16 * n * d * d)
    // RNN/LSTM/GRU as torch.nn: bidirectional doubles, a second layer reads 2h.
    #expect(try model([5, 10], ["type": "lstm", "hidden": 8, "layers": 2, "bidirectional": true]).parameterCount
            == 2 * (4 * 8 * (10 + 8) + 8 * 8) + 2 * (4 * 8 * (16 + 8) + 8 * 8))
}

@Test func sequenceLayerErrorsNameTheProblem() {
    func err(_ input: [Int], _ layer: ConfigValue) -> String {
        do { _ = try Model(spec: ModelSpec(input: input, layers: [layer]), source: "job.yaml"); return "no error" } catch { return "\(error)" }
    }
    #expect(err([8, 6], ["type": "attention", "heads": 4]).contains("model.layers[0].heads: 4 heads do not divide the model width 6"))
    #expect(err([8, 6], ["type": "transformer_encoder_layer", "heads": 4]).contains("4 heads do not divide the model width 6"))
    #expect(err([200, 8], ["type": "learned_positions", "max_len": 128]).contains("longer than the learned position table (128)"))
    #expect(err([8], ["type": "lstm", "hidden": 4]).contains("needs a [steps, features] input"))
    #expect(err([8, 6], ["type": "attention", "heads": 2, "positions": "rope"]).contains("rope needs an even head width, got 3"))
    #expect(err([8, 6], ["type": "linear", "out": 3, "tie": 0]).contains("tie"))
}

@Test func alibiSlopesAndT5BucketsFollowThePapers() {
    // Press et al.: 8 heads → 1/2, 1/4, …, 1/256; 6 heads → those of 4, then every other of 8.
    #expect(MultiHeadAttention.alibiSlopes(8).enumerated().allSatisfy { abs($0.element - pow(0.5, Float($0.offset + 1))) < 1e-7 })
    let six = MultiHeadAttention.alibiSlopes(6)
    let four = MultiHeadAttention.alibiSlopes(4), eight = MultiHeadAttention.alibiSlopes(8)
    #expect(six == four + [eight[0], eight[2]])
    // T5's buckets (values from Hugging Face's _relative_position_bucket for these offsets).
    let bidirectional = [-200, -128, -20, -8, -7, -1, 0, 1, 7, 8, 20, 128, 200].map { MultiHeadAttention.bucket($0, bidirectional: true) }
    #expect(bidirectional == [15, 15, 10, 8, 7, 1, 0, 17, 23, 24, 26, 31, 31], "\(bidirectional)")
    let causal = [-200, -20, -16, -15, -1, 0, 5].map { MultiHeadAttention.bucket($0, bidirectional: false) }
    #expect(causal == [31, 17, 16, 15, 1, 0, 0], "\(causal)")
}

/// The decoder layer against its Double reference with a fixed memory (both norm orders,
/// padded memory keys), then the whole encoder–decoder, whose gradient reaches the encoder only
/// through every decoder layer's cross-attention (summed in the context).
@Test func decoderLayerAndEncoderDecoderGradients() throws {
    for normFirst in [false, true] {
        let ctx = SequenceContext()
        let spec: ConfigValue = ["type": "transformer_decoder_layer", "heads": 2, "ffn": 6, "dropout": 0,
                                 "norm_first": .bool(normFirst), "activation": .string(normFirst ? "gelu" : "relu")]
        let l = initialized(try LayerFactory.build(spec, LayerContext(inputShape: [3, 4], random: RandomSource(RNG(seed: 1)),
                                                                      source: "test", path: "layer", sequence: ctx)))
        ctx.memory = GradCheck.input([2, 5, 4], seed: 4)
        ctx.memoryPadding = [false, false, false, false, true, false, false, true, true, true]
        let d = GradCheck.inDouble(l, input: GradCheck.input([2, 3, 4], seed: 11))
        #expect(d.worst < 1e-4, "norm_first \(normFirst): \(d)")
    }
    let encdec: ConfigValue = [
        "type": "encoder_decoder", "source": 4, "vocab": 7, "dim": 4,
        "encoder": [["type": "transformer_encoder_layer", "heads": 2, "ffn": 6, "dropout": 0, "positions": "t5", "norm_first": true,
                     "activation": "gelu"]],   // smooth: Float differences would straddle ReLU kinks
        "decoder": [["type": "transformer_decoder_layer", "heads": 2, "ffn": 6, "dropout": 0, "positions": "t5"],
                    ["type": "transformer_decoder_layer", "heads": 2, "ffn": 6, "dropout": 0, "norm_first": true]],
    ]
    let ids = Tensor(shape: [2, 7], values: [1, 2, 3, 4, 0, 5, 6, 6, 5, 4, 3, 0, 1, 2])
    let l = try layer(encdec, [7])
    let d = GradCheck.inDouble(l, input: ids)
    #expect(d.worst < 1e-4, "\(d)")
    // Float differences of the whole stack: looser (the T5 bias gradients are ~1e-3, near Float noise).
    let r = GradCheck.layer(l, input: ids, eps: 1e-2)
    #expect(r.worst < 5e-2, "\(r)")
}

@Test func encoderDecoderWiringAndErrors() throws {
    func err(_ layers: [ConfigValue], input: [Int] = [7]) -> String {
        do { _ = try Model(spec: ModelSpec(input: input, layers: layers), source: "job.yaml"); return "no error" } catch { return "\(error)" }
    }
    let dec: ConfigValue = ["type": "transformer_decoder_layer", "heads": 2, "ffn": 6, "dropout": 0]
    func model(_ decoder: [ConfigValue], source: Int = 4) -> ConfigValue {
        ["type": "encoder_decoder", "source": .int(source), "vocab": 7, "dim": 4,
         "encoder": [["type": "transformer_encoder_layer", "heads": 2, "ffn": 6, "dropout": 0]], "decoder": .list(decoder)]
    }
    // One embedding for source, decoder input and the tied head (T5's `shared`).
    let m = try Model(spec: ModelSpec(input: [7], layers: [model([dec]), ["type": "linear", "out": 7, "bias": false, "tie": 0]]))
    #expect(m.outputShape == [3, 7])
    #expect(m.parameters.map(\.name).contains("0.shared.weight") && m.parameters.map(\.name).contains("0.decoder.0.multihead_attn.in_proj_weight"))
    #expect(m.unique.count == m.parameters.count - 1)
    #expect(m.inputEmbedding?.vocabulary == 7)
    var nonCausal = dec
    if case .map(var e) = nonCausal { e.append(ConfigEntry(key: "causal", value: false)); nonCausal = .map(e) }
    #expect(err([model([nonCausal])]).contains("a decoder must not see later target positions: model.layers[0].decoder[0].self_attn is attention without a causal mask"))
    #expect(err([model([["type": "linear", "out": 4]])]).contains("needs at least one transformer_decoder_layer"))
    #expect(err([model([dec], source: 7)]).contains("7 source ids leave no decoder positions"))
    #expect(err([["type": "transformer_decoder_layer", "heads": 3]], input: [5, 4]).contains("3 heads do not divide the model width 4"))
}

/// Initialised as torch.nn.MultiheadAttention: in_proj_weight xavier-uniform, both biases 0,
/// out_proj.weight as a Linear's U(±1/√E).
@Test func attentionStartsAsTorchDoes() throws {
    let a = MultiHeadAttention(embed: 64, heads: 4, steps: 3, causal: true, context: SequenceContext())
    var rng = RNG(seed: 3)
    for (_, p) in a.namedParameters() { p.initialize(&rng) }
    let p = Dictionary(uniqueKeysWithValues: a.namedParameters().map { ($0.0, $0.1.value.array) })
    #expect(p["in_proj_bias"]?.allSatisfy { $0 == 0 } == true)
    #expect(p["out_proj.bias"]?.allSatisfy { $0 == 0 } == true)
    let xavier = (6 / Float(4 * 64)).squareRoot(), linear = 1 / Float(64).squareRoot()
    let w = try #require(p["in_proj_weight"]), o = try #require(p["out_proj.weight"])
    #expect(w.allSatisfy { abs($0) <= xavier } && w.contains { abs($0) > 0.9 * xavier })
    #expect(o.allSatisfy { abs($0) <= linear } && o.contains { abs($0) > 0.9 * linear })
}
