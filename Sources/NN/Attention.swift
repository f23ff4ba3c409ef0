import Config
import Glibc
import TensorCore

/// How attention scores learn where tokens are: nothing (positions come from elsewhere), rotary
/// embeddings of q and k, ALiBi's linear distance penalty, or T5's learned bucketed bias.
public enum AttentionPositions: String, CaseIterable, Sendable {
    case none
    /// RoPE (Su et al.), rotate-half pairing as GPT-NeoX and LLaMA: dimension i of a head is
    /// rotated with dimension i + d/2 by the angle pos·10000^(−2i/d).
    case rope
    /// ALiBi (Press et al.): score − m_h·|i − j|, slopes 2^(−8h/n) for n heads a power of two
    /// (and the paper's interleaving rule otherwise); no position embeddings.
    case alibi
    /// T5 (Raffel et al.): a learned bias per head for each of 32 relative-position buckets
    /// (max distance 128; bidirectional halves unless causal), and no 1/√d scaling.
    case t5
}

/// Batched per-sequence facts the attention layers read: which key positions are padding, and
/// the memory decoder layers cross-attend to. One object per model, set before each forward
/// (by the task from the batch, or by the encoder–decoder that owns both stacks).
public final class SequenceContext {
    /// [B, T]: true where the key is padding (never attended to). Nil: no padding.
    public var keyPadding: [Bool]?
    /// [B, S]: the same for the memory cross-attention reads (an encoder's input).
    public var memoryPadding: [Bool]?
    /// [B, S, E]: the encoder output every decoder layer cross-attends to.
    public var memory: Tensor?
    /// ∂loss/∂memory, summed over the decoder layers by their backward; `clearMemoryGrad()`
    /// before a backward pass.
    public let memoryGrad = Tensor.workspace()
    /// The memory in Double while a reference forward runs (an encoder–decoder sets it).
    public var referenceMemory: [Double]?

    public func clearMemoryGrad() {
        guard let m = memory else { return }
        memoryGrad.resize(m.shape)
        memoryGrad.zero()
    }
    public var batch = 0
    public var steps = 0
    public init() {}
}

/// Multi-head scaled dot-product attention as `torch.nn.MultiheadAttention` (batch-first):
/// `in_proj_weight` `[3E, E]` (q; k; v), `in_proj_bias` `[3E]`, `out_proj` a Linear(E, E).
/// Self-attention on `[B, T, E]`, optionally causal, with padding masks from the model's
/// `SequenceContext`; `attend(_:memory:)` is cross-attention (decoder queries, encoder keys).
///
///     QKV[B·T, 3E] = x · W_inᵀ + b_in                         (one sgemm)
///     per (b, head):  S[T, T] = Q·Kᵀ·s + bias, masked;  P = softmax(S);  O = P·V   (sgemm each)
///     y = O · W_outᵀ + b_out                                   (one sgemm)
/// backward per (b, head): dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P⊙(dP − Σ dP⊙P), dQ = dS·K·s, dK = dSᵀ·Q·s.
public final class MultiHeadAttention: Layer {
    public let embed: Int
    public let heads: Int
    public let steps: Int
    public let causal: Bool
    public let positions: AttentionPositions
    public let inProjWeight: Parameter
    public let inProjBias: Parameter?
    public let outProj: Linear
    /// T5: `[buckets, heads]`.
    public let relativeBias: Parameter?
    public let outputShape: [Int]
    public var parameters: [Parameter] { [inProjWeight] + [inProjBias, relativeBias].compactMap { $0 } }
    public var children: [(name: String, layer: Layer)] { [("out_proj", outProj)] }
    let context: SequenceContext?

    public static let buckets = 32, maxDistance = 128

    private var input: Tensor?
    private var memory: Tensor?
    private let qkv = Tensor.workspace()       // [B, T, 3E] (cross: q only in the first E of each row; k, v from kv)
    private let kv = Tensor.workspace()        // cross-attention: [B, S, 2E]
    private let probs = Tensor.workspace()     // [B, H, T, S]
    private let attn = Tensor.workspace()      // [B, T, E]
    private let dqkv = Tensor.workspace()
    private let dkv = Tensor.workspace()
    private let dprobs = Tensor.workspace()    // [T, S] per (b, h) at a time … kept whole for parallel heads
    private let inputGrad = Tensor.workspace()
    private let memoryGrad = Tensor.workspace()
    private let rot: (cos: [Float], sin: [Float])
    private let slopes: [Float]
    // Generation: keys and values of the positions decoded so far, position-major
    // [positions, B, E] so a new position appends; the step's projections and output.
    private var cacheK: [Float] = [], cacheV: [Float] = []
    private var cached = 0, cacheBatch = 0
    private let stepQKV = Tensor.workspace()     // [B, 3E]
    private let stepOut = Tensor.workspace()     // [B, E]
    private var stepScores: [Float] = []

    public init(embed: Int, heads: Int, steps: Int, causal: Bool, positions: AttentionPositions = .none, bias: Bool = true,
                context: SequenceContext? = nil, memorySteps: Int? = nil) {
        self.embed = embed
        self.heads = heads
        self.steps = steps
        self.causal = causal
        self.positions = positions
        self.context = context
        outputShape = [steps, embed]
        // PyTorch: xavier_uniform_ on in_proj_weight, zero biases; out_proj as a Linear with zero bias.
        inProjWeight = Parameter("in_proj_weight", shape: [3 * embed, embed],
                                 initializer: .uniform((6 / Float(4 * embed)).squareRoot()))
        inProjBias = bias ? Parameter("in_proj_bias", shape: [3 * embed], initializer: .zeros) : nil
        outProj = Linear(embed, embed, bias: bias, inputShape: [steps, embed], zeroBias: true)
        relativeBias = positions == .t5
            ? Parameter("relative_attention_bias.weight", shape: [Self.buckets, heads], initializer: .normal(1)) : nil
        let d = embed / heads, maxT = max(steps, memorySteps ?? 0)
        var c = [Float](repeating: 1, count: positions == .rope ? maxT * d / 2 : 0), s = c
        if positions == .rope {
            for p in 0..<maxT {
                for i in 0..<(d / 2) {
                    let angle = Double(p) * pow(10000, -2 * Double(i) / Double(d))
                    c[p * d / 2 + i] = Float(cos(angle))
                    s[p * d / 2 + i] = Float(sin(angle))
                }
            }
        }
        rot = (c, s)
        slopes = positions == .alibi ? Self.alibiSlopes(heads) : []
    }

    /// The ALiBi slopes: 2^(−8/n)^h for h = 1…n when n is a power of two; otherwise those of the
    /// nearest lower power of two followed by every other slope of twice that many (the paper's rule).
    public static func alibiSlopes(_ n: Int) -> [Float] {
        func power(_ n: Int) -> [Float] {
            let start = pow(2, -8 / Double(n))
            return (1...n).map { Float(pow(start, Double($0))) }
        }
        if n & (n - 1) == 0 { return power(n) }
        let lower = 1 << Int(log2(Double(n)))
        return power(lower) + Array(power(2 * lower).enumerated().filter { $0.offset % 2 == 0 }.map(\.element).prefix(n - lower))
    }

    /// T5's bucket of a relative position (memory − query): exact for small distances, then
    /// logarithmic up to `maxDistance`; bidirectional splits the buckets by sign.
    public static func bucket(_ relative: Int, bidirectional: Bool, buckets: Int = buckets, maxDistance: Int = maxDistance) -> Int {
        var n = buckets, ret = 0, rel = relative
        if bidirectional {
            n /= 2
            if rel > 0 { ret += n }
            rel = abs(rel)
        } else {
            rel = -min(rel, 0)
        }
        let exact = n / 2
        if rel < exact { return ret + rel }
        let v = exact + Int(log(Double(rel) / Double(exact)) / log(Double(maxDistance) / Double(exact)) * Double(n - exact))
        return ret + min(v, n - 1)
    }

    var headDim: Int { embed / heads }
    var scale: Float { positions == .t5 ? 1 : 1 / Float(headDim).squareRoot() }

    /// Q·Kᵀ, attention matrices per (b, h) multiply T·S·d twice; the projections 2·E·3E and 2·E·E per
    /// token: 8·T·E² + 4·T²·E per sample (the seed table's multi-head attention row).
    public var flops: Int { 8 * steps * embed * embed + 4 * steps * steps * embed }

    // MARK: forward

    public func forward(_ x: Tensor, training: Bool) -> Tensor { attend(x, memory: nil, training: training) }

    /// Attention of `x`'s queries over `memory`'s keys and values (self-attention when nil).
    public func attend(_ x: Tensor, memory m: Tensor?, training: Bool) -> Tensor {
        let b = batchSize(x), t = steps, e = embed
        input = x
        memory = m
        let w = inProjWeight.value.data, bias = inProjBias?.value.data
        qkv.resize([b, t, 3 * e])
        if let m {
            // q from x (the first E rows of W_in), k and v from the memory (the other 2E).
            let s = m.count / (b * e)
            project(x.data, rows: b * t, weight: w, bias: bias, out: qkv.data, outWidth: 3 * e, n: e)
            kv.resize([b, s, 2 * e])
            project(m.data, rows: b * s, weight: w + e * e, bias: bias.map { $0 + e }, out: kv.data, outWidth: 2 * e, n: 2 * e)
        } else {
            project(x.data, rows: b * t, weight: w, bias: bias, out: qkv.data, outWidth: 3 * e, n: 3 * e)
        }
        let s = m.map { $0.count / (b * e) } ?? t
        let (kBase, kStride) = m == nil ? (qkv.data + e, 3 * e) : (kv.data, 2 * e)
        let vBase = m == nil ? qkv.data + 2 * e : kv.data + e
        if positions == .rope { rotate(qkv.data, rows: t, stride: 3 * e, batch: b, inverse: false, kOffset: m == nil ? e : nil) }
        if positions == .rope, m != nil { rotateKeys(kv.data, rows: s, batch: b, stride: 2 * e, inverse: false) }
        probs.resize([b, heads, t, s])
        attn.resize([b, t, e])
        let d = headDim, sc = scale
        let blocks = rowBlocks(t: t, s: s, cross: m != nil)
        // One (b, h) per task; BLAS runs single-threaded inside (Parallel.busy).
        Parallel.forEach(b * heads) { range in
            for bh in range {
                let bi = bh / self.heads, h = bh % self.heads
                let q = self.qkv.data + bi * t * 3 * e + h * d
                let k = kBase + bi * s * kStride + h * d, v = vBase + bi * s * kStride + h * d
                let p = self.probs.data + bh * t * s, o = self.attn.data + bi * t * e + h * d
                for (rows, keys) in blocks {
                    let r0 = rows.lowerBound
                    BLAS.gemm(transB: true, m: rows.count, n: keys, k: d, alpha: sc, q + r0 * 3 * e, lda: 3 * e, k, ldb: kStride,
                              p + r0 * s, ldc: s)
                    self.maskAndSoftmax(p, rows: rows, keys: keys, s: s, batch: bi, head: h, cross: m != nil)
                    BLAS.gemm(m: rows.count, n: d, k: keys, p + r0 * s, lda: s, v, ldb: kStride, o + r0 * e, ldc: e)
                }
            }
        }
        return outProj.forward(attn, training: training)
    }

    /// out[r, 0..<n] = in[r] · W[0..<n]ᵀ + b for `rows` rows of width E.
    private func project(_ x: UnsafePointer<Float>, rows: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>, outWidth: Int, n: Int) {
        let e = embed
        if let bias { for r in 0..<rows { (out + r * outWidth).update(from: bias, count: n) } }
        BLAS.gemm(transB: true, m: rows, n: n, k: e, x, lda: e, weight, ldb: e, beta: bias == nil ? 0 : 1, out, ldc: outWidth)
    }

    /// Query rows in blocks, each with the number of keys its rows may see: all of them, or for
    /// causal self-attention only keys up to the block's last row, so the masked upper triangle
    /// is neither multiplied nor exponentiated (about 5/8 of the work at 32-row blocks).
    func rowBlocks(t: Int, s: Int, cross: Bool) -> [(rows: Range<Int>, keys: Int)] {
        guard causal && !cross && t >= 64 else { return [(0..<t, causal && !cross ? min(t, s) : s)] }
        let r = 32
        return stride(from: 0, to: t, by: r).map { ($0..<min($0 + r, t), min($0 + r, t, s)) }
    }

    /// Adds the position bias and the masks to the scores of one (b, h) in `rows` × `keys`, then
    /// softmax per row (masked scores come out as exact zeros).
    private func maskAndSoftmax(_ p: UnsafeMutablePointer<Float>, rows: Range<Int>, keys: Int, s: Int, batch bi: Int, head h: Int,
                                cross: Bool) {
        let pad = cross ? context?.memoryPadding : context?.keyPadding
        let causalMask = causal && !cross
        for i in rows {
            let row = p + i * s
            // Keys a query may see: all, or 0...i when causal.
            let visible = causalMask ? min(i + 1, keys) : keys
            switch positions {
            case .alibi:
                let m = slopes[h]
                for j in 0..<visible { row[j] -= m * Float(abs(i - j)) }
            case .t5:
                let table = relativeBias!.value.data
                for j in 0..<visible { row[j] += table[Self.bucket(j - i, bidirectional: !causal) * heads + h] }
            case .none, .rope: break
            }
            if let pad { for j in 0..<visible where pad[bi * s + j] { row[j] = -.infinity } }
            VectorMath.softmaxRow(row, visible)   // a query with nothing to attend to gets zeros
            if visible < keys { (row + visible).update(repeating: 0, count: keys - visible) }
        }
    }

    /// Rotary embedding of q (and k, at `kOffset` in the same rows) of every head, in place;
    /// `inverse` rotates back (the transpose, for gradients).
    private func rotate(_ base: UnsafeMutablePointer<Float>, rows t: Int, stride: Int, batch b: Int, inverse: Bool, kOffset: Int?) {
        let d = headDim, half = d / 2
        for bi in 0..<b {
            for pos in 0..<t {
                let row = base + (bi * t + pos) * stride
                for off in [0] + (kOffset.map { [$0] } ?? []) {
                    for h in 0..<heads {
                        let v = row + off + h * d
                        for i in 0..<half {
                            let c = rot.cos[pos * half + i], s = inverse ? -rot.sin[pos * half + i] : rot.sin[pos * half + i]
                            let a = v[i], bb = v[i + half]
                            v[i] = a * c - bb * s
                            v[i + half] = a * s + bb * c
                        }
                    }
                }
            }
        }
    }

    private func rotateKeys(_ base: UnsafeMutablePointer<Float>, rows s: Int, batch b: Int, stride: Int, inverse: Bool) {
        rotate(base, rows: s, stride: stride, batch: b, inverse: inverse, kOffset: nil)
    }

    // MARK: backward

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        backwardAttending(dy, needInputGrad: needInputGrad).input
    }

    /// Gradients for x (and, for cross-attention, the memory, which is always needed).
    public func backwardAttending(_ dy: Tensor, needInputGrad: Bool) -> (input: Tensor?, memory: Tensor?) {
        guard let x = input else { preconditionFailure("attention backward before forward") }
        let b = batchSize(x), t = steps, e = embed, d = headDim, sc = scale
        let m = memory
        let s = m.map { $0.count / (b * e) } ?? t
        let dattn = outProj.backward(dy, needInputGrad: true)!
        dqkv.resize([b, t, 3 * e])
        dqkv.zero()
        if m != nil { dkv.resize([b, s, 2 * e]); dkv.zero() }
        let (kBase, kStride) = m == nil ? (qkv.data + e, 3 * e) : (kv.data, 2 * e)
        let vBase = m == nil ? qkv.data + 2 * e : kv.data + e
        let (dkBase, dvBase) = m == nil ? (dqkv.data + e, dqkv.data + 2 * e) : (dkv.data, dkv.data + e)
        dprobs.resize([b, heads, t, s])
        let blocks = rowBlocks(t: t, s: s, cross: m != nil)
        let relGrads = relativeBias.map { _ in [Float](repeating: 0, count: Self.buckets * heads * b * heads) }
        var rel = relGrads ?? []
        rel.withUnsafeMutableBufferPointer { relG in
            Parallel.forEach(b * heads) { range in
                for bh in range {
                    let bi = bh / self.heads, h = bh % self.heads
                    let p = self.probs.data + bh * t * s, dp = self.dprobs.data + bh * t * s
                    let dO = dattn.data + bi * t * e + h * d
                    let q = self.qkv.data + bi * t * 3 * e + h * d
                    let k = kBase + bi * s * kStride + h * d, v = vBase + bi * s * kStride + h * d
                    for (rows, keys) in blocks {
                        let r0 = rows.lowerBound, n = rows.count
                        // dV = Pᵀ·dO, dP = dO·Vᵀ
                        BLAS.gemm(transA: true, m: keys, n: d, k: n, p + r0 * s, lda: s, dO + r0 * e, ldb: e, beta: 1,
                                  dvBase + bi * s * kStride + h * d, ldc: kStride)
                        BLAS.gemm(transB: true, m: n, n: keys, k: d, dO + r0 * e, lda: e, v, ldb: kStride, dp + r0 * s, ldc: s)
                        // dS = P ⊙ (dP − Σ_j dP⊙P) per row (masked entries have P = 0 and stay 0).
                        for i in rows {
                            let pr = p + i * s, dr = dp + i * s
                            var dot: Float = 0
                            for j in 0..<keys { dot += dr[j] * pr[j] }
                            for j in 0..<keys { dr[j] = pr[j] * (dr[j] - dot) }
                            if self.positions == .t5, let g = relG.baseAddress {
                                let slot = g + bh * Self.buckets * self.heads
                                for j in 0..<keys { slot[Self.bucket(j - i, bidirectional: !self.causal) * self.heads + h] += dr[j] }
                            }
                        }
                        // dQ = dS·K·s, dK = dSᵀ·Q·s
                        BLAS.gemm(m: n, n: d, k: keys, alpha: sc, dp + r0 * s, lda: s, k, ldb: kStride, beta: 1,
                                  self.dqkv.data + (bi * t + r0) * 3 * e + h * d, ldc: 3 * e)
                        BLAS.gemm(transA: true, m: keys, n: d, k: n, alpha: sc, dp + r0 * s, lda: s, q + r0 * 3 * e, ldb: 3 * e, beta: 1,
                                  dkBase + bi * s * kStride + h * d, ldc: kStride)
                    }
                }
            }
        }
        if let rb = relativeBias {
            let g = rb.grad.data, n = Self.buckets * heads
            for bh in 0..<(b * heads) { for i in 0..<n { g[i] += rel[bh * n + i] } }
        }
        if positions == .rope {
            rotate(dqkv.data, rows: t, stride: 3 * e, batch: b, inverse: true, kOffset: m == nil ? e : nil)
            if m != nil { rotateKeys(dkv.data, rows: s, batch: b, stride: 2 * e, inverse: true) }
        }
        let w = inProjWeight.value.data, gw = inProjWeight.grad.data
        // dW_in += dQKVᵀ · x (q rows from x; k, v rows from the memory in cross-attention).
        let qWidth = m == nil ? 3 * e : e
        BLAS.gemm(transA: true, m: qWidth, n: e, k: b * t, dqkv.data, lda: 3 * e, x.data, ldb: e, beta: 1, gw, ldc: e)
        if let m { BLAS.gemm(transA: true, m: 2 * e, n: e, k: b * s, dkv.data, lda: 2 * e, m.data, ldb: e, beta: 1, gw + e * e, ldc: e) }
        if let gb = inProjBias?.grad.data {
            for r in 0..<(b * t) { let row = dqkv.data + r * 3 * e; for j in 0..<qWidth { gb[j] += row[j] } }
            if m != nil { for r in 0..<(b * s) { let row = dkv.data + r * 2 * e; for j in 0..<(2 * e) { gb[e + j] += row[j] } } }
        }
        var dx: Tensor?, dm: Tensor?
        if needInputGrad {
            inputGrad.resize(x.shape)
            BLAS.gemm(m: b * t, n: e, k: qWidth, dqkv.data, lda: 3 * e, w, ldb: e, inputGrad.data, ldc: e)
            dx = inputGrad
        }
        if let m {
            memoryGrad.resize(m.shape)
            BLAS.gemm(m: b * s, n: e, k: 2 * e, dkv.data, lda: 2 * e, w + e * e, ldb: e, memoryGrad.data, ldc: e)
            dm = memoryGrad
        }
        return (dx, dm)
    }

    // MARK: reference

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        referenceAttending(x, memory: nil, batch: batch, r)
    }

    /// The attention written out in Double: projections, scores, masks and biases, softmax, output.
    public func referenceAttending(_ x: [Double], memory: [Double]?, batch b: Int, _ r: Reference) -> [Double] {
        let t = steps, e = embed, d = headDim
        let s = memory.map { $0.count / (b * e) } ?? t
        let w = r.value(inProjWeight), bias = inProjBias.map(r.value) ?? [Double](repeating: 0, count: 3 * e)
        let kvSource = memory ?? x
        func proj(_ src: [Double], _ row: Int, _ block: Int) -> [Double] {
            (0..<e).map { o in bias[block * e + o] + (0..<e).reduce(0) { $0 + w[(block * e + o) * e + $1] * src[row * e + $1] } }
        }
        func rope(_ v: [Double], _ pos: Int) -> [Double] {
            guard positions == .rope else { return v }
            var out = v
            for h in 0..<heads {
                for i in 0..<(d / 2) {
                    let angle = Double(pos) * pow(10000, -2 * Double(i) / Double(d))
                    let a = v[h * d + i], c = v[h * d + i + d / 2]
                    out[h * d + i] = a * cos(angle) - c * sin(angle)
                    out[h * d + i + d / 2] = a * sin(angle) + c * cos(angle)
                }
            }
            return out
        }
        let rel = relativeBias.map(r.value)
        var y = [Double](repeating: 0, count: b * t * e)
        for bi in 0..<b {
            let q = (0..<t).map { rope(proj(x, bi * t + $0, 0), $0) }
            let k = (0..<s).map { rope(proj(kvSource, bi * s + $0, 1), $0) }
            let v = (0..<s).map { proj(kvSource, bi * s + $0, 2) }
            for h in 0..<heads {
                for i in 0..<t {
                    var scores = [Double](repeating: -.infinity, count: s)
                    for j in 0..<s {
                        if causal && memory == nil && j > i { continue }
                        if (memory == nil ? context?.keyPadding : context?.memoryPadding)?[bi * s + j] ?? false { continue }
                        var v = (0..<d).reduce(0) { $0 + q[i][h * d + $1] * k[j][h * d + $1] }
                        v *= positions == .t5 ? 1 : 1 / Double(d).squareRoot()
                        if positions == .alibi { v -= Double(slopes[h]) * Double(abs(i - j)) }
                        if let rel { v += rel[Self.bucket(j - i, bidirectional: !causal) * heads + h] }
                        scores[j] = v
                    }
                    let mx = scores.max()!
                    guard mx > -.infinity else { continue }
                    let ex = scores.map { exp($0 - mx) }, z = ex.reduce(0, +)
                    for c in 0..<d {
                        y[(bi * t + i) * e + h * d + c] = (0..<s).reduce(0) { $0 + ex[$1] / z * v[$1][h * d + c] }
                    }
                }
            }
        }
        return r.run(outProj, y, batch: b, training: false)
    }

    /// `{type: attention, heads: 4, causal: false, positions: none|rope|alibi|t5, bias: true}` on `[T, E]`.
    static let kinds = [
        LayerKind("attention") { r, c in try build(r, c) },
    ]

    static func build(_ r: ConfigReader, _ c: LayerContext) throws -> MultiHeadAttention {
        guard c.inputShape.count == 2 else { throw c.error("attention needs a [steps, width] input, got \(c.inputShape)") }
        let e = c.inputShape[1], h = try r.requiredInt("heads", min: 1)
        guard e % h == 0 else { throw r.error("heads", "\(h) heads do not divide the model width \(e)") }
        let positions = try r.choice("positions", default: AttentionPositions.none)
        if positions == .rope && (e / h) % 2 != 0 { throw r.error("positions", "rope needs an even head width, got \(e / h)") }
        return MultiHeadAttention(embed: e, heads: h, steps: c.inputShape[0], causal: try r.bool("causal", default: false),
                                  positions: positions, bias: try r.bool("bias", default: true), context: c.sequence)
    }
}

// MARK: generation

extension MultiHeadAttention: StepDecoding {
    public var decodeBlocker: String? {
        causal ? nil : "its attention is not causal (a decoder generating token by token needs causal: true)"
    }

    /// One new position p per sample (x `[B, E]`): its q, k, v; k and v join the cache; the query
    /// attends over positions 0…p with the layer's position bias (RoPE angles, ALiBi slopes and T5
    /// buckets computed for p, so past the training context too).
    ///
    ///     per (b, h):  s[0…p] = q·K[0…p]ᵀ·scale + bias;  P = softmax(s);  o = P·V[0…p]   (sgemm each)
    public func decodeStep(_ x: Tensor, position p: Int) -> Tensor {
        let e = embed, d = headDim, b = x.count / e
        if p == 0 || cacheBatch != b { cached = 0; cacheBatch = b; cacheK.removeAll(keepingCapacity: true); cacheV.removeAll(keepingCapacity: true) }
        precondition(p == cached, "attention decoded position \(p) after \(cached) cached positions")
        stepQKV.resize([b, 3 * e])
        project(x.data, rows: b, weight: inProjWeight.value.data, bias: inProjBias?.value.data, out: stepQKV.data, outWidth: 3 * e, n: 3 * e)
        let qkv = stepQKV.data
        if positions == .rope {
            let half = d / 2
            for i in 0..<half {
                let angle = Double(p) * pow(10000, -2 * Double(i) / Double(d))
                let c = Float(cos(angle)), sn = Float(sin(angle))
                for bi in 0..<b {
                    for off in [0, e] {
                        for h in 0..<heads {
                            let v = qkv + bi * 3 * e + off + h * d
                            let a = v[i], bb = v[i + half]
                            v[i] = a * c - bb * sn
                            v[i + half] = a * sn + bb * c
                        }
                    }
                }
            }
        }
        for bi in 0..<b {
            cacheK.append(contentsOf: UnsafeBufferPointer(start: qkv + bi * 3 * e + e, count: e))
            cacheV.append(contentsOf: UnsafeBufferPointer(start: qkv + bi * 3 * e + 2 * e, count: e))
        }
        cached = p + 1
        let n = p + 1, stride = b * e, sc = scale
        if stepScores.count < n { stepScores = [Float](repeating: 0, count: max(n, 2 * stepScores.count)) }
        stepOut.resize([b, e])
        cacheK.withUnsafeBufferPointer { kc in
            cacheV.withUnsafeBufferPointer { vc in
                stepScores.withUnsafeMutableBufferPointer { sbuf in
                    let scores = sbuf.baseAddress!
                    for bi in 0..<b {
                        for h in 0..<heads {
                            BLAS.gemm(transB: true, m: 1, n: n, k: d, alpha: sc, qkv + bi * 3 * e + h * d, lda: 3 * e,
                                      kc.baseAddress! + bi * e + h * d, ldb: stride, scores, ldc: n)
                            switch positions {
                            case .alibi: for j in 0..<n { scores[j] -= slopes[h] * Float(p - j) }
                            case .t5:
                                let table = relativeBias!.value.data
                                for j in 0..<n { scores[j] += table[Self.bucket(j - p, bidirectional: false) * heads + h] }
                            case .none, .rope: break
                            }
                            VectorMath.softmaxRow(scores, n)
                            BLAS.gemm(m: 1, n: d, k: n, scores, lda: n, vc.baseAddress! + bi * e + h * d, ldb: stride,
                                      stepOut.data + bi * e + h * d, ldc: e)
                        }
                    }
                }
            }
        }
        return outProj.forward(stepOut, training: false)
    }
}
