import Config
import TensorCore

/// One Transformer encoder layer as `torch.nn.TransformerEncoderLayer` (batch-first): self
/// attention and a position-wise feed-forward network, each with dropout and a residual, with
/// LayerNorm after each (post-LN, `norm_first: false`) or before (pre-LN, as GPT-2). Causal for
/// decoder-only language models. Names: `self_attn`, `linear1`, `linear2`, `norm1`, `norm2`.
///
///     post-LN: h = norm1(x + drop(attn(x)));      y = norm2(h + drop(W2·drop(act(W1·h))))
///     pre-LN:  h = x + drop(attn(norm1(x)));      y = h + drop(W2·drop(act(W1·norm2(h))))
public final class TransformerEncoderLayer: Layer {
    public let selfAttn: MultiHeadAttention
    let ffn: FeedForward
    public var linear1: Linear { ffn.linear1 }
    public var linear2: Linear { ffn.linear2 }
    public let norm1: LayerNorm, norm2: LayerNorm
    let dropout1: Dropout
    public let normFirst: Bool
    public let outputShape: [Int]
    public var children: [(name: String, layer: Layer)] {
        [("self_attn", selfAttn), ("linear1", ffn.linear1), ("dropout", ffn.dropout), ("linear2", ffn.linear2),
         ("norm1", norm1), ("norm2", norm2), ("dropout1", dropout1), ("dropout2", ffn.outDropout)]
    }

    private let sum1 = Tensor.workspace(), sum2 = Tensor.workspace()
    private let grad1 = Tensor.workspace(), grad2 = Tensor.workspace()

    public init(shape: [Int], heads: Int, feedForward: Int, dropout p: Float, gelu: Bool, normFirst: Bool, causal: Bool,
                positions: AttentionPositions, eps: Float, random: RandomSource, context: SequenceContext) {
        let (t, e) = (shape[0], shape[1])
        outputShape = shape
        self.normFirst = normFirst
        selfAttn = MultiHeadAttention(embed: e, heads: heads, steps: t, causal: causal, positions: positions, context: context)
        ffn = FeedForward(shape: shape, hidden: feedForward, dropout: p, gelu: gelu, random: random)
        norm1 = LayerNorm(shape: shape, normalizedShape: [e], eps: eps)
        norm2 = LayerNorm(shape: shape, normalizedShape: [e], eps: eps)
        dropout1 = Dropout(shape: shape, p: p, random: random)
    }

    public var flops: Int { childFlops + ffn.activation.flops + 2 * outputShape.reduce(1, *) }

    private func feedForward(_ x: Tensor, _ training: Bool) -> Tensor { ffn.forward(x, training) }
    private func feedForwardBackward(_ dy: Tensor) -> Tensor { ffn.backward(dy) }

    /// out = a + b, into a buffer this layer owns (sublayers may hand back their input).
    static func add(_ a: Tensor, _ b: Tensor, into out: Tensor) -> Tensor {
        out.resize(a.shape)
        let n = a.count, x = a.data, y = b.data, o = out.data
        Parallel.forEach((n + 7) / 8, grain: 4096) { r in
            let lo = r.lowerBound * 8, hi = min(r.upperBound * 8, n)
            var i = lo
            while i + 8 <= hi { o.store8(i, x.load8(i) + y.load8(i)); i += 8 }
            while i < hi { o[i] = x[i] + y[i]; i += 1 }
        }
        return out
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if normFirst {
            let h = Self.add(x, dropout1.forward(selfAttn.forward(norm1.forward(x, training: training), training: training),
                                                 training: training), into: sum1)
            return Self.add(h, feedForward(norm2.forward(h, training: training), training), into: sum2)
        }
        let h = norm1.forward(Self.add(x, dropout1.forward(selfAttn.forward(x, training: training), training: training), into: sum1),
                              training: training)
        return norm2.forward(Self.add(h, feedForward(h, training), into: sum2), training: training)
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        if normFirst {
            // y = h + f(norm2(h)):  dh = dy + norm2ᵀ·fᵀ·dy
            let dh = Self.add(dy, norm2.backward(feedForwardBackward(dy), needInputGrad: true)!, into: grad2)
            // h = x + attn(norm1(x)):  dx = dh + norm1ᵀ·attnᵀ·dh
            let da = selfAttn.backward(dropout1.backward(dh, needInputGrad: true)!, needInputGrad: true)!
            return Self.add(dh, norm1.backward(da, needInputGrad: true)!, into: grad1)
        }
        // y = norm2(h + f(h)):  dh = g + fᵀ·g with g = norm2ᵀ·dy
        let g2 = norm2.backward(dy, needInputGrad: true)!
        let dh = Self.add(g2, feedForwardBackward(g2), into: grad2)
        // h = norm1(x + attn(x)):  dx = g + attnᵀ·g with g = norm1ᵀ·dh
        let g1 = norm1.backward(dh, needInputGrad: true)!
        let da = selfAttn.backward(dropout1.backward(g1, needInputGrad: true)!, needInputGrad: true)!
        return Self.add(g1, da, into: grad1)
    }

    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        func ffn(_ v: [Double]) -> [Double] { self.ffn.reference(v, batch: b, training: training, r) }
        func attn(_ v: [Double]) -> [Double] { r.run(dropout1, r.run(selfAttn, v, batch: b, training: training), batch: b, training: training) }
        if normFirst {
            let h = zip(x, attn(r.run(norm1, x, batch: b, training: training))).map(+)
            return zip(h, ffn(r.run(norm2, h, batch: b, training: training))).map(+)
        }
        let h = r.run(norm1, zip(x, attn(x)).map(+), batch: b, training: training)
        return r.run(norm2, zip(h, ffn(h)).map(+), batch: b, training: training)
    }

    /// `{type: transformer_encoder_layer, heads: 4, ffn: 4·width, dropout: 0.1, activation: relu|gelu,
    /// norm_first: false, causal: false, positions: none|rope|alibi|t5, eps: 1e-5}` on `[T, E]`.
    static let kinds = [
        LayerKind("transformer_encoder_layer") { r, c in
            guard c.inputShape.count == 2 else { throw c.error("transformer_encoder_layer needs a [steps, width] input, got \(c.inputShape)") }
            let o = try BlockOptions(r, width: c.inputShape[1])
            return TransformerEncoderLayer(
                shape: c.inputShape, heads: o.heads, feedForward: o.ffn, dropout: o.dropout, gelu: o.gelu, normFirst: o.normFirst,
                causal: try r.bool("causal", default: false), positions: o.positions, eps: o.eps, random: c.random, context: c.sequence)
        },
    ]
}

/// The options encoder and decoder layers share, read and checked once.
struct BlockOptions {
    var heads: Int, ffn: Int, dropout: Float, gelu: Bool, normFirst: Bool, positions: AttentionPositions, eps: Float

    init(_ r: ConfigReader, width e: Int) throws {
        heads = try r.requiredInt("heads", min: 1)
        guard e % heads == 0 else { throw r.error("heads", "\(heads) heads do not divide the model width \(e)") }
        positions = try r.choice("positions", default: AttentionPositions.none)
        if positions == .rope && (e / heads) % 2 != 0 { throw r.error("positions", "rope needs an even head width, got \(e / heads)") }
        ffn = try r.int("ffn", default: 4 * e, min: 1)
        dropout = Float(try r.double("dropout", default: 0.1, min: 0, max: 0.99))
        gelu = try r.string("activation", default: "relu", oneOf: ["relu", "gelu"]) == "gelu"
        normFirst = try r.bool("norm_first", default: false)
        eps = Float(try r.double("eps", default: 1e-5, min: 0))
    }
}

/// The position-wise feed-forward network of a Transformer block with its two dropouts:
/// y = drop_out(W2 · drop(act(W1 · x + b1)) + b2), `[T, E]` → `[T, hidden]` → `[T, E]`.
/// Its parts are children of the block (torch names them `linear1`, `dropout`, `linear2`).
final class FeedForward {
    let linear1: Linear, linear2: Linear
    let activation: ElementwiseActivation
    let dropout: Dropout, outDropout: Dropout

    init(shape: [Int], hidden: Int, dropout p: Float, gelu: Bool, random: RandomSource) {
        let (t, e) = (shape[0], shape[1])
        linear1 = Linear(e, hidden, inputShape: shape)
        linear2 = Linear(hidden, e, inputShape: [t, hidden])
        activation = gelu ? GELU([t, hidden]) : ReLU([t, hidden])
        dropout = Dropout(shape: [t, hidden], p: p, random: random)
        outDropout = Dropout(shape: shape, p: p, random: random)
    }

    func forward(_ x: Tensor, _ training: Bool) -> Tensor {
        outDropout.forward(linear2.forward(dropout.forward(activation.forward(linear1.forward(x, training: training),
                                                                              training: training), training: training),
                                           training: training), training: training)
    }

    func backward(_ dy: Tensor) -> Tensor {
        let g = linear2.backward(outDropout.backward(dy, needInputGrad: true)!, needInputGrad: true)!
        return linear1.backward(activation.backward(dropout.backward(g, needInputGrad: true)!, needInputGrad: true)!,
                                needInputGrad: true)!
    }

    func reference(_ v: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        r.run(outDropout, r.run(linear2, r.run(dropout, r.run(activation, r.run(linear1, v, batch: b, training: training),
                                                               batch: b, training: training), batch: b, training: training),
                                 batch: b, training: training), batch: b, training: training)
    }
}

/// One position while generating (a causal decoder-only stack): the same sums and norms as
/// `forward`, with self-attention reading its key/value cache.
extension TransformerEncoderLayer: StepDecoding {
    public func decodeStep(_ x: Tensor, position p: Int) -> Tensor {
        if normFirst {
            let h = Self.add(x, selfAttn.decodeStep(norm1.forward(x, training: false), position: p), into: sum1)
            return Self.add(h, feedForward(norm2.forward(h, training: false), false), into: sum2)
        }
        let h = norm1.forward(Self.add(x, selfAttn.decodeStep(x, position: p), into: sum1), training: false)
        return norm2.forward(Self.add(h, feedForward(h, false), into: sum2), training: false)
    }

    public var decodeBlocker: String? { selfAttn.decodeBlocker }
}
