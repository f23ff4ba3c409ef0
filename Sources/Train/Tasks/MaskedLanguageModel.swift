import Datasets
import Glibc
import NN
import TensorCore

/// BERT-style pre-training of a bidirectional encoder on text blocks: masked language modelling
/// (15% of the real tokens of each sequence chosen — exactly round(0.15·n), as BERT's
/// create_pretraining_data — and of those 80% replaced by [MASK], 10% by a random token, 10%
/// kept; cross-entropy on the chosen positions only), plus next-sentence prediction: the block
/// of 2L tokens is split into A and B, and half the pairs get the second half of another block
/// as B (NotNext), decided per sample. Input `[CLS] A [SEP] B [SEP]` (RoBERTa without NSP:
/// `[CLS] block [SEP]`); ids past the text's vocabulary V are the specials: [MASK] = V,
/// [CLS] = V + 1, [SEP] = V + 2. The model outputs `[T, V (+ 2)]`: the token logits, and with NSP
/// two more columns read at the [CLS] position (IsNext, NotNext).
///
/// Masks are drawn from a hash of the sample's tokens: static (the same mask every epoch, as
/// BERT's pre-computed data) or dynamic (re-drawn each step, RoBERTa). Either way a sample's
/// mask and pair do not depend on which rank holds it, so data-parallel runs match one process;
/// evaluation uses the static masks.
///
/// sums: [Σ MLM nats, masked tokens, masked tokens right, Σ NSP nats, pairs right]
public final class MaskedLanguageModelTask: Task {
    public let name = "masked_lm"
    public var targetEncoding: TargetEncoding { .classes }
    let nsp: Bool
    let rate: Double
    let dynamic: Bool
    let seed: UInt64
    private let ce = SoftmaxCrossEntropy()
    private var vocabulary = 0, dataSteps = 0, width = 0
    // Where NotNext halves come from: the training split, or the split being evaluated.
    private var trainSource: DataSource?, evalSource: DataSource?
    // The model's input, the chosen positions and their original tokens, the pairs' labels.
    let input = Batch()
    var positions: [Int] = []
    let maskedLabels = IntTensor(), nspLabels = IntTensor()
    private let partner = Batch()
    private let mlmLogits = Tensor.workspace(), mlmGrad = Tensor.workspace()
    private let nspLogits = Tensor.workspace(), nspGrad = Tensor.workspace()
    private let outputGrad = Tensor.workspace()

    public init(nsp: Bool, rate: Double, dynamic: Bool, seed: UInt64) {
        self.nsp = nsp
        self.rate = rate
        self.dynamic = dynamic
        self.seed = seed
    }

    /// Positions the special ids take in a model input (what the data blocks leave free).
    public static func specials(nsp: Bool) -> Int { nsp ? 3 : 2 }

    var maskID: Int32 { Int32(vocabulary) }
    var clsID: Int32 { Int32(vocabulary + 1) }
    var sepID: Int32 { Int32(vocabulary + 2) }
    /// Tokens chosen per sequence.
    var chosen: Int { max(1, Int((Double(dataSteps) * rate).rounded())) }

    public func check(_ runner: StepRunner, data: JobData) throws {
        guard let r = runner.replicas.first, runner.replicas.count == 1 else { throw TrainError("the masked_lm task trains one model") }
        guard let v = data.train.input.count,
              let blocks = (data.train as? TokenBlocks) ?? ((data.train as? Subset)?.base as? TokenBlocks) else {
            throw TrainError("the masked_lm task needs text blocks (data.format: text); \(data.train.name) holds \(data.train.input)")
        }
        vocabulary = v
        dataSteps = blocks.context
        guard let e = r.model.inputEmbedding else { throw TrainError("the masked_lm task needs a model that starts with an embedding") }
        guard e.vocabulary >= v + 3 else {
            throw TrainError("the embedding has \(e.vocabulary) rows; the masked_lm task needs the text's \(v) tokens and 3 specials ([MASK], [CLS], [SEP]): vocab \(v + 3)")
        }
        if nsp && dataSteps % 2 != 0 {
            throw TrainError("next-sentence prediction splits each block in two halves: the model input minus 3 specials must be even, got \(dataSteps)")
        }
        let t = dataSteps + Self.specials(nsp: nsp)
        width = v + (nsp ? 2 : 0)
        guard r.model.inputShape == [t] else {
            throw TrainError("model input \(r.model.inputShape) does not fit blocks of \(dataSteps) tokens and \(Self.specials(nsp: nsp)) specials: it needs [\(t)]")
        }
        guard r.model.outputShape == [t, width] else {
            throw TrainError("the masked_lm task needs outputs [\(t), \(width)] (the \(v) token logits\(nsp ? " and 2 next-sentence logits" : "")), the model gives \(r.model.outputShape)")
        }
        trainSource = data.train
    }

    public func willEvaluate(_ d: DataSource) { evalSource = d }

    @inline(__always) static func mix(_ h: inout UInt64, _ v: UInt64) { h = (h ^ v) &* 0x0000_0100_0000_01B3 }

    /// Fills `input` from the data blocks of `b`: specials, NSP pairs and masks; the chosen
    /// positions and their original tokens go to `positions` / `maskedLabels`.
    func prepare(_ b: Batch, salt: UInt64, partners: DataSource?) {
        let n = b.count, d = dataSteps, t = d + Self.specials(nsp: nsp), k = chosen
        input.prepare(n, input: FieldSpec(.ids, shape: [t], count: vocabulary + 3), target: nil)
        positions = [Int](repeating: 0, count: n * k)
        maskedLabels.resize([n * k])
        nspLabels.resize([n])
        let src = b.ids.data, dst = input.ids.data
        for i in 0..<n {
            let block = src + i * d
            var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
            for j in 0..<d { Self.mix(&h, UInt64(UInt32(bitPattern: block[j]))) }
            var rng = RNG(seed: h ^ salt)
            let row = dst + i * t
            row[0] = clsID
            var real: [Int] = []   // model positions of text tokens
            if nsp {
                let half = d / 2
                (row + 1).update(from: block, count: half)
                row[1 + half] = sepID
                let notNext = rng.below(2) == 1, second = row + 2 + half
                if notNext, let p = partners, p.count > 1 {
                    otherHalf(p, avoiding: block, rng: &rng, into: second, half: half)
                } else {
                    second.update(from: block + half, count: half)
                }
                nspLabels.data[i] = notNext && (partners?.count ?? 0) > 1 ? 1 : 0
                row[t - 1] = sepID
                real = Array(1...half) + Array((2 + half)..<(2 + 2 * half))
            } else {
                (row + 1).update(from: block, count: d)
                row[t - 1] = sepID
                real = Array(1...d)
            }
            // Exactly k positions, a partial Fisher–Yates shuffle of the real ones.
            for c in 0..<k {
                let j = c + rng.below(real.count - c)
                real.swapAt(c, j)
                let p = real[c]
                positions[i * k + c] = p
                maskedLabels.data[i * k + c] = row[p]
                let u = rng.uniform()
                if u < 0.8 { row[p] = maskID } else if u < 0.9 { row[p] = Int32(rng.below(vocabulary)) }
            }
        }
    }

    /// The second half of another block of the partner source (never the sample's own).
    private func otherHalf(_ p: DataSource, avoiding block: UnsafeMutablePointer<Int32>, rng: inout RNG,
                          into out: UnsafeMutablePointer<Int32>, half: Int) {
        let j = rng.below(p.count)
        p.gather([j][...], into: partner)
        let other = partner.ids.data
        var same = true
        for q in 0..<(2 * half) where other[q] != block[q] { same = false; break }
        let pick = same ? (j + 1) % p.count : j
        if same { p.gather([pick][...], into: partner) }
        out.update(from: partner.ids.data + half, count: half)
    }

    /// Loss of the prepared input's outputs; dL/d(output) into `outputGrad` when training.
    func loss(_ out: Tensor, grad: Bool) -> (mlm: Float, nsp: Float) {
        let n = input.count, t = dataSteps + Self.specials(nsp: nsp), k = chosen, v = vocabulary, w = width
        mlmLogits.resize([n * k, v])
        for r in 0..<(n * k) {
            let i = r / k
            (mlmLogits.data + r * v).update(from: out.data + (i * t + positions[r]) * w, count: v)
        }
        let mlm = ce.compute(mlmLogits, .classes(maskedLabels), grad: grad ? mlmGrad : nil)
        var nspLoss: Float = 0
        if nsp {
            nspLogits.resize([n, 2])
            for i in 0..<n { (nspLogits.data + i * 2).update(from: out.data + i * t * w + v, count: 2) }
            nspLoss = ce.compute(nspLogits, .classes(nspLabels), grad: grad ? nspGrad : nil)
        }
        if grad {
            outputGrad.resize(out.shape)
            outputGrad.zero()
            for r in 0..<(n * k) {
                let i = r / k
                let dst = outputGrad.data + (i * t + positions[r]) * w
                for c in 0..<v { dst[c] += mlmGrad.data[r * v + c] }
            }
            if nsp { for i in 0..<n { for c in 0..<2 { outputGrad.data[i * t * w + v + c] += nspGrad.data[i * 2 + c] } } }
        }
        return (mlm, nspLoss)
    }

    public func step(_ batch: Batch, _ run: StepRunner) throws -> Float {
        let r = run.replicas[0]
        r.model.zeroGrad()
        let a = run.accumulation
        // Dynamic masks: a new draw each optimizer step (the same on every rank for a sample).
        let salt: UInt64 = dynamic ? UInt64(run.globalStep + 1) &* 0x9E37_79B9_7F4A_7C15 : 0
        var total: Float = 0
        for (m, mb) in run.microBatches(batch).enumerated() {
            prepare(mb, salt: salt, partners: trainSource)
            let out = r.forward(input, training: true)
            let l = loss(out, grad: true)
            total += l.mlm + l.nsp
            if a > 1 { scale(outputGrad, 1 / Float(a)) }
            r.backward(outputGrad, reduceWithLoss: m == a - 1 ? total / Float(a) : nil)
        }
        let stepLoss = try r.finishReduce(localLoss: total / Float(a))
        try run.apply(r, loss: stepLoss)
        return stepLoss
    }

    public func makeMetrics() -> MetricSums { MetricSums(count: 5) }

    public func evaluate(_ batch: Batch, _ run: StepRunner, into m: MetricSums) {
        prepare(batch, salt: 0, partners: evalSource ?? trainSource)
        let out = run.replicas[0].forward(input, training: false)
        let l = loss(out, grad: false)
        let n = batch.count, k = chosen, v = vocabulary, w = width, t = dataSteps + Self.specials(nsp: nsp)
        m.add(samples: n, meanLoss: l.mlm + l.nsp, terms: n)
        m[0] += Double(l.mlm) * Double(n * k)
        m[1] += Double(n * k)
        for r in 0..<(n * k) where argmax(mlmLogits.data + r * v, v) == Int(maskedLabels.data[r]) { m[2] += 1 }
        if nsp {
            m[3] += Double(l.nsp) * Double(n)
            for i in 0..<n where argmax(out.data + i * t * w + v, 2) == Int(nspLabels.data[i]) { m[4] += 1 }
        }
    }

    private func argmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        for c in 1..<n where p[c] > p[best] { best = c }
        return best
    }

    public func finish(_ m: MetricSums) -> [Metric] {
        let mlm = m[0] / max(m[1], 1)
        var out = [Metric("mlm_loss", mlm), Metric("mlm_ppl", exp(mlm)), Metric("mlm_acc", m[2] / max(m[1], 1))]
        if nsp { out += [Metric("nsp_loss", m[3] / max(m.count, 1)), Metric("nsp_acc", m[4] / max(m.count, 1))] }
        return out
    }
}
