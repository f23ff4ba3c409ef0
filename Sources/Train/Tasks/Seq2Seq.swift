import Datasets
import Glibc
import NN
import TensorCore

/// Sequence to sequence with an `encoder_decoder` model: each sample's ids are the source (S)
/// then the decoder input (T: a start id and the target shifted right); its labels the target
/// `[T]`. Trained as per-token cross-entropy with teacher forcing (the language model's loss and
/// perplexity); evaluated as well by greedy decoding — T forwards, each filling the next decoder
/// input with the previous position's argmax — for exact match (the whole target right) and
/// token accuracy.
///
/// sums: [Σ tokens, Σ greedy tokens right, Σ sequences entirely right]
public final class Seq2SeqTask: LanguageModelTask {
    private var source = 0, target = 0
    private let saved = IntTensor()

    init(loss: Loss) { super.init(loss: loss, byteLengths: nil, name: "seq2seq") }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let ed = runner.replicas.first?.model.network.layers.first as? EncoderDecoder else {
            throw TrainError("the seq2seq task needs a model that starts with an encoder_decoder layer (source ids, then the decoder's)")
        }
        source = ed.source
        target = ed.target
        if let t = data.train.target, t.shape != [target] {
            throw TrainError("the model decodes \(target) positions after \(source) source ids, but \(data.train.name) has targets \(t.shape)")
        }
        try super.check(runner, data: data)
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 3) }

    public override func evaluate(_ batch: Batch, _ run: StepRunner, into m: MetricSums) {
        super.evaluate(batch, run, into: m)   // teacher-forced loss and perplexity
        let r = run.replicas[0], b = batch.count, all = source + target
        let ids = batch.ids.data, labels = batch.labels.data
        saved.resize(batch.ids.shape)
        saved.data.update(from: ids, count: batch.ids.count)
        var predicted = [Int32](repeating: 0, count: b * target)
        for p in 0..<target {
            let out = r.forward(batch, training: false)   // [B, T, V]
            let v = out.count / (b * target)
            for i in 0..<b {
                let row = out.data + (i * target + p) * v
                var best = 0
                for c in 1..<v where row[c] > row[best] { best = c }
                predicted[i * target + p] = Int32(best)
                if p + 1 < target { ids[i * all + source + p + 1] = Int32(best) }
            }
        }
        ids.update(from: saved.data, count: batch.ids.count)
        var right = 0, exact = 0
        for i in 0..<b {
            var all = true
            for p in 0..<target {
                if predicted[i * target + p] == labels[i * target + p] { right += 1 } else { all = false }
            }
            if all { exact += 1 }
        }
        m[1] += Double(right)
        m[2] += Double(exact)
    }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) { m[0] += Double(b.labels.count) }

    public override func finish(_ m: MetricSums) -> [Metric] {
        [Metric("ppl", exp(m.loss)), Metric("exact_match", m[2] / max(m.count, 1)), Metric("token_acc", m[1] / max(m[0], 1))]
    }
}
