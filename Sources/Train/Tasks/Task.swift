import Datasets
import Glibc
import NN
import TensorCore

/// What a run learns: a task owns the targets the data must supply, how the models' outputs
/// meet them (the loss wiring and any output function), one optimizer step, and the metrics of
/// an evaluation. The supervised tasks of the seed's output/loss table share `SupervisedTask`;
/// a task whose step is not one forward/backward of one model (a GAN's two models in turn,
/// diffusion's sampled noise) implements `step` and `evaluate` itself.
public protocol Task: AnyObject {
    var name: String { get }
    /// What the data must hold as targets.
    var targetEncoding: TargetEncoding { get }
    /// Checks the models against the data (output shapes against targets); errors say what fits.
    func check(_ runner: StepRunner, data: JobData) throws
    /// One optimizer step on this rank's batch; returns the step's loss averaged over ranks.
    func step(_ batch: Batch, _ runner: StepRunner) throws -> Float
    /// Adds one evaluation batch (eval mode) to `metrics`.
    func evaluate(_ batch: Batch, _ runner: StepRunner, into metrics: MetricSums)
    /// An empty accumulator for this task's metrics.
    func makeMetrics() -> MetricSums
    /// The metrics from sums reduced over every rank.
    func finish(_ metrics: MetricSums) -> [Metric]
    /// Called before an evaluation of `data` (a task that draws from the split it evaluates).
    func willEvaluate(_ data: DataSource)
}

extension Task {
    public func willEvaluate(_ data: DataSource) {}
}

public struct Metric: Equatable, Sendable {
    public var name: String
    public var value: Double
    public init(_ name: String, _ value: Double) { self.name = name; self.value = value }
}

/// Sums an evaluation accumulates: `sums` (counts and totals, reduced across ranks by adding,
/// so a sharded evaluation equals a single-process one — never a mean of means) and `samples`
/// (values every rank contributes whole, e.g. the scores a ROC AUC ranks).
public final class MetricSums {
    /// sums[0]: total loss, sums[1]: the terms it is a sum over (samples, or tokens),
    /// sums[2]: samples; then the task's own (`self[i]`).
    public var sums: [Double]
    public var samples: [Float] = []
    public init(count: Int) { sums = [Double](repeating: 0, count: count + 3) }

    public var loss: Double { sums[1] > 0 ? sums[0] / sums[1] : .nan }
    public var count: Double { sums[2] }

    /// Adds a batch of `samples` whose loss is `meanLoss` over `terms` terms.
    public func add(samples: Int, meanLoss: Float, terms: Int) {
        sums[0] += Double(meanLoss) * Double(terms)
        sums[1] += Double(terms)
        sums[2] += Double(samples)
    }

    /// The task's sums (after the three common ones).
    public subscript(i: Int) -> Double {
        get { sums[i + 3] }
        set { sums[i + 3] = newValue }
    }
}

/// An evaluation of one split.
public struct Evaluation: Sendable {
    /// "val", "test" or "train", the prefix of the metric names in logs.
    public var split: String
    public var loss: Double
    public var metrics: [Metric]
    /// Classification: counts[true class][predicted class].
    public var confusion: [[Int]]?
    public var classNames: [String]?

    public subscript(name: String) -> Double? { metrics.first { $0.name == name }?.value }

    /// Accuracy where the task has one (NaN otherwise).
    public var accuracy: Double { self["acc"] ?? .nan }

    /// Classification: the recall of each class (its diagonal count over its row), nil for a
    /// class the split does not contain.
    public var recall: [Double?]? {
        confusion.map { m in m.enumerated().map { i, row in row.reduce(0, +) > 0 ? Double(row[i]) / Double(row.reduce(0, +)) : nil } }
    }

    /// The confusion matrix as a table (rows: true class, columns: predicted) with each class's
    /// recall, for classification with at most `maxClasses` classes.
    public func confusionTable(maxClasses: Int = 20) -> String? {
        guard let m = confusion, m.count <= maxClasses, let recall else { return nil }
        let names = (classNames?.count == m.count ? classNames! : (0..<m.count).map(String.init)).map { String($0.prefix(12)) }
        let w = max(6, (names.map(\.count) + m.flatMap { $0 }.map { String($0).count }).max()! + 1)
        func pad(_ s: String) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        var lines = ["\(split) confusion (rows: true class, columns: predicted)", pad("") + names.map(pad).joined() + " " + pad("recall")]
        for (i, row) in m.enumerated() {
            lines.append(pad(names[i]) + row.map { pad(String($0)) }.joined() + " " + pad(recall[i].map { fmt($0, 3) } ?? "-"))
        }
        return lines.joined(separator: "\n")
    }

    /// `val_loss 0.3123 val_acc 0.8721 …`
    public var line: String {
        (["\(split)_loss \(fmt(loss, 4))"] + metrics.map { "\(split)_\($0.name) \(fmt($0.value, 4))" }).joined(separator: " ")
    }
}

/// One model, one forward and backward per micro-batch: every row of the seed's output/loss
/// table. Subclasses say how targets are formed, what the metrics count, and (for bounded and
/// softplus outputs) what function sits between the model and the loss.
public class SupervisedTask: Task {
    public let name: String
    public let loss: Loss
    let outputGrad = Tensor.workspace()
    let targetBuffer = Tensor.workspace()

    init(name: String, loss: Loss) {
        self.name = name
        self.loss = loss
    }

    public var targetEncoding: TargetEncoding { .classes }

    /// The per-sample output shape this task needs for the data's targets.
    func expectedOutput(_ data: JobData) -> [Int]? { data.train.target?.shape }

    public func check(_ runner: StepRunner, data: JobData) throws {
        guard let r = runner.replicas.first, runner.replicas.count == 1 else {
            throw TrainError("the \(name) task trains one model (model:), not \(runner.replicas.count)")
        }
        try checkInput(r.model, data.train)
        if let want = expectedOutput(data), r.model.outputShape != want {
            throw TrainError("model output shape \(r.model.outputShape) does not fit the \(name) task on \(data.train.name): "
                             + "it needs \(want) (targets: \(data.train.target.map(\.description) ?? "none"))")
        }
        if let last = r.model.network.layers.last, appliesOutputFunction, last is Softmax || last is Sigmoid || last is ScaledSigmoid {
            throw TrainError("the model ends with \(type(of: last)), but the \(name) task applies its output function itself "
                             + "(\(outputFunctionName)); end the model with the linear layer")
        }
    }

    /// Whether the loss (or the task) applies softmax/sigmoid/exp to the model's raw outputs.
    var appliesOutputFunction: Bool { true }
    var outputFunctionName: String { "fused into the loss" }

    /// The loss's target for a batch.
    func target(_ out: Tensor, _ b: Batch) -> Target {
        if b.hasSoft { return .values(b.softTargets) }
        return b.target == .values ? .values(b.values) : .classes(b.labels)
    }

    /// Mean loss of a batch for the model's raw outputs, with the task's output function and
    /// target wiring; dL/d(output) into `grad` when given.
    public func lossValue(_ out: Tensor, _ b: Batch, grad: Tensor?) -> Float { loss.compute(out, target(out, b), grad: grad) }

    public func step(_ batch: Batch, _ run: StepRunner) throws -> Float {
        let r = run.replicas[0]
        r.model.zeroGrad()
        let k = run.accumulation
        var lossSum: Float = 0
        for (m, mb) in run.microBatches(batch).enumerated() {
            let out = r.forward(mb, training: true)
            lossSum += lossValue(out, mb, grad: outputGrad)
            if k > 1 { scale(outputGrad, 1 / Float(k)) }
            r.backward(outputGrad, reduceWithLoss: m == k - 1 ? lossSum / Float(k) : nil)
        }
        let stepLoss = try r.finishReduce(localLoss: lossSum / Float(k))
        try run.apply(r, loss: stepLoss)
        return stepLoss
    }

    public func evaluate(_ batch: Batch, _ run: StepRunner, into m: MetricSums) {
        let out = run.replicas[0].forward(batch, training: false)
        m.add(samples: batch.count, meanLoss: lossValue(out, batch, grad: nil), terms: loss.terms(out))
        accumulate(out, batch, m)
    }

    /// Adds a batch's predictions to the task's sums.
    func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {}

    public func makeMetrics() -> MetricSums { MetricSums(count: 0) }
    public func finish(_ m: MetricSums) -> [Metric] { [] }

    /// Class labels as one-hot rows (for MSE or BCE against classes).
    func oneHot(_ labels: IntTensor, width c: Int) -> Tensor {
        targetBuffer.resize([labels.count, c])
        targetBuffer.zero()
        for r in 0..<labels.count { targetBuffer.data[r * c + Int(labels[r])] = 1 }
        return targetBuffer
    }
}

/// Checks that `model` reads the samples of `d` as they are: ids into an embedding (with rows
/// for every id), floats of the samples' shape otherwise.
public func checkInput(_ model: Model, _ d: DataSource) throws {
    guard model.takesIndices == d.input.isInteger else {
        throw TrainError(model.takesIndices
            ? "the model starts with an embedding (it reads ids), but \(d.name) holds \(d.input)"
            : "\(d.name) holds \(d.input); a model for ids starts with an embedding layer")
    }
    guard model.inputShape == d.input.shape else {
        throw TrainError("model input shape \(model.inputShape) does not match the samples of \(d.name), \(d.input.shape)")
    }
    if let n = d.input.count, model.takesIndices, let e = model.inputEmbedding, e.vocabulary < n {
        throw TrainError("the embedding has \(e.vocabulary) rows but \(d.name) holds ids up to \(n - 1)")
    }
}

func scale(_ t: Tensor, _ s: Float) {
    for i in 0..<t.count { t.data[i] *= s }
}

extension TaskKind {
    /// What the data must hold for this task.
    public var targetEncoding: TargetEncoding {
        switch self {
        case .classification, .binary, .languageModel, .seq2seq, .maskedLM: return .classes
        case .multilabel, .regression, .boundedRegression, .counting: return .values
        case .reconstruction: return .none
        }
    }
}

extension JobConfig {
    /// The task named by the job (`task:`, or implied by the loss), wired to its loss.
    public func makeTask(_ data: DataInfo) -> Task {
        let l = makeLoss()
        switch task.kind {
        case .classification: return ClassificationTask(loss: l, lossKind: train.loss, topK: task.topK, classNames: data.classNames)
        case .binary: return BinaryTask(loss: l)
        case .multilabel: return MultilabelTask(loss: l)
        case .regression: return RegressionTask(loss: l, scaling: data.targetScaling)
        case .boundedRegression: return BoundedRegressionTask(loss: l, low: Float(task.low), high: Float(task.high))
        case .counting: return CountingTask(rate: task.rate)
        case .languageModel: return LanguageModelTask(loss: l, byteLengths: data.tokenizer?.byteLengths)
        case .seq2seq: return Seq2SeqTask(loss: l)
        case .maskedLM:
            return MaskedLanguageModelTask(nsp: task.nsp, rate: task.maskRate, dynamic: task.masking == .dynamic, seed: UInt64(seed))
        case .reconstruction: return ReconstructionTask(loss: l)
        }
    }
}
