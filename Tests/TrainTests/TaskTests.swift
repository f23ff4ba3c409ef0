import Comm
import Config
import Datasets
import Formats
import Glibc
import NN
import TensorCore
import TestSupport
import Testing
import Train

/// A job over files the test writes: `data` is the job's data section, `model` its layers.
func taskJob(_ name: String, task: ConfigValue, loss: String? = nil, input: [Int], layers: [ConfigValue], data: ConfigValue,
             epochs: Int = 20, batch: Int = 32, lr: Double = 0.01) throws -> JobConfig {
    var train: ConfigValue = ["epochs": .int(epochs), "batch_size": .int(batch), "log_every": 0, "check_every": 5]
    if let loss, case .map(var e) = train { e.append(ConfigEntry(key: "loss", value: .string(loss))); train = .map(e) }
    let v: ConfigValue = [
        "name": .string(name), "seed": 1, "task": task,
        "model": ["input": .list(input.map { .int($0) }), "layers": .list(layers)],
        "data": data, "train": train,
        "optimizer": ["type": "adam", "lr": .double(lr)],
        "schedule": ["type": "constant"],
        "scaling": ["rule": "none"],
        "checkpoint": ["dir": ""],
    ]
    return try JobConfig(v, source: name)
}

func writeCSV(_ path: String, header: String, _ rows: [[Double]]) throws {
    let text = header + "\n" + rows.map { $0.map { String($0) }.joined(separator: ",") }.joined(separator: "\n") + "\n"
    try FileIO.writeAtomically(path, bytes: Array(text.utf8))
}

func writeNPY(_ path: String, _ values: [Float], _ shape: [Int]) throws {
    try FileIO.writeAtomically(path, bytes: NPY.image(floats: values, shape: shape))
}

let mlp2: [ConfigValue] = [["type": "linear", "out": 16], "relu"]

/// Trains the job in one process; returns the last evaluation.
func trained(_ job: JobConfig) throws -> (Evaluation, Trainer) {
    let data = try JobData.load(job)
    let t = try Trainer(job: job, data: data, log: { _ in })
    let s = try t.run()
    return (try #require(s.lastEvaluation), t)
}

/// The step-for-step property for a task: 2 ranks (half the batch each) see the same losses as
/// one process, and a 2-rank evaluation of the trained replicas equals a 1-rank one.
func checkDataParallel(_ job: JobConfig, steps: Int = 12, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let data = try JobData.load(job)
    let single = try losses(job, data, world: 1, steps: steps)
    let ddp = try losses(job, data, world: 2, steps: steps)
    #expect(single.count == steps && ddp.count == steps, sourceLocation: sourceLocation)
    let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(worst <= 1e-4, "\(job.name): worst relative difference \(worst)\n\(single)\n\(ddp)", sourceLocation: sourceLocation)

    let split = try #require(data.epochSplit)
    let one = try Trainer(job: job, data: data, log: { _ in }).evaluate(split.data, split: split.name)
    let ring = try localRing(2, options: .init(timeout: 20))
    let two = concurrently(2) { r in try Trainer(job: job, data: data, comm: ring[r], log: { _ in }).evaluate(split.data, split: split.name) }
        .map { try? $0.get() }
    for e in two {
        let e = try #require(e, sourceLocation: sourceLocation)
        #expect(abs(e.loss - one.loss) <= 1e-6 * max(1, abs(one.loss)), "\(job.name): loss \(e.loss) vs \(one.loss)", sourceLocation: sourceLocation)
        for (a, b) in zip(e.metrics, one.metrics) {
            #expect(a.name == b.name && abs(a.value - b.value) <= 1e-6 * max(1, abs(b.value)),
                    "\(job.name): \(a.name) \(a.value) vs \(b.value)", sourceLocation: sourceLocation)
        }
        #expect(e.confusion == one.confusion, sourceLocation: sourceLocation)
    }
}

@Test(.timeLimit(.minutes(10)))
func classificationOfStringClassesFromCSV() throws {
    let dir = Fixtures.tempDirectory("task-cls")
    var rng = RNG(seed: 5)
    var text = "x,y,kind\n"
    let names = ["east", "north", "west"]
    for _ in 0..<600 {
        let c = rng.below(3), a = Double(c) * 2.1 + Double(rng.uniform(-0.6, 0.6))
        text += "\(cos(a) * 3 + Double(rng.normal()) * 0.2),\(sin(a) * 3 + Double(rng.normal()) * 0.2),\(names[c])\n"
    }
    try FileIO.writeAtomically("\(dir)/points.csv", bytes: Array(text.utf8))
    let job = try taskJob("cls", task: "classification", input: [2], layers: mlp2 + [["type": "linear", "out": 3]],
                          data: ["train": .string("\(dir)/points.csv"), "validation_fraction": 0.2, "csv": ["targets": "kind"]], epochs: 10)
    let (ev, t) = try trained(job)
    #expect(ev.split == "val" && ev.accuracy > 0.95, "\(ev.line)")
    #expect(t.data.info.classNames == ["east", "north", "west"] && ev.classNames == ["east", "north", "west"])
    let confusion = try #require(ev.confusion)
    #expect(confusion.flatMap { $0 }.reduce(0, +) == 120)
    #expect(ev["top5"] == nil, "top-5 of 3 classes is not reported")
    // Per-class recall is each row's diagonal share; the table names the classes.
    let recall = try #require(ev.recall)
    #expect(recall.count == 3)
    for (i, row) in confusion.enumerated() { #expect(recall[i] == Double(row[i]) / Double(row.reduce(0, +))) }
    let table = try #require(ev.confusionTable())
    #expect(table.contains("north") && table.contains("recall") && table.split(separator: "\n").count == 5, "\(table)")
    try checkDataParallel(job)
}

@Test(.timeLimit(.minutes(10)))
func binaryWithAccuracyAndROCAUC() throws {
    let dir = Fixtures.tempDirectory("task-bin")
    var rng = RNG(seed: 6)
    var rows: [[Double]] = []
    for _ in 0..<800 {
        let a = Double(rng.normal()), b = Double(rng.normal())
        rows.append([a, b, a + 0.5 * b + Double(rng.normal()) * 0.3 > 0 ? 1 : 0])
    }
    try writeCSV("\(dir)/b.csv", header: "a,b,label", rows)
    let job = try taskJob("bin", task: "binary", input: [2], layers: [["type": "linear", "out": 1]],
                          data: ["train": .string("\(dir)/b.csv"), "test_fraction": 0.25, "csv": ["targets": "label"]], epochs: 10)
    let (ev, _) = try trained(job)
    #expect(ev.accuracy > 0.85 && (ev["auc"] ?? 0) > 0.93, "\(ev.line)")
    try checkDataParallel(job)
}

@Test func rocAUCMatchesTheRankFormula() {
    // sklearn.metrics.roc_auc_score([0, 0, 1, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.4]) = 0.75 (the 0.4 tie counts half).
    var m = [Float]()
    for (s, y) in zip([0.1, 0.4, 0.35, 0.8, 0.4] as [Float], [0, 0, 1, 1, 1] as [Float]) { m += [s, y] }
    #expect(abs(BinaryTask.rocAUC(m) - 0.75) < 1e-12)
    #expect(BinaryTask.rocAUC([0.2, 1, 0.9, 1]).isNaN, "no negatives: undefined")
}

@Test(.timeLimit(.minutes(10)))
func multilabelFromNPY() throws {
    let dir = Fixtures.tempDirectory("task-ml")
    var rng = RNG(seed: 7)
    var x: [Float] = [], y: [Float] = []
    for _ in 0..<640 {
        let v = (0..<4).map { _ in rng.normal() }
        x += v
        y += [v[0] > 0 ? 1 : 0, v[1] > 0 ? 1 : 0, v[0] + v[2] > 0 ? 1 : 0]
    }
    try writeNPY("\(dir)/x.npy", x, [640, 4])
    try writeNPY("\(dir)/y.npy", y, [640, 3])
    let job = try taskJob("ml", task: "multilabel", input: [4], layers: mlp2 + [["type": "linear", "out": 3]],
                          data: ["train": ["inputs": .string("\(dir)/x.npy"), "targets": .string("\(dir)/y.npy")], "test_fraction": 0.25],
                          epochs: 12)
    let (ev, _) = try trained(job)
    #expect((ev["micro_f1"] ?? 0) > 0.9 && (ev["macro_f1"] ?? 0) > 0.9 && (ev["exact_match"] ?? 0) > 0.75, "\(ev.line)")
    try checkDataParallel(job)
    // Targets that are not 0/1 are refused.
    try writeNPY("\(dir)/bad.npy", y.map { $0 * 2 }, [640, 3])
    var bad = job
    bad.data.train = .init(inputs: ["\(dir)/x.npy"], targets: "\(dir)/bad.npy")
    #expect(throws: (any Error).self) { try trained(bad) }
}

@Test(.timeLimit(.minutes(10)))
func multiOutputRegressionReportsR2InDataUnits() throws {
    let dir = Fixtures.tempDirectory("task-reg")
    var rng = RNG(seed: 8)
    var xs: [[Double]] = [], ys: [[Double]] = []
    for _ in 0..<600 {
        let a = Double(rng.normal()), b = Double(rng.normal())
        xs.append([a, b])
        ys.append([100 + 30 * a - 20 * b + Double(rng.normal()), -5 + 2 * a * b])
    }
    try writeCSV("\(dir)/x.csv", header: "a,b", xs)
    try writeCSV("\(dir)/y.csv", header: "u,v", ys)
    let job = try taskJob("reg", task: "regression", input: [2], layers: [["type": "linear", "out": 32], "tanh", ["type": "linear", "out": 2]],
                          data: ["train": ["inputs": .string("\(dir)/x.csv"), "targets": .string("\(dir)/y.csv")], "test_fraction": 0.2,
                                 "normalize_targets": true], epochs: 25)
    let (ev, t) = try trained(job)
    #expect((ev["r2"] ?? 0) > 0.9, "\(ev.line)")
    // MSE in the targets' units (the first output's noise alone has variance 1): not the standardised scale.
    #expect(t.data.info.targetScaling != nil && (ev["mse"] ?? 0) > 0.3, "\(ev.line)")
    try checkDataParallel(job)
    for loss in ["mae", "huber"] {
        let j = try taskJob("reg-\(loss)", task: "regression", loss: loss, input: [2], layers: [["type": "linear", "out": 2]],
                            data: ["train": ["inputs": .string("\(dir)/x.csv"), "targets": .string("\(dir)/y.csv")], "test_fraction": 0.2,
                                   "normalize_targets": true], epochs: 8, lr: 0.05)
        let (e, _) = try trained(j)
        #expect((e["r2"] ?? 0) > 0.4, "\(loss): \(e.line)")
    }
}

@Test(.timeLimit(.minutes(10)))
func boundedRegressionStaysInItsRange() throws {
    let dir = Fixtures.tempDirectory("task-bounded")
    var rng = RNG(seed: 9)
    var rows: [[Double]] = []
    for _ in 0..<500 {
        let a = Double(rng.normal())
        rows.append([a, 2 + 3 / (1 + exp(-2 * a))])   // in (2, 5)
    }
    try writeCSV("\(dir)/b.csv", header: "a,y", rows)
    let job = try taskJob("bounded", task: ["type": "bounded_regression", "low": 2, "high": 5], input: [1],
                          layers: [["type": "linear", "out": 1]],
                          data: ["train": .string("\(dir)/b.csv"), "test_fraction": 0.2, "csv": ["targets": "y"]], epochs: 30, lr: 0.05)
    let (ev, _) = try trained(job)
    #expect((ev["mse"] ?? 1) < 0.01, "\(ev.line)")
    try checkDataParallel(job)
    // A target outside the range, and a model that already ends in a squashing layer, are refused.
    try writeCSV("\(dir)/out.csv", header: "a,y", rows + [[0, 7]])
    var out = job
    out.data.train = .init(inputs: ["\(dir)/out.csv"])
    do { _ = try trained(out); Issue.record("expected a range error") } catch {
        #expect("\(error)".contains("target 7.0 at element") && "\(error)".contains("outside the task's range [2.0, 5.0]"), "\(error)")
    }
    var squashed = job
    squashed.model.layers.append(["type": "scaled_sigmoid", "low": 2, "high": 5])
    do { _ = try trained(squashed); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("the bounded_regression task applies its output function itself"), "\(error)")
    }
}

@Test(.timeLimit(.minutes(10)))
func countingRecoversAKnownPoissonRate() throws {
    let dir = Fixtures.tempDirectory("task-count")
    var rng = RNG(seed: 10)
    var rows: [[Double]] = []
    func poisson(_ lambda: Double) -> Double {
        let l = exp(-lambda)
        var k = 0.0, p = 1.0
        repeat { k += 1; p *= rng.uniformDouble() } while p > l
        return k - 1
    }
    var oracle = 0.0
    for _ in 0..<1200 {
        let a = Double(rng.normal()), b = Double(rng.normal())
        let rate = exp(0.8 * a - 0.5 * b + 0.5)
        let y = poisson(rate)
        rows.append([a, b, y])
        oracle += 2 * ((y > 0 ? y * log(y / rate) : 0) - (y - rate))
    }
    oracle /= 1200
    try writeCSV("\(dir)/c.csv", header: "a,b,n", rows)
    for rate in ["exp", "softplus"] {
        let job = try taskJob("count-\(rate)", task: ["type": "counting", "rate": .string(rate)], input: [2],
                              layers: rate == "exp" ? [["type": "linear", "out": 1]] : mlp2 + [["type": "linear", "out": 1]],
                              data: ["train": .string("\(dir)/c.csv"), "test_fraction": 0.25, "csv": ["targets": "n"]], epochs: 15, lr: 0.02)
        let (ev, _) = try trained(job)
        let mean = rows.map { $0[2] }.reduce(0, +) / Double(rows.count)
        let constant = rows.map { r in 2 * ((r[2] > 0 ? r[2] * log(r[2] / mean) : 0) - (r[2] - mean)) }.reduce(0, +) / Double(rows.count)
        // Far below a constant rate's deviance, and near the true rate's.
        #expect((ev["deviance"] ?? 9) < 0.6 * constant && (ev["deviance"] ?? 9) < oracle * 1.25,
                "\(rate): \(ev.line); constant \(constant), true rate \(oracle)")
        if rate == "exp" { try checkDataParallel(job) }
    }
}

@Test(.timeLimit(.minutes(10)))
func languageModelBeatsTheUnigramEntropy() throws {
    let dir = Fixtures.tempDirectory("task-lm")
    // Each character is followed by one of two: a bigram model predicts 1 bit per character,
    // far below the unigram entropy of the 8 symbols (3 bits).
    var rng = RNG(seed: 11)
    let alphabet = Array("abcdefgh")
    var text = ""
    var c = 0
    for _ in 0..<6000 {
        text.append(alphabet[c])
        c = (c + 1 + rng.below(2) * 3) % 8
    }
    try FileIO.writeAtomically("\(dir)/corpus.txt", bytes: Array(text.utf8))
    let job = try taskJob("lm", task: "language_model", input: [16],
                          layers: [["type": "embedding", "vocab": 8, "dim": 16], ["type": "linear", "out": 8]],
                          data: ["train": .string("\(dir)/corpus.txt"), "validation_fraction": 0.1,
                                 "text": ["tokenizer": "char", "cache_dir": .string(dir)]], epochs: 8, batch: 16, lr: 0.05)
    let (ev, t) = try trained(job)
    #expect(t.data.info.tokenizer?.symbols == alphabet.map { String($0) })
    #expect((ev["bpb"] ?? 9) < 1.1 && abs((ev["ppl"] ?? 0) - exp(ev.loss)) < 1e-9, "\(ev.line)")
    try checkDataParallel(job)
    // An embedding smaller than the vocabulary is refused.
    var small = job
    small.model.layers[0] = ["type": "embedding", "vocab": 4, "dim": 16]
    do { _ = try trained(small); Issue.record("expected a vocabulary error") } catch {
        #expect("\(error)".contains("the embedding has 4 rows but"), "\(error)")
    }
}

/// A GPT-style decoder (learned positions, two causal pre-LN layers, tied head) on the same
/// corpus: far below the unigram entropy, and data-parallel step for step.
@Test(.timeLimit(.minutes(10)))
func gptStyleDecoderTrainsDataParallel() throws {
    let dir = Fixtures.tempDirectory("task-gpt")
    var rng = RNG(seed: 11)
    let alphabet = Array("abcdefgh")
    var text = ""
    var c = 0
    for _ in 0..<6000 {
        text.append(alphabet[c])
        c = (c + 1 + rng.below(2) * 3) % 8
    }
    try FileIO.writeAtomically("\(dir)/corpus.txt", bytes: Array(text.utf8))
    let job = try taskJob("gpt", task: "language_model", input: [16],
                          layers: [["type": "embedding", "vocab": 8, "dim": 16], ["type": "learned_positions"],
                                   ["type": "repeat", "times": 2, "layer": ["type": "transformer_encoder_layer", "heads": 2, "ffn": 32,
                                                                           "dropout": 0, "activation": "gelu", "norm_first": true,
                                                                           "causal": true]],
                                   "layernorm", ["type": "linear", "out": 8, "bias": false, "tie": 0]],
                          data: ["train": .string("\(dir)/corpus.txt"), "validation_fraction": 0.1,
                                 "text": ["tokenizer": "char", "cache_dir": .string(dir), "stride": 4]], epochs: 2, batch: 16, lr: 0.01)
    let (ev, _) = try trained(job)
    #expect((ev["bpb"] ?? 9) < 1.3, "\(ev.line)")
    try checkDataParallel(job)
}

@Test(.timeLimit(.minutes(10)))
func reconstructionLearnsALowRankCode() throws {
    let dir = Fixtures.tempDirectory("task-ae")
    var rng = RNG(seed: 12)
    var x: [Float] = []
    for _ in 0..<512 {
        let a = rng.normal(), b = rng.normal()
        x += (0..<8).map { j in a * Float(j % 3) - b * Float(j % 2) + 0.5 * a * b * 0 }
    }
    try writeNPY("\(dir)/x.npy", x, [512, 8])
    let job = try taskJob("ae", task: "reconstruction", input: [8],
                          layers: [["type": "linear", "out": 2], ["type": "linear", "out": 8]],
                          data: ["train": .string("\(dir)/x.npy"), "test_fraction": 0.25], epochs: 30, lr: 0.02)
    let (ev, _) = try trained(job)
    #expect(ev.loss < 0.02, "\(ev.line)")
    try checkDataParallel(job)
}

/// Task and loss combinations that make no sense, and targets that do not fit the model.
@Test func nonsenseCombinationsAreRefused() throws {
    func err(_ yaml: String) -> String {
        do { _ = try JobConfig(try YAML.parse(yaml, source: "job.yaml"), source: "job.yaml"); return "no error" } catch { return "\(error)" }
    }
    #expect(err("task: regression\ntrain: {loss: cross_entropy}") == "job.yaml: train.loss: the regression task takes mse or mae or huber, not cross_entropy")
    #expect(err("task: counting\ntrain: {loss: bce}").contains("the counting task takes poisson_nll, not bce"))
    #expect(err("task: regressoin").contains("did you mean \"regression\""))
    #expect(err("task: {type: bounded_regression, low: 3, high: 1}").contains("task.high: must be greater than low"))
    #expect(err("task: regression\ntrain: {label_smoothing: 0.1}").contains("label_smoothing: only applies to the cross_entropy loss"))
    #expect(err("task: regression\ndata: {augment: {mixup: 0.2}}").contains("MixUp and CutMix mix class labels"))
    // The loss implies the task when none is named.
    let implied = try JobConfig(try YAML.parse("train: {loss: poisson_nll}", source: "j"), source: "j")
    #expect(implied.task.kind == .counting)

    let dir = Fixtures.tempDirectory("task-fit")
    try writeCSV("\(dir)/r.csv", header: "a,b,y", [[1, 2, 3], [2, 3, 5], [3, 4, 7], [4, 5, 9]])
    let wrongWidth = try taskJob("fit", task: "regression", input: [2], layers: [["type": "linear", "out": 3]],
                                 data: ["train": .string("\(dir)/r.csv"), "csv": ["targets": "y"]], batch: 2)
    do { _ = try trained(wrongWidth); Issue.record("expected a shape error") } catch {
        #expect("\(error)" == "model output shape [3] does not fit the regression task on \(dir)/r.csv: it needs [1] (targets: values [1])")
    }
    let binaryOfThree = try taskJob("fit", task: "binary", input: [2], layers: [["type": "linear", "out": 1]],
                                    data: ["train": .string("\(dir)/r.csv"), "csv": ["targets": "y"]], batch: 2)
    do { _ = try trained(binaryOfThree); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("the binary task needs a target with two classes"), "\(error)")
    }
    let idsIntoLinear = try taskJob("fit", task: "language_model", input: [4], layers: [["type": "linear", "out": 8]],
                                    data: ["train": .string("\(dir)/r.csv"), "format": "text", "text": ["cache_dir": .string(dir)]], batch: 2)
    do { _ = try trained(idsIntoLinear); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("a model for ids starts with an embedding layer"), "\(error)")
    }
}

/// The tasks that put a function between the model and the loss (bounded regression's
/// low + (high − low)·σ, counting's softplus rate) give the right dL/dz: central differences.
@Test func outputFunctionGradientsAreExact() throws {
    func checkTask(_ task: TaskOptionsEdit, targets: [Float], _ name: String) throws {
        var job = JobConfig()
        job.task.kind = task.kind
        job.task.low = 2
        job.task.high = 5
        job.task.rate = task.rate
        job.train.loss = task.kind == .counting ? .poissonNLL : .mse
        let t = try #require(job.makeTask(DataInfo()) as? SupervisedTask)
        let b = Batch()
        b.prepare(3, input: FieldSpec(.values, shape: [2]), target: FieldSpec(.values, shape: [2]))
        for i in 0..<6 { b.y[i] = targets[i] }
        let z = GradCheck.input([3, 2], seed: 31, margin: 0)
        let g = Tensor.workspace()
        _ = t.lossValue(z, b, grad: g)
        let h: Float = 1e-2
        for i in 0..<6 {
            let saved = z[i]
            z[i] = saved + h; let lp = Double(t.lossValue(z, b, grad: nil))
            z[i] = saved - h; let lm = Double(t.lossValue(z, b, grad: nil))
            z[i] = saved
            let numeric = (lp - lm) / (2 * Double(h))
            #expect(abs(numeric - Double(g[i])) < 2e-3 * max(1, abs(numeric)), "\(name) element \(i): \(g[i]) vs \(numeric)")
        }
    }
    try checkTask(.init(kind: .boundedRegression), targets: [2.5, 4.9, 3, 3.3, 2.1, 4], "bounded")
    try checkTask(.init(kind: .counting, rate: .softplus), targets: [0, 1, 3, 2, 0, 5], "softplus counts")
    try checkTask(.init(kind: .counting, rate: .exp), targets: [0, 1, 3, 2, 0, 5], "exp counts")
}

struct TaskOptionsEdit {
    var kind: TaskKind
    var rate = JobConfig.TaskOptions.RateOutput.exp
}

@Test(.timeLimit(.minutes(10)))
func forecastingWindowsBeatPersistence() throws {
    // An oscillating AR(2) series: x_t = 1.6·x_{t−1} − 0.9·x_{t−2} + noise, beside a noise column.
    let dir = Fixtures.tempDirectory("task-forecast")
    var rng = RNG(seed: 13)
    var x: [Double] = [0, 1]
    for t in 2..<800 { x.append(1.6 * x[t - 1] - 0.9 * x[t - 2] + 0.3 * Double(rng.normal())) }
    try writeCSV("\(dir)/series.csv", header: "x,other", x.map { [$0, Double(rng.normal())] })
    let job = try taskJob("forecast", task: "regression", loss: "mse", input: [8, 2],
                          layers: [["type": "lstm", "hidden": 16, "output": "last"], ["type": "linear", "out": 2]],
                          data: ["train": .string("\(dir)/series.csv"), "test_fraction": 0.2, "normalize_targets": true,
                                 "window": ["length": 8, "horizon": 2], "csv": ["targets": "x"]], epochs: 30, lr: 0.01)
    let (ev, _) = try trained(job)
    // Persistence over the test period (rows 640…799, both horizons): x̂_{t+h} = x_{t−1}.
    var persist = 0.0, n = 0.0
    for t in 640..<799 { for h in 0..<2 { persist += (x[t + h] - x[t - 1]) * (x[t + h] - x[t - 1]); n += 1 } }
    persist /= n
    #expect((ev["mse"] ?? 99) < 0.6 * persist, "\(ev.line); persistence mse \(persist)")
    try checkDataParallel(job)
}

/// Sequence models' bad input: ids past the embedding, attention that sees the token it
/// predicts, a checkpoint of another vocabulary — each refused with what is wrong.
@Test func sequenceMistakesAreClearErrors() throws {
    let dir = Fixtures.tempDirectory("task-seq-errors")
    try writeNPY("\(dir)/ids.npy", (0..<40).map { Float($0 % 10) }, [10, 4])
    try writeNPY("\(dir)/y.npy", (0..<10).map { Float($0 % 2) }, [10])
    let pastVocab = try taskJob("ids", task: "classification", input: [4],
                                layers: [["type": "embedding", "vocab": 5, "dim": 4], "flatten", ["type": "linear", "out": 2]],
                                data: ["train": ["inputs": .string("\(dir)/ids.npy"), "targets": .string("\(dir)/y.npy")]], batch: 2)
    do { _ = try trained(pastVocab); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("the embedding has 5 rows but \(dir)/ids.npy holds ids up to 9"), "\(error)")
    }
    try FileIO.writeAtomically("\(dir)/a.txt", bytes: Array(String(repeating: "abcab ", count: 60).utf8))
    func lm(_ layer: ConfigValue, file: String = "a.txt", vocab: Int = 4) throws -> JobConfig {
        try taskJob("lm", task: "language_model", input: [8], layers: [["type": "embedding", "vocab": .int(vocab), "dim": 4], layer,
                                                                        ["type": "linear", "out": .int(vocab)]],
                    data: ["train": .string("\(dir)/\(file)"), "text": ["tokenizer": "char", "cache_dir": .string(dir)]], epochs: 1, batch: 4)
    }
    for (layer, why) in [(["type": "transformer_encoder_layer", "heads": 2, "ffn": 8] as ConfigValue, "model.layers[1].self_attn is attention without a causal mask"),
                         (["type": "gru", "hidden": 2, "bidirectional": true], "model.layers[1] is a bidirectional gru")] {
        do { _ = try trained(try lm(layer)); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("the language_model task predicts each token from the ones before it, but \(why)"), "\(error)")
        }
    }
    // Weights of a 4-character vocabulary refused by data of 5.
    let causal: ConfigValue = ["type": "attention", "heads": 2, "causal": true]
    let first = try lm(causal)
    let t = try Trainer(job: first, data: try JobData.load(first), log: { _ in })
    _ = try t.run()
    try t.saveCheckpoint(dir)
    let saved = try #require(Checkpoint.list(in: dir).last)
    try FileIO.writeAtomically("\(dir)/b.txt", bytes: Array(String(repeating: "abcdab ", count: 60).utf8))
    let other = try Trainer(job: try lm(causal, file: "b.txt", vocab: 5), data: try JobData.load(try lm(causal, file: "b.txt", vocab: 5)), log: { _ in })
    do { try other.initialize(fromWeights: saved); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("its vocabulary (char, 4 tokens) differs from this data's (char, 5 tokens)"), "\(error)")
    }
}

@Test(.timeLimit(.minutes(10)))
func encoderDecoderLearnsToReverseAndDecodesGreedily() throws {
    // Reverse five tokens (1…6): ids = source, start id 0, the reversed sequence shifted right.
    let dir = Fixtures.tempDirectory("task-seq2seq")
    var rng = RNG(seed: 14)
    var ids: [Float] = [], labels: [Float] = []
    for _ in 0..<1200 {
        let src = (0..<5).map { _ in Float(1 + rng.below(6)) }
        let tgt = Array(src.reversed())
        ids += src + [0] + tgt.dropLast()
        labels += tgt
    }
    try writeNPY("\(dir)/ids.npy", ids, [1200, 10])
    try writeNPY("\(dir)/labels.npy", labels, [1200, 5])
    let block: ConfigValue = ["heads": 2, "ffn": 32, "dropout": 0, "norm_first": true, "positions": "t5"]
    func with(_ type: String) -> ConfigValue {
        guard case .map(var e) = block else { return block }
        e.insert(ConfigEntry(key: "type", value: .string(type)), at: 0)
        return .map(e)
    }
    let job = try taskJob("rev", task: "seq2seq", input: [10],
                          layers: [["type": "encoder_decoder", "source": 5, "vocab": 7, "dim": 16,
                                    // Cross-attention has no position bias: absolute positions let a decoder
                                    // step find the source token it mirrors.
                                    "encoder": ["sinusoidal_positions", with("transformer_encoder_layer"), "layernorm"],
                                    "decoder": ["sinusoidal_positions", with("transformer_decoder_layer"), "layernorm"]],
                                   ["type": "linear", "out": 7, "bias": false, "tie": 0]],
                          data: ["train": ["inputs": .string("\(dir)/ids.npy"), "targets": .string("\(dir)/labels.npy")],
                                 "test_fraction": 0.1], epochs: 12, batch: 32, lr: 0.005)
    let (ev, _) = try trained(job)
    #expect((ev["exact_match"] ?? 0) > 0.9 && (ev["token_acc"] ?? 0) > 0.97, "\(ev.line)")
    try checkDataParallel(job)
}
