import Datasets
import Glibc
import NN
import TensorCore

/// Softmax + cross-entropy (or hinge, perceptron; MSE or BCE against one-hot labels) over C
/// classes. Metrics: accuracy, top-k accuracy, and the confusion matrix with per-class recall.
///
/// sums: [correct, top-k correct, confusion (C × C, true-major)]
public final class ClassificationTask: SupervisedTask {
    let lossKind: LossKind
    let topK: Int
    let classNames: [String]?
    private var classes = 0

    init(loss: Loss, lossKind: LossKind, topK: Int, classNames: [String]?) {
        self.lossKind = lossKind
        self.topK = topK
        self.classNames = classNames
        super.init(name: "classification", loss: loss)
    }

    override func expectedOutput(_ data: JobData) -> [Int]? { [data.train.target?.count ?? 0] }
    override var appliesOutputFunction: Bool { lossKind != .mse }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .classes, t.shape.isEmpty else {
            throw TrainError("the classification task needs one class index per sample; \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        classes = t.count ?? 0
        try super.check(runner, data: data)
    }

    override func target(_ out: Tensor, _ b: Batch) -> Target {
        if b.hasSoft { return .values(b.softTargets) }
        // MSE and BCE compare with the one-hot of the label.
        if lossKind == .mse { return .values(oneHot(b.labels, width: out.shape.last ?? 1)) }
        return .classes(b.labels)
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 2 + classes * classes) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        let c = classes, k = min(topK, c)
        for i in 0..<b.count {
            let row = out.data + i * c, y = Int(b.labels[i])
            var best = 0, above = 0
            for j in 0..<c {
                if row[j] > row[best] { best = j }
                if row[j] > row[y] { above += 1 }
            }
            if best == y { m[0] += 1 }
            if above < k { m[1] += 1 }
            m[2 + y * c + best] += 1
        }
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        let n = max(m.count, 1)
        var out = [Metric("acc", m[0] / n)]
        if classes > topK { out.append(Metric("top\(topK)", m[1] / n)) }
        return out
    }

    /// counts[true][predicted] from reduced sums.
    func confusion(_ m: MetricSums) -> [[Int]] {
        (0..<classes).map { y in (0..<classes).map { p in Int(m[2 + y * classes + p]) } }
    }
}

/// One logit, sigmoid + binary cross-entropy, targets 0/1 (a two-class column). Metrics:
/// accuracy at 0.5 and ROC AUC (ranks over every rank's scores, gathered whole).
///
/// sums: [correct]; samples: (score, label) pairs
public final class BinaryTask: SupervisedTask {
    init(loss: Loss) { super.init(name: "binary", loss: loss) }

    override func expectedOutput(_ data: JobData) -> [Int]? { [1] }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .classes, t.shape.isEmpty, t.count == 2 else {
            throw TrainError("the binary task needs a target with two classes (0 and 1); \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")"
                             + (data.train.target?.count.map { $0 > 2 ? " — use the classification task for \($0) classes" : "" } ?? ""))
        }
        try super.check(runner, data: data)
    }

    override func target(_ out: Tensor, _ b: Batch) -> Target {
        targetBuffer.resize([b.count, 1])
        for i in 0..<b.count { targetBuffer.data[i] = Float(b.labels[i]) }
        return .values(targetBuffer)
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 1) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        for i in 0..<b.count {
            let z = out.data[i], y = b.labels[i]
            if (z > 0) == (y == 1) { m[0] += 1 }
            m.samples.append(z)
            m.samples.append(Float(y))
        }
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        [Metric("acc", m[0] / max(m.count, 1)), Metric("auc", Self.rocAUC(m.samples))]
    }

    /// Area under the ROC curve from (score, label) pairs: the Mann–Whitney statistic with
    /// ties given half credit (what sklearn's roc_auc_score computes).
    public static func rocAUC(_ pairs: [Float]) -> Double {
        let n = pairs.count / 2
        let order = (0..<n).sorted { pairs[2 * $0] < pairs[2 * $1] }
        var rankSumPositive = 0.0, positives = 0.0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n && pairs[2 * order[j + 1]] == pairs[2 * order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1   // average rank of the tie group (1-based)
            for k in i...j where pairs[2 * order[k] + 1] == 1 { rankSumPositive += rank; positives += 1 }
            i = j + 1
        }
        let negatives = Double(n) - positives
        guard positives > 0, negatives > 0 else { return .nan }
        return (rankSumPositive - positives * (positives + 1) / 2) / (positives * negatives)
    }
}

/// C independent labels: sigmoid per output + BCE against 0/1 targets `[C]`. Metrics: exact
/// match (every label right), micro and macro F1 (sklearn's definitions; a class with no true
/// and no predicted positives scores 0).
///
/// sums: [exact matches, then per class: true positives, false positives, false negatives]
public final class MultilabelTask: SupervisedTask {
    private var labels = 0

    init(loss: Loss) { super.init(name: "multilabel", loss: loss) }

    public override var targetEncoding: TargetEncoding { .values }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .values, t.shape.count == 1 else {
            throw TrainError("the multilabel task needs 0/1 targets [labels]; \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        if let col = data.train.targetColumn, let bad = firstNotBinary(col) {
            throw TrainError("\(data.train.name): multilabel targets must be 0 or 1; element \(bad.index) is \(bad.value)")
        }
        labels = t.shape[0]
        try super.check(runner, data: data)
    }

    func firstNotBinary(_ c: Column) -> (index: Int, value: Double)? {
        for i in 0..<(c.rows * c.sampleSize) {
            let v = c.rawValue(i)
            if v != 0 && v != 1 { return (i, v) }
        }
        return nil
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 1 + 3 * labels) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        let c = labels, y = b.values
        for i in 0..<b.count {
            var all = true
            for j in 0..<c {
                let p = out.data[i * c + j] > 0, t = y.data[i * c + j] > 0.5
                if p != t { all = false }
                if p && t { m[1 + 3 * j] += 1 } else if p { m[2 + 3 * j] += 1 } else if t { m[3 + 3 * j] += 1 }
            }
            if all { m[0] += 1 }
        }
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        var tp = 0.0, fp = 0.0, fn = 0.0, macro = 0.0
        for j in 0..<labels {
            let a = m[1 + 3 * j], b = m[2 + 3 * j], c = m[3 + 3 * j]
            tp += a; fp += b; fn += c
            macro += 2 * a + b + c > 0 ? 2 * a / (2 * a + b + c) : 0
        }
        return [Metric("exact_match", m[0] / max(m.count, 1)),
                Metric("micro_f1", 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0),
                Metric("macro_f1", macro / Double(max(labels, 1)))]
    }
}
