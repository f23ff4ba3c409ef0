import TensorCore

/// Layers that run one position at a time, for generation: `x` is `[B, width]`, the new token
/// of each sample at `position`; what earlier positions left behind (attention's keys and
/// values, a recurrent layer's state) stays inside the layer and is reset at position 0.
/// Decoding positions 0…p must give the logits a full causal forward gives at p.
public protocol StepDecoding: Layer {
    func decodeStep(_ x: Tensor, position: Int) -> Tensor
    /// Why this layer cannot decode step by step (it looks at later positions), or nil.
    var decodeBlocker: String? { get }
}

extension StepDecoding {
    public var decodeBlocker: String? { nil }
}

/// Layers that act on each position alone (Linear, LayerNorm, activations, dropout): one step
/// is their evaluation forward on `[B, width]`.
public protocol PositionWise: StepDecoding {}

extension PositionWise {
    public func decodeStep(_ x: Tensor, position: Int) -> Tensor { forward(x, training: false) }
}

extension Sequential: StepDecoding {
    public func decodeStep(_ x: Tensor, position: Int) -> Tensor {
        var h = x
        for l in layers { h = (l as! StepDecoding).decodeStep(h, position: position) }
        return h
    }

    public var decodeBlocker: String? {
        for (i, l) in layers.enumerated() {
            if let why = Model.decodeBlocker(l) { return "\(i): \(why)" }
        }
        return nil
    }
}

extension Model {
    /// Why this model cannot generate token by token (nil: it can): it must read token ids and
    /// every later layer must decode one position at a time.
    public var decodeProblem: String? {
        guard network.layers.first is IndexInputLayer else {
            return "the model does not start with an embedding of token ids, so it cannot generate text"
        }
        for (i, l) in network.layers.enumerated().dropFirst() {
            if let why = Model.decodeBlocker(l) { return "layer \(i) (\(type(of: l))): \(why)" }
        }
        return nil
    }

    static func decodeBlocker(_ l: Layer) -> String? {
        guard let s = l as? StepDecoding else { return "cannot run one position at a time" }
        return s.decodeBlocker
    }

    /// The output (logits `[B, V]`) for one new token per sample at `position`; positions must
    /// come in order from 0 (where every cache starts afresh). Check `decodeProblem` first.
    public func decodeStep(tokens: IntTensor, position: Int) -> Tensor {
        var h = (network.layers[0] as! IndexInputLayer).forward(indices: tokens, training: false)
        for l in network.layers.dropFirst() { h = (l as! StepDecoding).decodeStep(h, position: position) }
        return h
    }
}

extension Model {
    /// Why position t of `layer`'s output depends on later positions (nil: it does not). A
    /// language model or a decoder trained on shifted targets must not, or it learns to copy.
    public static func futureLeak(_ layer: Layer, path: String) -> String? {
        switch layer {
        case let a as MultiHeadAttention:
            return a.causal ? nil : "\(path) is attention without a causal mask"
        case let d as TransformerDecoderLayer:
            return futureLeak(d.selfAttn, path: path + ".self_attn")   // cross-attention reads the encoder, not the future
        case let ed as EncoderDecoder:
            return futureLeak(ed.decoder, path: path + ".decoder")
        case let t as TransformerEncoderLayer:
            return futureLeak(t.selfAttn, path: path + ".self_attn")
        case let r as Recurrent where r.bidirectional:
            return "\(path) is a bidirectional \(r.cell.rawValue)"
        case let s as Sequential:
            for (i, l) in s.layers.enumerated() { if let why = futureLeak(l, path: "\(path)[\(i)]") { return why } }
            return nil
        default:
            for (name, l) in layer.children { if let why = futureLeak(l, path: "\(path).\(name)") { return why } }
            return nil
        }
    }
}
