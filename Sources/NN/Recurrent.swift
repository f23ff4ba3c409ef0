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
        // Generation: the state after the last decoded position, and one step's buffers.
        let stateH = Tensor.workspace(), stateC = Tensor.workspace()    // [B, H]
        let nextH = Tensor.workspace(), nextC = Tensor.workspace()
        let stepP = Tensor.workspace(), stepR = Tensor.workspace(), stepRC = Tensor.workspace()   // [B, G·H]
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
        let R = u.scratch.data, bhh = u.bhh.value.data, whh = u.whh.value.data
        for (k, s) in order.enumerated() {
            let prevStep = k == 0 ? -1 : order[k - 1]
            // Parts of the hidden units in parallel (8-aligned), each its units' gate columns of
            // R = h_{t−1}·W_hhᵀ + b_hh for the whole batch, then their gates: every part reads
            // (and BLAS packs) only its share of W_hh. h_{t−1} is the previous step's block of `out`.
            for bi in 0..<b { (R + bi * g).update(from: bhh, count: g) }
            Parallel.forEach((h + 7) / 8, grain: 4) { blocks in
                let j0 = blocks.lowerBound * 8, j1 = min(blocks.upperBound * 8, h)
                if prevStep >= 0 {
                    for gate in 0..<self.cell.gates {
                        BLAS.gemm(transB: true, m: b, n: j1 - j0, k: h, out.data + prevStep * w + column, lda: t * w,
                                  whh + (gate * h + j0) * h, ldb: h, beta: 1, R + gate * h + j0, ldc: g)
                    }
                }
                for bi in 0..<b {
                    let hp = u.prev.data + (bi * t + s) * h
                    if prevStep >= 0 {
                        (hp + j0).update(from: out.data + (bi * t + prevStep) * w + column + j0, count: j1 - j0)
                    } else {
                        (hp + j0).update(repeating: 0, count: j1 - j0)
                    }
                    let row = bi * t + s
                    self.cellForward(a: p + row * g, r: R + bi * g, hp: hp, out: out.data + row * w + column,
                                     c: u.cells.data + row * h, cp: prevStep >= 0 ? u.cells.data + (bi * t + prevStep) * h : nil,
                                     rc: u.rec.data + row * g, units: j0..<j1)
                }
            }
        }
    }

    /// One sample's gates at one step for some hidden units, eight at a time; `a` (the input
    /// part P_t) is overwritten with the activated gates, which backward reads.
    @inline(__always)
    /// LSTM: `c` receives c_t, `cp` holds c_{t−1} (nil: zero). GRU: `rc` keeps R for backward.
    private func cellForward(a: UnsafeMutablePointer<Float>, r: UnsafeMutablePointer<Float>, hp: UnsafeMutablePointer<Float>,
                             out ho: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>, cp: UnsafeMutablePointer<Float>?,
                             rc: UnsafeMutablePointer<Float>, units: Range<Int>) {
        let h = hidden, n = units.upperBound
        typealias V = VectorMath
        switch cell {
        case .rnn:
            for j in stride(from: units.lowerBound, to: n, by: 8) {
                let v = V.tanh(a.load8(j, upTo: n) + r.load8(j, upTo: n))
                a.store8(j, v, upTo: n); ho.store8(j, v, upTo: n)
            }
        case .lstm:
            let (ai, af, ag, ao) = (a, a + h, a + 2 * h, a + 3 * h)
            let (ri, rf, rg, ro) = (r, r + h, r + 2 * h, r + 3 * h)
            for j in stride(from: units.lowerBound, to: n, by: 8) {
                let i = V.sigmoid(ai.load8(j, upTo: n) + ri.load8(j, upTo: n))
                let f = V.sigmoid(af.load8(j, upTo: n) + rf.load8(j, upTo: n))
                let gg = V.tanh(ag.load8(j, upTo: n) + rg.load8(j, upTo: n))
                let o = V.sigmoid(ao.load8(j, upTo: n) + ro.load8(j, upTo: n))
                ai.store8(j, i, upTo: n); af.store8(j, f, upTo: n); ag.store8(j, gg, upTo: n); ao.store8(j, o, upTo: n)
                let cv = f * (cp?.load8(j, upTo: n) ?? Vec8(repeating: 0)) + i * gg
                c.store8(j, cv, upTo: n)
                ho.store8(j, o * V.tanh(cv), upTo: n)
            }
        case .gru:
            for gate in 0..<3 { (rc + gate * h + units.lowerBound).update(from: r + gate * h + units.lowerBound, count: units.count) }
            let (ar, az, an) = (a, a + h, a + 2 * h)
            let (rr, rz, rn) = (r, r + h, r + 2 * h)
            for j in stride(from: units.lowerBound, to: n, by: 8) {
                let re = V.sigmoid(ar.load8(j, upTo: n) + rr.load8(j, upTo: n))
                let z = V.sigmoid(az.load8(j, upTo: n) + rz.load8(j, upTo: n))
                let nn = V.tanh(an.load8(j, upTo: n) + re * rn.load8(j, upTo: n))
                ar.store8(j, re, upTo: n); az.store8(j, z, upTo: n); an.store8(j, nn, upTo: n)
                ho.store8(j, (Vec8(repeating: 1) - z) * nn + z * hp.load8(j, upTo: n), upTo: n)
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
        let a = u.pre.data, dp = u.dpre.data, dr = dR.data, dhn = u.dh.data, whh = u.whh.value.data
        for k in stride(from: t - 1, through: 0, by: -1) {
            let s = order[k]
            // Parts of the batch in parallel: their gates' gradients, then dh_{t−1} = dR_t·W_hh
            // for their rows (GRU's direct z path is already in dh).
            Parallel.forEach(b, grain: 4) { rows in
                for bi in rows {
                    let row = bi * t + s
                    self.cellBackward(u, gate: a + row * g, dgate: dp + row * g, drow: dr + row * g, hp: u.prev.data + row * h,
                                      dn: dhn + bi * h, hout: out.data + row * w + column, dhout: dout.data + row * w + column,
                                      row: row, prevRow: k > 0 ? bi * t + order[k - 1] : nil, batchRow: bi)
                }
                if k > 0 {
                    let r0 = rows.lowerBound
                    BLAS.gemm(m: rows.count, n: h, k: g, dr + (r0 * t + s) * g, lda: t * g, whh, ldb: h,
                              beta: self.cell == .gru ? 1 : 0, dhn + r0 * h, ldc: h)
                }
            }
        }
        // Parameter gradients over every step at once.
        BLAS.gemm(transA: true, m: g, n: inL, k: b * t, dp, lda: g, x.data, ldb: inL, beta: 1, u.wih.grad.data, ldc: inL)
        BLAS.gemm(transA: true, m: g, n: h, k: b * t, dr, lda: g, u.prev.data, ldb: h, beta: 1, u.whh.grad.data, ldc: h)
        let bi = u.bih.grad.data, bh = u.bhh.grad.data
        Parallel.forEach(g, grain: 64) { cols in
            for r in 0..<(b * t) {
                let p = dp + r * g, q = dr + r * g
                for j in cols { bi[j] += p[j]; bh[j] += q[j] }
            }
        }
        if let gx { BLAS.gemm(m: b * t, n: inL, k: g, dp, lda: g, u.wih.value.data, ldb: inL, beta: 1, gx.data, ldc: inL) }
    }

    /// One sample's gate gradients at one step from dh = dout + dn (dn: the gradient arriving
    /// from step t+1, replaced by GRU's direct path to h_{t−1}); LSTM carries dc in `u.dc`.
    @inline(__always)
    private func cellBackward(_ u: Unit, gate: UnsafeMutablePointer<Float>, dgate: UnsafeMutablePointer<Float>,
                              drow: UnsafeMutablePointer<Float>, hp: UnsafeMutablePointer<Float>, dn: UnsafeMutablePointer<Float>,
                              hout: UnsafeMutablePointer<Float>, dhout: UnsafeMutablePointer<Float>, row: Int, prevRow: Int?,
                              batchRow bi: Int) {
        let h = hidden, one = Vec8(repeating: 1)
        switch cell {
        case .rnn:
            for j in stride(from: 0, to: h, by: 8) {
                let dh = dhout.load8(j, upTo: h) + dn.load8(j, upTo: h), y = hout.load8(j, upTo: h)
                dgate.store8(j, dh * (one - y * y), upTo: h)
            }
        case .lstm:
            let c = u.cells.data + row * h, dc = u.dc.data + bi * h
            let cp = prevRow.map { u.cells.data + $0 * h }
            for j in stride(from: 0, to: h, by: 8) {
                let i = gate.load8(j, upTo: h), f = (gate + h).load8(j, upTo: h)
                let gg = (gate + 2 * h).load8(j, upTo: h), o = (gate + 3 * h).load8(j, upTo: h)
                let dh = dhout.load8(j, upTo: h) + dn.load8(j, upTo: h), tc = VectorMath.tanh(c.load8(j, upTo: h))
                let dcv = dh * o * (one - tc * tc) + dc.load8(j, upTo: h)
                dgate.store8(j, dcv * gg * i * (one - i), upTo: h)
                (dgate + h).store8(j, dcv * (cp?.load8(j, upTo: h) ?? Vec8(repeating: 0)) * f * (one - f), upTo: h)
                (dgate + 2 * h).store8(j, dcv * i * (one - gg * gg), upTo: h)
                (dgate + 3 * h).store8(j, dh * tc * o * (one - o), upTo: h)
                dc.store8(j, dcv * f, upTo: h)
            }
        case .gru:
            let rc = u.rec.data + row * cell.gates * h
            for j in stride(from: 0, to: h, by: 8) {
                let r = gate.load8(j, upTo: h), z = (gate + h).load8(j, upTo: h), n = (gate + 2 * h).load8(j, upTo: h)
                let dh = dhout.load8(j, upTo: h) + dn.load8(j, upTo: h)
                let dan = dh * (one - z) * (one - n * n)
                let dz = dh * (hp.load8(j, upTo: h) - n) * z * (one - z)
                let dr = dan * (rc + 2 * h).load8(j, upTo: h) * r * (one - r)
                dgate.store8(j, dr, upTo: h); (dgate + h).store8(j, dz, upTo: h); (dgate + 2 * h).store8(j, dan, upTo: h)
                drow.store8(j, dr, upTo: h); (drow + h).store8(j, dz, upTo: h); (drow + 2 * h).store8(j, dan * r, upTo: h)
                dn.store8(j, dh * z, upTo: h)        // the direct path to h_{t−1}; W_hh's is added after
            }
        }
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

// MARK: generation

extension Recurrent: StepDecoding {
    public var decodeBlocker: String? {
        if bidirectional { return "it is bidirectional (its reverse direction reads later positions)" }
        if lastOnly { return "it returns only the last step (output: last), not one output per position" }
        return nil
    }

    /// One step of every layer for x `[B, in]`, from the state the previous position left
    /// (zero at position 0): the two products and the gates, as one step of `forward`.
    public func decodeStep(_ x: Tensor, position p: Int) -> Tensor {
        let h = hidden, g = cell.gates * h, b = x.count / inputSize
        var cur = x
        for u in units {
            let inL = cur.count / b
            if p == 0 || u.stateH.count != b * h {
                u.stateH.resize([b, h]); u.stateH.zero()
                u.stateC.resize([b, h]); u.stateC.zero()
            }
            for t in [u.stepP, u.stepR, u.stepRC] { t.resize([b, g]) }
            u.nextH.resize([b, h]); u.nextC.resize([b, h])
            for bi in 0..<b {
                (u.stepP.data + bi * g).update(from: u.bih.value.data, count: g)
                (u.stepR.data + bi * g).update(from: u.bhh.value.data, count: g)
            }
            BLAS.gemm(transB: true, m: b, n: g, k: inL, cur.data, lda: inL, u.wih.value.data, ldb: inL, beta: 1, u.stepP.data, ldc: g)
            BLAS.gemm(transB: true, m: b, n: g, k: h, u.stateH.data, lda: h, u.whh.value.data, ldb: h, beta: 1, u.stepR.data, ldc: g)
            for bi in 0..<b {
                cellForward(a: u.stepP.data + bi * g, r: u.stepR.data + bi * g, hp: u.stateH.data + bi * h, out: u.nextH.data + bi * h,
                            c: u.nextC.data + bi * h, cp: p == 0 ? nil : u.stateC.data + bi * h, rc: u.stepRC.data + bi * g, units: 0..<h)
            }
            u.stateH.data.update(from: u.nextH.data, count: b * h)
            u.stateC.data.update(from: u.nextC.data, count: b * h)
            cur = u.stateH
        }
        return cur
    }
}
