import Config
import TensorCore

/// One Transformer decoder layer as `torch.nn.TransformerDecoderLayer` (batch-first): causal
/// self-attention, cross-attention over the encoder's output (the model's
/// `SequenceContext.memory`, `[B, S, E]`), and the feed-forward network, each with dropout and a
/// residual, post-LN or pre-LN (`norm_first`). Names: `self_attn`, `multihead_attn`, `linear1`,
/// `linear2`, `norm1`…`norm3`.
///
///     post-LN: h1 = norm1(x + drop1(sa(x)));  h2 = norm2(h1 + drop2(ca(h1, m)));  y = norm3(h2 + drop3(ffn(h2)))
///     pre-LN:  h1 = x + drop1(sa(norm1(x)));  h2 = h1 + drop2(ca(norm2(h1), m));  y = h2 + drop3(ffn(norm3(h2)))
///
/// Backward adds ∂loss/∂m into `SequenceContext.memoryGrad` (every decoder layer reads the same memory).
public final class TransformerDecoderLayer: Layer {
    public let selfAttn: MultiHeadAttention
    public let crossAttn: MultiHeadAttention
    let ffn: FeedForward
    public let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm
    let dropout1: Dropout, dropout2: Dropout
    public let normFirst: Bool
    public let outputShape: [Int]
    let context: SequenceContext
    public var children: [(name: String, layer: Layer)] {
        [("self_attn", selfAttn), ("multihead_attn", crossAttn), ("linear1", ffn.linear1), ("dropout", ffn.dropout),
         ("linear2", ffn.linear2), ("norm1", norm1), ("norm2", norm2), ("norm3", norm3), ("dropout1", dropout1),
         ("dropout2", dropout2), ("dropout3", ffn.outDropout)]
    }

    private let sum1 = Tensor.workspace(), sum2 = Tensor.workspace(), sum3 = Tensor.workspace()
    private let grad1 = Tensor.workspace(), grad2 = Tensor.workspace(), grad3 = Tensor.workspace()

    public init(shape: [Int], heads: Int, feedForward: Int, dropout p: Float, gelu: Bool, normFirst: Bool, causal: Bool,
                positions: AttentionPositions, eps: Float, random: RandomSource, context: SequenceContext) {
        let (t, e) = (shape[0], shape[1])
        outputShape = shape
        self.normFirst = normFirst
        self.context = context
        selfAttn = MultiHeadAttention(embed: e, heads: heads, steps: t, causal: causal, positions: positions, context: context)
        // Cross-attention has no position bias (as T5): queries and keys come from different sequences.
        crossAttn = MultiHeadAttention(embed: e, heads: heads, steps: t, causal: false, context: context)
        ffn = FeedForward(shape: shape, hidden: feedForward, dropout: p, gelu: gelu, random: random)
        norm1 = LayerNorm(shape: shape, normalizedShape: [e], eps: eps)
        norm2 = LayerNorm(shape: shape, normalizedShape: [e], eps: eps)
        norm3 = LayerNorm(shape: shape, normalizedShape: [e], eps: eps)
        dropout1 = Dropout(shape: shape, p: p, random: random)
        dropout2 = Dropout(shape: shape, p: p, random: random)
    }

    public var flops: Int { childFlops + ffn.activation.flops + 3 * outputShape.reduce(1, *) }

    private var memory: Tensor {
        guard let m = context.memory else { preconditionFailure("transformer_decoder_layer ran without a memory (an encoder's output)") }
        return m
    }

    private func add(_ a: Tensor, _ b: Tensor, into out: Tensor) -> Tensor { TransformerEncoderLayer.add(a, b, into: out) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let m = memory
        func sa(_ v: Tensor) -> Tensor { dropout1.forward(selfAttn.forward(v, training: training), training: training) }
        func ca(_ v: Tensor) -> Tensor { dropout2.forward(crossAttn.attend(v, memory: m, training: training), training: training) }
        if normFirst {
            let h1 = add(x, sa(norm1.forward(x, training: training)), into: sum1)
            let h2 = add(h1, ca(norm2.forward(h1, training: training)), into: sum2)
            return add(h2, ffn.forward(norm3.forward(h2, training: training), training), into: sum3)
        }
        let h1 = norm1.forward(add(x, sa(x), into: sum1), training: training)
        let h2 = norm2.forward(add(h1, ca(h1), into: sum2), training: training)
        return norm3.forward(add(h2, ffn.forward(h2, training), into: sum3), training: training)
    }

    /// Cross-attention's backward: the query-side gradient, with the memory's added to the context.
    private func crossBackward(_ g: Tensor) -> Tensor {
        let (dq, dm) = crossAttn.backwardAttending(dropout2.backward(g, needInputGrad: true)!, needInputGrad: true)
        if let dm {
            let acc = context.memoryGrad
            if acc.count != dm.count { acc.resize(dm.shape); acc.zero() }
            for i in 0..<dm.count { acc.data[i] += dm.data[i] }
        }
        return dq!
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        func saBack(_ g: Tensor) -> Tensor { selfAttn.backward(dropout1.backward(g, needInputGrad: true)!, needInputGrad: true)! }
        if normFirst {
            // y = h2 + f(norm3(h2)); h2 = h1 + ca(norm2(h1)); h1 = x + sa(norm1(x))
            let dh2 = add(dy, norm3.backward(ffn.backward(dy), needInputGrad: true)!, into: grad3)
            let dh1 = add(dh2, norm2.backward(crossBackward(dh2), needInputGrad: true)!, into: grad2)
            return add(dh1, norm1.backward(saBack(dh1), needInputGrad: true)!, into: grad1)
        }
        // y = norm3(h2 + f(h2)); h2 = norm2(h1 + ca(h1)); h1 = norm1(x + sa(x))
        let g3 = norm3.backward(dy, needInputGrad: true)!
        let dh2 = add(g3, ffn.backward(g3), into: grad3)
        let g2 = norm2.backward(dh2, needInputGrad: true)!
        let dh1 = add(g2, crossBackward(g2), into: grad2)
        let g1 = norm1.backward(dh1, needInputGrad: true)!
        return add(g1, saBack(g1), into: grad1)
    }

    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let m = context.referenceMemory ?? memory.array.map(Double.init)
        func sa(_ v: [Double]) -> [Double] { r.run(dropout1, r.run(selfAttn, v, batch: b, training: training), batch: b, training: training) }
        func ca(_ v: [Double]) -> [Double] {
            r.run(dropout2, crossAttn.referenceAttending(v, memory: m, batch: b, r), batch: b, training: training)
        }
        func f(_ v: [Double]) -> [Double] { ffn.reference(v, batch: b, training: training, r) }
        func norm(_ n: LayerNorm, _ v: [Double]) -> [Double] { r.run(n, v, batch: b, training: training) }
        if normFirst {
            let h1 = zip(x, sa(norm(norm1, x))).map(+)
            let h2 = zip(h1, ca(norm(norm2, h1))).map(+)
            return zip(h2, f(norm(norm3, h2))).map(+)
        }
        let h1 = norm(norm1, zip(x, sa(x)).map(+))
        let h2 = norm(norm2, zip(h1, ca(h1)).map(+))
        return norm(norm3, zip(h2, f(h2)).map(+))
    }

    /// `{type: transformer_decoder_layer, heads: 4, ffn: 4·width, dropout: 0.1, activation: relu|gelu,
    /// norm_first: false, causal: true, positions: none|rope|alibi|t5, eps: 1e-5}` on `[T, E]`,
    /// inside an `encoder_decoder`'s decoder (which supplies the memory).
    static let kinds = [
        LayerKind("transformer_decoder_layer") { r, c in
            guard c.inputShape.count == 2 else { throw c.error("transformer_decoder_layer needs a [steps, width] input, got \(c.inputShape)") }
            let o = try BlockOptions(r, width: c.inputShape[1])
            return TransformerDecoderLayer(
                shape: c.inputShape, heads: o.heads, feedForward: o.ffn, dropout: o.dropout, gelu: o.gelu, normFirst: o.normFirst,
                causal: try r.bool("causal", default: true), positions: o.positions, eps: o.eps, random: c.random, context: c.sequence)
        },
    ]
}

/// A T5-style encoder–decoder on one id sequence per sample: the first `source` ids are the
/// encoder's input, the remaining T the decoder's (the target shifted right behind a start id).
/// One embedding `shared` for both (as T5); the encoder stack's output is the memory every
/// decoder layer cross-attends to; the output is the decoder stack's, `[T, E]` (a head follows).
///
///     ids[B, S+T] → emb[B, S+T, E];  m = enc(emb[:, :S]);  y = dec(emb[:, S:]; memory m)   [B, T, E]
/// backward: dy → dec → d emb[:, S:] and Σ ∂/∂m (the context) → enc → d emb[:, :S] → shared
public final class EncoderDecoder: IndexInputLayer {
    public let source: Int, target: Int, dimension: Int
    public let shared: Embedding
    public let encoder: Sequential, decoder: Sequential
    let context: SequenceContext
    public var outputShape: [Int] { decoder.outputShape }
    public var children: [(name: String, layer: Layer)] { [("shared", shared), ("encoder", encoder), ("decoder", decoder)] }

    private let src = Tensor.workspace(), tgt = Tensor.workspace(), embGrad = Tensor.workspace()

    init(source: Int, target: Int, shared: Embedding, encoder: Sequential, decoder: Sequential, context: SequenceContext) {
        self.source = source
        self.target = target
        dimension = shared.dimension
        self.shared = shared
        self.encoder = encoder
        self.decoder = decoder
        self.context = context
    }

    public var flops: Int { childFlops }

    /// Rows [lo, lo + n) of every sample of `x` ([B, S+T, E]) into `out` ([B, n, E]), or back.
    private func copy(_ from: UnsafePointer<Float>, _ fromSteps: Int, _ fromStart: Int, _ to: UnsafeMutablePointer<Float>,
                      _ toSteps: Int, _ toStart: Int, steps n: Int, batch b: Int) {
        let e = dimension
        for bi in 0..<b { (to + (bi * toSteps + toStart) * e).update(from: from + (bi * fromSteps + fromStart) * e, count: n * e) }
    }

    public func forward(indices: IntTensor, training: Bool) -> Tensor {
        let all = source + target, b = indices.count / all, e = dimension
        let emb = shared.forward(indices: indices, training: training)
        src.resize([b, source, e])
        tgt.resize([b, target, e])
        copy(emb.data, all, 0, src.data, source, 0, steps: source, batch: b)
        copy(emb.data, all, source, tgt.data, target, 0, steps: target, batch: b)
        context.memory = encoder.forward(src, training: training)
        return decoder.forward(tgt, training: training)
    }

    /// Float input holding integral ids (what the gradient checks feed).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let t = IntTensor(shape: x.shape)
        for i in 0..<x.count { t.data[i] = Int32(x.data[i].rounded()) }
        return forward(indices: t, training: training)
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let all = source + target, e = dimension
        context.clearMemoryGrad()
        let dt = decoder.backward(dy, needInputGrad: true, onLayerDone: nil)!
        let ds = encoder.backward(context.memoryGrad, needInputGrad: true, onLayerDone: nil)!
        let b = dt.count / (target * e)
        embGrad.resize([b, all, e])
        copy(ds.data, source, 0, embGrad.data, all, 0, steps: source, batch: b)
        copy(dt.data, target, 0, embGrad.data, all, source, steps: target, batch: b)
        return shared.backward(embGrad, needInputGrad: false)
    }

    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let all = source + target, e = dimension
        let emb = r.run(shared, x, batch: b, training: training)
        var s: [Double] = [], t: [Double] = []
        for bi in 0..<b {
            s += emb[(bi * all * e)..<((bi * all + source) * e)]
            t += emb[((bi * all + source) * e)..<((bi + 1) * all * e)]
        }
        context.referenceMemory = r.run(encoder, s, batch: b, training: training)
        defer { context.referenceMemory = nil }
        return r.run(decoder, t, batch: b, training: training)
    }

    /// `{type: encoder_decoder, source: S, vocab: V, dim: E, encoder: [layers on [S, E]],
    /// decoder: [layers on [T, E]]}` as a model's first layer, on ids `[S + T]`. Every decoder
    /// layer must be causal (it is trained on the target shifted right: seeing later positions
    /// would let it copy the answer).
    static let kinds = [
        LayerKind("encoder_decoder", takesIndices: true) { r, c in
            guard c.inputShape.count == 1 else { throw c.error("encoder_decoder reads ids [source + target], got \(c.inputShape)") }
            let s = try r.requiredInt("source", min: 1)
            let t = c.inputShape[0] - s
            guard t >= 1 else { throw r.error("source", "\(s) source ids leave no decoder positions in an input of \(c.inputShape[0])") }
            let e = try r.requiredInt("dim", min: 1)
            let shared = Embedding(vocabulary: try r.requiredInt("vocab", min: 1), dimension: e, inputShape: c.inputShape)
            guard let enc = try r.optionalList("encoder"), let dec = try r.optionalList("decoder"), !dec.isEmpty else {
                throw r.error(r.value("encoder") == nil ? "encoder" : "decoder", "required: a list of layers")
            }
            let encoder = try LayerFactory.sequence(enc, c.at(r.join("encoder"), input: [s, e]).withFloatInput)
            let decoder = try LayerFactory.sequence(dec, c.at(r.join("decoder"), input: [t, e]).withFloatInput)
            guard encoder.outputShape == [s, e] else {
                throw r.error("encoder", "must keep the shape [\(s), \(e)] (the decoder attends to it), ends with \(encoder.outputShape)")
            }
            if let why = Model.futureLeak(decoder, path: r.join("decoder")) {
                throw r.error("decoder", "a decoder must not see later target positions: \(why) (set causal: true)")
            }
            func reads(_ l: Layer) -> Bool { l is TransformerDecoderLayer || l.children.contains { reads($0.layer) } }
            guard reads(decoder) else {
                throw r.error("decoder", "needs at least one transformer_decoder_layer (nothing would read the encoder)")
            }
            return EncoderDecoder(source: s, target: t, shared: shared, encoder: encoder, decoder: decoder, context: c.sequence)
        },
    ]
}
