import Config
import Glibc
import TensorCore

/// Recurrent layers as `torch.nn.RNN` (tanh), `torch.nn.LSTM` and `torch.nn.GRU`: batch-first
/// `[B, T, in]`, several stacked layers, optionally bidirectional, zero initial state, full
/// backpropagation through time. Parameters per layer l and direction (suffix `_reverse`):
/// `weight_ih_l{l}` `[G·H, in_l]`, `weight_hh_l{l}` `[G·H, H]`, `bias_ih_l{l}`, `bias_hh_l{l}`
/// `[G·H]`, gates in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), all U(±1/√H).
///
/// Per layer and direction:
///     P[B·T, G·H]  = X[B·T, in] · W_ihᵀ + b_ih                (one sgemm for every time step)
///     per step t:  R[B, G·H] = h_{t−1}[B, H] · W_hhᵀ + b_hh   (one sgemm over the batch)
///       RNN   h = tanh(P_t + R)
///       LSTM  i, f, g, o = σ, σ, tanh, σ (P_t + R);  c = f⊙c′ + i⊙g;  h = o⊙tanh(c)
///       GRU   r, z = σ(P_t + R);  n = tanh(P_n + r⊙R_n);  h = (1 − z)⊙n + z⊙h′
/// Backward (BPTT) per step collects dP and dR; then dW_ih = dPᵀX, dW_hh = dRᵀH′ and
/// dX = dP·W_ih are one sgemm each, and dh′ = dR_t·W_hh one per step.
public final class Recurrent: Layer {
    public enum Cell: String, CaseIterable, Sendable {
        case rnn, lstm, gru
        /// Gate blocks of G·H rows in the weights.
        public var gates: Int { self == .rnn ? 1 : self == .lstm ? 4 : 3 }
    }

    public let cell: Cell
    public let inputSize: Int
    public let hidden: Int
    public let layers: Int
    public let bidirectional: Bool
    /// Steps in the input (`[T, in]` per sample).
    public let steps: Int
    /// Return every step's hidden state `[T, H·dirs]`, or only the last one `[H·dirs]` (the
    /// forward direction's last step and the reverse direction's first, as PyTorch's h_n).
    public let lastOnly: Bool
    public let outputShape: [Int]

    /// One direction of one layer: its parameters and what forward keeps for backward.
    final class Unit {
        let wih, whh, bih, bhh: Parameter
        let reverse: Bool
        let pre = Tensor.workspace()        // [B, T, G·H]: P, then activated gates (GRU: r, z, n)
        let rec = Tensor.workspace()        // [B, T, G·H] GRU: R (n needs R_n in backward)
        let cells = Tensor.workspace()      // [B, T, H] LSTM c_t
        let prev = Tensor.workspace()       // [B, T, H] h_{t−1}
        let dpre = Tensor.workspace()       // [B, T, G·H]
        let drec = Tensor.workspace()       // [B, T, G·H] (GRU; otherwise dpre)
        let dh = Tensor.workspace()         // [B, H] gradient flowing to h_{t−1}
        let dc = Tensor.workspace()         // [B, H] LSTM
        let scratch = Tensor.workspace()    // [B, G·H]
        init(_ wih: Parameter, _ whh: Parameter, _ bih: Parameter, _ bhh: Parameter, reverse: Bool) {
            (self.wih, self.whh, self.bih, self.bhh, self.reverse) = (wih, whh, bih, bhh, reverse)
        }
    }

    let units: [Unit]                     // layer-major: [l0 fwd, l0 rev, l1 fwd, …]
    public let parameters: [Parameter]
    private var inputs: [Tensor?]         // each layer's input (the layer below's output)
    private let outputs: [Tensor]         // each layer's output [B, T, H·dirs]
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private let layerGrad = [Tensor.workspace(), Tensor.workspace()]

    public init(cell: Cell, inputSize: Int, hidden: Int, layers: Int = 1, bidirectional: Bool = false, steps: Int,
                lastOnly: Bool = false) {
        self.cell = cell
        self.inputSize = inputSize
        self.hidden = hidden
        self.layers = layers
        self.bidirectional = bidirectional
        self.steps = steps
        self.lastOnly = lastOnly
        let dirs = bidirectional ? 2 : 1
        outputShape = lastOnly ? [hidden * dirs] : [steps, hidden * dirs]
        let k = 1 / Float(hidden).squareRoot(), g = cell.gates * hidden
        var units: [Unit] = [], params: [Parameter] = []
        for l in 0..<layers {
            let inL = l == 0 ? inputSize : hidden * dirs
            for d in 0..<dirs {
                let s = "_l\(l)" + (d == 1 ? "_reverse" : "")
                let u = Unit(Parameter("weight_ih" + s, shape: [g, inL], initializer: .uniform(k)),
                             Parameter("weight_hh" + s, shape: [g, hidden], initializer: .uniform(k)),
                             Parameter("bias_ih" + s, shape: [g], initializer: .uniform(k)),
                             Parameter("bias_hh" + s, shape: [g], initializer: .uniform(k)), reverse: d == 1)
                units.append(u)
                params += [u.wih, u.whh, u.bih, u.bhh]
            }
        }
        self.units = units
        parameters = params
        inputs = Array(repeating: nil, count: layers)
        outputs = (0..<layers).map { _ in Tensor.workspace() }
    }

    var dirs: Int { bidirectional ? 2 : 1 }

    /// Per step, layer and direction the two products, 2·G·H·(d + H): the seed table's LSTM row
    /// 8h(h + d) (RNN 2h(h + d), GRU 6h(h + d)); the gates' element-wise work is not counted.
    public var flops: Int {
        var total = 0
        for l in 0..<layers {
            let inL = l == 0 ? inputSize : hidden * dirs
            total += dirs * steps * 2 * cell.gates * hidden * (inL + hidden)
        }
        return total
    }

    // MARK: forward

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), t = steps, h = hidden, w = hidden * dirs
        var cur = x
        for l in 0..<layers {
            inputs[l] = cur
            let out = outputs[l]
            out.resize([b, t, w])
            for d in 0..<dirs { run(units[l * dirs + d], cur, into: out, column: d * h, batch: b) }
            cur = out
        }
        guard lastOnly else { return cur }
        // h_n: forward direction at t = T−1, reverse direction at t = 0.
        output.resize([b, w])
        for bi in 0..<b {
            (output.data + bi * w).update(from: cur.data + (bi * t + t - 1) * w, count: h)
            if bidirectional { (output.data + bi * w + h).update(from: cur.data + bi * t * w + h, count: h) }
        }
        return output
    }

    /// One direction of one layer over every step; writes h_t into `out[:, t, column…]`.
    private func run(_ u: Unit, _ x: Tensor, into out: Tensor, column: Int, batch b: Int) {
        let t = steps, h = hidden, g = cell.gates * h, w = out.shape[2]
        let inL = x.count / (b * t)
        u.pre.resize([b, t, g])
        u.prev.resize([b, t, h])
        if cell == .lstm { u.cells.resize([b, t, h]) }
        if cell == .gru { u.rec.resize([b, t, g]) }
        u.scratch.resize([b, g])
        // P = X·W_ihᵀ + b_ih for every step at once.
        let p = u.pre.data
        for r in 0..<(b * t) { (p + r * g).update(from: u.bih.value.data, count: g) }
        BLAS.gemm(transB: true, m: b * t, n: g, k: inL, x.data, lda: inL, u.wih.value.data, ldb: inL, beta: 1, p, ldc: g)
        let order = u.reverse ? Array((0..<t).reversed()) : Array(0..<t)
        let R = u.scratch.data, bhh = u.bhh.value.data
        for (k, s) in order.enumerated() {
            // R = h_{t−1}·W_hhᵀ + b_hh; h_{t−1} is the previous step's column block of `out`.
            for bi in 0..<b { (R + bi * g).update(from: bhh, count: g) }
            let prevStep = k == 0 ? -1 : order[k - 1]
            if prevStep >= 0 {
                BLAS.gemm(transB: true, m: b, n: g, k: h, out.data + prevStep * w + column, lda: t * w,
                          u.whh.value.data, ldb: h, beta: 1, R, ldc: g)
            }
            for bi in 0..<b {
                let a = p + (bi * t + s) * g, r = R + bi * g
                let hp = u.prev.data + (bi * t + s) * h
                if prevStep >= 0 { hp.update(from: out.data + (bi * t + prevStep) * w + column, count: h) } else { hp.update(repeating: 0, count: h) }
                let ho = out.data + (bi * t + s) * w + column
                switch cell {
                case .rnn:
                    for j in 0..<h { let v = tanhf(a[j] + r[j]); a[j] = v; ho[j] = v }
                case .lstm:
                    let c = u.cells.data + (bi * t + s) * h
                    let cp: UnsafeMutablePointer<Float>? = prevStep >= 0 ? u.cells.data + (bi * t + prevStep) * h : nil
                    for j in 0..<h {
                        let i = sigmoid(a[j] + r[j]), f = sigmoid(a[h + j] + r[h + j])
                        let gg = tanhf(a[2 * h + j] + r[2 * h + j]), o = sigmoid(a[3 * h + j] + r[3 * h + j])
                        a[j] = i; a[h + j] = f; a[2 * h + j] = gg; a[3 * h + j] = o
                        let cv = f * (cp?[j] ?? 0) + i * gg
                        c[j] = cv
                        ho[j] = o * tanhf(cv)
                    }
                case .gru:
                    let rc = u.rec.data + (bi * t + s) * g
                    rc.update(from: r, count: g)
                    for j in 0..<h {
                        let rr = sigmoid(a[j] + r[j]), z = sigmoid(a[h + j] + r[h + j])
                        let n = tanhf(a[2 * h + j] + rr * r[2 * h + j])
                        a[j] = rr; a[h + j] = z; a[2 * h + j] = n
                        ho[j] = (1 - z) * n + z * hp[j]
                    }
                }
            }
        }
    }

    // MARK: backward

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let b = batchSize(dy), t = steps, h = hidden, w = hidden * dirs
        // The gradient of the top layer's full output (h_n only when lastOnly).
        var g = layerGrad[0]
        g.resize([b, t, w])
        if lastOnly {
            g.zero()
            for bi in 0..<b {
                (g.data + (bi * t + t - 1) * w).update(from: dy.data + bi * w, count: h)
                if bidirectional { (g.data + bi * t * w + h).update(from: dy.data + bi * w + h, count: h) }
            }
        } else {
            g.data.update(from: dy.data, count: dy.count)
        }
        for l in stride(from: layers - 1, through: 0, by: -1) {
            let x = inputs[l]!
            let needX = l > 0 || needInputGrad
            let inL = x.count / (b * t)
            let gx = l > 0 ? layerGrad[(layers - l) % 2] : inputGrad
            if needX { gx.resize([b, t, inL]); gx.zero() }
            for d in 0..<dirs { bptt(units[l * dirs + d], x, outputs[l], g, gx: needX ? gx : nil, column: d * h, batch: b) }
            g = gx
        }
        return needInputGrad ? inputGrad : nil
    }

    private func bptt(_ u: Unit, _ x: Tensor, _ out: Tensor, _ dout: Tensor, gx: Tensor?, column: Int, batch b: Int) {
        let t = steps, h = hidden, g = cell.gates * h, w = out.shape[2]
        let inL = x.count / (b * t)
        u.dpre.resize([b, t, g])
        let dR: Tensor = cell == .gru ? u.drec : u.dpre
        if cell == .gru { u.drec.resize([b, t, g]) }
        u.dh.resize([b, h]); u.dh.zero()
        if cell == .lstm { u.dc.resize([b, h]); u.dc.zero() }
        let order = u.reverse ? Array((0..<t).reversed()) : Array(0..<t)
        let a = u.pre.data, dp = u.dpre.data, dr = dR.data, dhn = u.dh.data
        for k in stride(from: t - 1, through: 0, by: -1) {
            let s = order[k]
            for bi in 0..<b {
                let row = (bi * t + s)
                let gate = a + row * g, dgate = dp + row * g, drow = dr + row * g
                let hp = u.prev.data + row * h, dn = dhn + bi * h
                let hout = out.data + row * w + column, dhout = dout.data + row * w + column
                switch cell {
                case .rnn:
                    for j in 0..<h {
                        let dh = dhout[j] + dn[j]
                        dgate[j] = dh * (1 - hout[j] * hout[j])
                    }
                case .lstm:
                    let c = u.cells.data + row * h, dc = u.dc.data + bi * h
                    let cp: UnsafeMutablePointer<Float>? = k > 0 ? u.cells.data + (bi * t + order[k - 1]) * h : nil
                    for j in 0..<h {
                        let i = gate[j], f = gate[h + j], gg = gate[2 * h + j], o = gate[3 * h + j]
                        let dh = dhout[j] + dn[j], tc = tanhf(c[j])
                        let dcv = dh * o * (1 - tc * tc) + dc[j]
                        dgate[j] = dcv * gg * i * (1 - i)
                        dgate[h + j] = dcv * (cp?[j] ?? 0) * f * (1 - f)
                        dgate[2 * h + j] = dcv * i * (1 - gg * gg)
                        dgate[3 * h + j] = dh * tc * o * (1 - o)
                        dc[j] = dcv * f
                    }
                case .gru:
                    let rc = u.rec.data + row * g
                    for j in 0..<h {
                        let r = gate[j], z = gate[h + j], n = gate[2 * h + j]
                        let dh = dhout[j] + dn[j]
                        let dan = dh * (1 - z) * (1 - n * n)
                        let dz = dh * (hp[j] - n)
                        let dr = dan * rc[2 * h + j] * r * (1 - r)
                        dgate[j] = dr; dgate[h + j] = dz * z * (1 - z); dgate[2 * h + j] = dan
                        drow[j] = dr; drow[h + j] = dgate[h + j]; drow[2 * h + j] = dan * r
                        dn[j] = dh * z        // the direct path to h_{t−1}; W_hh's is added below
                    }
                }
            }
            // dh_{t−1} = dR_t · W_hh (+ GRU's direct z path already in dh).
            if k > 0 {
                BLAS.gemm(m: b, n: h, k: g, dr + s * g, lda: t * g, u.whh.value.data, ldb: h,
                          beta: cell == .gru ? 1 : 0, dhn, ldc: h)
            }
        }
        // Parameter gradients over every step at once.
        BLAS.gemm(transA: true, m: g, n: inL, k: b * t, dp, lda: g, x.data, ldb: inL, beta: 1, u.wih.grad.data, ldc: inL)
        BLAS.gemm(transA: true, m: g, n: h, k: b * t, dr, lda: g, u.prev.data, ldb: h, beta: 1, u.whh.grad.data, ldc: h)
        let bi = u.bih.grad.data, bh = u.bhh.grad.data
        for r in 0..<(b * t) {
            let p = dp + r * g, q = dr + r * g
            for j in 0..<g { bi[j] += p[j]; bh[j] += q[j] }
        }
        if let gx { BLAS.gemm(m: b * t, n: inL, k: g, dp, lda: g, u.wih.value.data, ldb: inL, beta: 1, gx.data, ldc: inL) }
    }

    // MARK: reference

    /// The recurrences written out in Double, step by step (no fused products).
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let t = steps, h = hidden, w = hidden * dirs
        var cur = x, inL = inputSize
        func sig(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
        for l in 0..<layers {
            var out = [Double](repeating: 0, count: b * t * w)
            for d in 0..<dirs {
                let u = units[l * dirs + d]
                let wih = r.value(u.wih), whh = r.value(u.whh), bih = r.value(u.bih), bhh = r.value(u.bhh)
                let g = cell.gates * h
                for bi in 0..<b {
                    var hp = [Double](repeating: 0, count: h), cp = hp
                    for k in 0..<t {
                        let s = u.reverse ? t - 1 - k : k
                        var pre = [Double](repeating: 0, count: g), rec = pre
                        for q in 0..<g {
                            pre[q] = bih[q] + (0..<inL).reduce(0) { $0 + wih[q * inL + $1] * cur[(bi * t + s) * inL + $1] }
                            rec[q] = bhh[q] + (0..<h).reduce(0) { $0 + whh[q * h + $1] * hp[$1] }
                        }
                        var hn = hp
                        for j in 0..<h {
                            switch cell {
                            case .rnn: hn[j] = tanh(pre[j] + rec[j])
                            case .lstm:
                                let i = sig(pre[j] + rec[j]), f = sig(pre[h + j] + rec[h + j])
                                let gg = tanh(pre[2 * h + j] + rec[2 * h + j]), o = sig(pre[3 * h + j] + rec[3 * h + j])
                                cp[j] = f * cp[j] + i * gg
                                hn[j] = o * tanh(cp[j])
                            case .gru:
                                let rr = sig(pre[j] + rec[j]), z = sig(pre[h + j] + rec[h + j])
                                let n = tanh(pre[2 * h + j] + rr * rec[2 * h + j])
                                hn[j] = (1 - z) * n + z * hp[j]
                            }
                        }
                        hp = hn
                        for j in 0..<h { out[(bi * t + s) * w + d * h + j] = hn[j] }
                    }
                }
            }
            cur = out
            inL = w
        }
        guard lastOnly else { return cur }
        var y = [Double](repeating: 0, count: b * w)
        for bi in 0..<b {
            for j in 0..<h { y[bi * w + j] = cur[(bi * t + t - 1) * w + j] }
            if bidirectional { for j in 0..<h { y[bi * w + h + j] = cur[bi * t * w + h + j] } }
        }
        return y
    }

    /// `{type: lstm, hidden: 256, layers: 2, bidirectional: false, output: sequence|last}` on `[T, in]`
    /// (and `rnn`, `gru` alike).
    static let kinds = Cell.allCases.map { cell in
        LayerKind(cell.rawValue) { r, c in
            guard c.inputShape.count == 2 else {
                throw c.error("\(cell.rawValue) needs a [steps, features] input (batch-first), got per-sample shape \(c.inputShape)")
            }
            let last = try r.string("output", default: "sequence", oneOf: ["sequence", "last"]) == "last"
            return Recurrent(cell: cell, inputSize: c.inputShape[1], hidden: try r.requiredInt("hidden", min: 1),
                             layers: try r.int("layers", default: 1, min: 1), bidirectional: try r.bool("bidirectional", default: false),
                             steps: c.inputShape[0], lastOnly: last)
        }
    }
}
