import Datasets
import Glibc
import NN
import TensorCore

/// Next-token prediction: logits `[T, V]` per sample against the block shifted by one, softmax +
/// cross-entropy averaged over tokens. Metrics: perplexity e^loss and bits per byte (nats over
/// every target token ÷ ln 2 ÷ the UTF-8 bytes those tokens stand for — for a byte tokenizer,
/// bits per token).
///
/// sums: [Σ target bytes]
public class LanguageModelTask: SupervisedTask {
    let byteLengths: [Int]?
    private var vocabulary = 0

    init(loss: Loss, byteLengths: [Int]?, name: String = "language_model") {
        self.byteLengths = byteLengths
        super.init(name: name, loss: loss)
    }

    override func expectedOutput(_ data: JobData) -> [Int]? {
        guard let t = data.train.target else { return nil }
        return t.shape + [t.count ?? 0]
    }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .classes, t.shape.count == 1 else {
            throw TrainError("the language_model task needs token targets [T] (data.format: text); \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        vocabulary = t.count ?? 0
        if let r = runner.replicas.first, r.model.takesIndices, let e = r.model.inputEmbedding,
           e.vocabulary < vocabulary {
            throw TrainError("the embedding has \(e.vocabulary) rows but the data's vocabulary has \(vocabulary) tokens")
        }
        if let r = runner.replicas.first, let why = Model.futureLeak(r.model.network, path: "model.layers") {
            throw TrainError("the \(name) task predicts each token from the ones before it, but \(why): it would see the token it predicts (set causal: true, or use a unidirectional layer)")
        }
        try super.check(runner, data: data)
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 1) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        guard let bl = byteLengths else { m[0] += Double(b.labels.count); return }
        var bytes = 0
        for i in 0..<b.labels.count { bytes += bl[Int(b.labels[i])] }
        m[0] += Double(bytes)
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        [Metric("ppl", exp(m.loss)), Metric("bpb", m.sums[0] / log(2) / max(m[0], 1))]
    }
}
