import Config
import Glibc
import Formats
import NN
import Optim
import TensorCore
import TestSupport
import Testing
import Train

/// A small job on synthetic data: 512 training samples, batch 32, 16 steps per epoch.
func smallJob(_ dir: String, epochs: Int = 3) throws -> (JobConfig, JobData) {
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 512, test: 128)
    var job = JobConfig()
    job.name = "small"
    job.data.path = dir
    job.model = ModelSpec(input: [1, 28, 28], layers: [.string("flatten"),
        .object(["type": .string("linear"), "out": .int(32)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(10)])])
    job.train.epochs = epochs
    job.train.batchSize = 32
    job.train.logEvery = 0
    job.optimizer.lr = 0.05
    job.checkpoint.dir = "\(dir)/ckpt"
    return (job, try JobData.load(job))
}

func quiet(_ job: JobConfig, _ data: JobData) throws -> Trainer { try Trainer(job: job, data: data, log: { _ in }) }

@Test func trainsSyntheticDataToHighAccuracy() throws {
    let dir = Fixtures.tempDirectory("train")
    let (job, data) = try smallJob(dir)
    let t = try quiet(job, data)
    let s = try t.run()
    #expect(s.state == TrainState(epoch: 3, stepInEpoch: 0, globalStep: 48))
    #expect(s.lastEvaluation!.accuracy > 0.9)
}

@Test func resumedRunMatchesUninterruptedRunStepForStep() throws {
    let dir = Fixtures.tempDirectory("resume")
    let (job, data) = try smallJob(dir)
    var full: [Float] = []
    let a = try quiet(job, data)
    a.onStep = { _, l in full.append(l) }
    _ = try a.run()

    // Interrupt mid-epoch (step 21 of 48: epoch 2, step 5), checkpoint, resume in a new trainer.
    let b = try quiet(job, data)
    b.stopAtStep = 21
    let stopped = try b.run()
    #expect(stopped.stopped && stopped.state == TrainState(epoch: 1, stepInEpoch: 5, globalStep: 21))
    try b.saveCheckpoint("\(dir)/ckpt")
    let path = "\(dir)/ckpt/\(Checkpoint.fileName(step: 21))"

    let c = try quiet(job, data)
    try c.restore(try Checkpoint.load(path))
    var resumed: [Float] = []
    c.onStep = { _, l in resumed.append(l) }
    _ = try c.run()
    #expect(resumed.count == 27)
    #expect(resumed == Array(full[21...]))          // bit-identical
    #expect(c.model.values.checksum() == a.model.values.checksum())
}

@Test func checkpointLayoutMatchesTorchStateDict() throws {
    let dir = Fixtures.tempDirectory("ckpt")
    let (job, data) = try smallJob(dir, epochs: 1)
    let t = try quiet(job, data)
    _ = try t.run(checkpointDir: "\(dir)/ck")
    let files = Checkpoint.list(in: "\(dir)/ck")
    #expect(files == ["\(dir)/ck/step-00000016.safetensors"])
    let f = try SafeTensors.read(path: files[0])
    #expect(Set(f.tensors.map(\.name)) == ["1.weight", "1.bias", "3.weight", "3.bias",
        "optimizer.momentum_buffer.1.weight", "optimizer.momentum_buffer.1.bias",
        "optimizer.momentum_buffer.3.weight", "optimizer.momentum_buffer.3.bias"])
    #expect(f.tensor("1.weight")!.shape == [32, 784])
    #expect(f.metadata["format"] == Checkpoint.format && f.metadata["global_step"] == "16")
    let c = try Checkpoint.load(files[0])
    #expect(c.job == job && c.state == TrainState(epoch: 1, stepInEpoch: 0, globalStep: 16))
}

/// Retention counts only the run's own files: a shorter second run in the same directory keeps
/// its newest checkpoints and deletes nothing of the longer first run's.
@Test func keepsOnlyTheNewestCheckpointsOfThisRun() throws {
    let dir = Fixtures.tempDirectory("keep")
    var (job, data) = try smallJob(dir, epochs: 2)
    job.checkpoint.everySteps = 4
    job.checkpoint.keep = 2
    let long = try quiet(job, data)
    _ = try long.run(checkpointDir: "\(dir)/ck")
    #expect(FileIO.list("\(dir)/ck") == ["step-00000028.safetensors", "step-00000032.safetensors"])
    #expect(long.writtenCheckpoints == ["\(dir)/ck/step-00000028.safetensors", "\(dir)/ck/step-00000032.safetensors"])
    job.train.epochs = 1
    var printed: [String] = []
    let short = try Trainer(job: job, data: data, log: { printed.append($0) })
    _ = try short.run(checkpointDir: "\(dir)/ck")
    #expect(FileIO.list("\(dir)/ck") == ["step-00000012.safetensors", "step-00000016.safetensors",
                                         "step-00000028.safetensors", "step-00000032.safetensors"])
    // Every path the run printed last is still there.
    let kept = printed.filter { $0.hasPrefix("checkpoint ") }.suffix(2).map { String($0.dropFirst("checkpoint ".count)) }
    #expect(kept == short.writtenCheckpoints && kept.allSatisfy { FileIO.exists($0) })
}

@Test func initFromLoadsWeightsOnly() throws {
    let dir = Fixtures.tempDirectory("init")
    let (job, data) = try smallJob(dir, epochs: 1)
    let a = try quiet(job, data)
    _ = try a.run(checkpointDir: "\(dir)/ck")
    let b = try quiet(job, data)
    try b.initialize(fromWeights: Checkpoint.list(in: "\(dir)/ck")[0])
    #expect(b.model.values.checksum() == a.model.values.checksum())
    #expect(b.state == TrainState())
    #expect(b.optimizer.stepCount == 0)
}

func restoreError(_ job: JobConfig, _ data: JobData, _ bytes: [UInt8], _ dir: String) -> String {
    let path = "\(dir)/broken.safetensors"
    do {
        try FileIO.writeAtomically(path, bytes: bytes)
        let t = try quiet(job, data)
        try t.restore(try Checkpoint.load(path))
        return "no error"
    } catch { return "\(error)" }
}

@Test func brokenCheckpointsAreClearErrors() throws {
    let dir = Fixtures.tempDirectory("badck")
    let (job, data) = try smallJob(dir, epochs: 1)
    let t = try quiet(job, data)
    _ = try t.run(checkpointDir: "\(dir)/ck")
    let path = Checkpoint.list(in: "\(dir)/ck")[0]
    let good = try FileIO.read(path)
    let file = try SafeTensors.read(path: path)
    let broken = "\(dir)/broken.safetensors"

    #expect(restoreError(job, data, Array(good.prefix(good.count - 100)), dir).contains("\(broken): not a valid safetensors file: tensor \"optimizer.momentum_buffer.1.weight\": data_offsets"))
    #expect(restoreError(job, data, Array(good.prefix(200)), dir).contains("runs past the end of the file"))

    // Rewrite with tensors that do not fit the model.
    func rewrite(_ edit: (inout [(String, [Int], [Float])], inout [String: String]) -> Void) -> [UInt8] {
        var ts = file.tensors.map { ($0.name, $0.shape, $0.floats()) }
        var meta = file.metadata
        edit(&ts, &meta)
        var w = SafeTensors.Writer()
        for (n, s, v) in ts { v.withUnsafeBufferPointer { w.add(n, shape: s, floats: $0.baseAddress!) } }
        w.metadata = meta
        return w.bytes()
    }
    let wrongShape = rewrite { ts, _ in
        let i = ts.firstIndex { $0.0 == "3.weight" }!
        ts[i] = ("3.weight", [10, 16], [Float](repeating: 0, count: 160))
    }
    #expect(restoreError(job, data, wrongShape, dir).contains("\(broken): tensor 3.weight has shape [10, 16], the model expects [10, 32]"))
    let missing = rewrite { ts, _ in ts.removeAll { $0.0 == "1.bias" } }
    #expect(restoreError(job, data, missing, dir).contains("missing tensors for model parameters: 1.bias"))
    let extra = rewrite { ts, _ in ts.append(("7.weight", [1], [0])) }
    #expect(restoreError(job, data, extra, dir).contains("tensors the model does not have: 7.weight"))
    let noFormat = rewrite { _, m in m["format"] = nil }
    #expect(restoreError(job, data, noFormat, dir).contains("not a RingTrain checkpoint"))
    let badStep = rewrite { _, m in m["global_step"] = "-4" }
    #expect(restoreError(job, data, badStep, dir).contains("\"global_step\" missing or not a non-negative integer"))
    let badJob = rewrite { _, m in m["job"] = "{\"train\": {\"epochs\": \"x\"}}" }
    #expect(restoreError(job, data, badJob, dir).contains("(metadata job): train.epochs: expected an integer"))

    // Wrong dtype: the same bytes declared as I32.
    var w = SafeTensors.Writer()
    for e in file.tensors {
        w.add(e.name, dtype: e.name == "1.bias" ? .I32 : .F32, shape: e.shape, bytes: Array(e.bytes))
    }
    w.metadata = file.metadata
    #expect(restoreError(job, data, w.bytes(), dir).contains("tensor 1.bias has dtype I32, expected F32"))
}

@Test func modelThatDoesNotFitTheDataIsAnError() throws {
    let dir = Fixtures.tempDirectory("fit")
    var (job, data) = try smallJob(dir, epochs: 1)
    job.model = ModelSpec(input: [1, 28, 28], layers: [.string("flatten"), .object(["type": .string("linear"), "out": .int(7)])])
    do { _ = try quiet(job, data); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("model output shape [7] does not fit the classification task on fashion-mnist/train: it needs [10]"), "\(error)")
    }
    job.model = ModelSpec(input: [784], layers: [.object(["type": .string("linear"), "out": .int(10)])])
    do { _ = try quiet(job, data); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("model input shape [784] does not match the samples of fashion-mnist/train, [1, 28, 28]"), "\(error)")
    }
}

@Test func nonFiniteLossStopsOrSkipsAsConfigured() throws {
    let dir = Fixtures.tempDirectory("nan")
    var (job, data) = try smallJob(dir, epochs: 1)
    job.optimizer.lr = 1e6          // diverges within a few steps
    job.optimizer.momentum = 0
    job.schedule.type = .constant
    do { _ = try quiet(job, data).run(); Issue.record("expected divergence to stop training") } catch {
        #expect("\(error)".contains("at epoch 1, step"), "\(error)")
        #expect("\(error)".contains("train.on_nan: skip"), "\(error)")
    }
    job.train.onNaN = .skip
    var lines: [String] = []
    let t = try Trainer(job: job, data: data, log: { lines.append($0) })
    do {
        _ = try t.run()
        Issue.record("lr 1e6 cannot recover; the run should stop after 10 skipped steps in a row")
    } catch {
        // Skipping cannot rescue weights that are already infinite: after 10 skips in a row it stops.
        #expect("\(error)".contains("10 steps in a row"), "\(error)")
    }
    #expect(t.skippedSteps >= 1)
    #expect(lines.contains { $0.contains("update skipped") })
}

/// AdamW with warmup + cosine and norm clipping trains, and each part does what it says: the
/// lr follows the warmup ramp and the cosine, every update is clipped to norm 1 (and some needed
/// it), and the optimizer stepped at the scheduled lr.
@Test func adamWithCosineWarmupAndClippingTrains() throws {
    let dir = Fixtures.tempDirectory("adam")
    var (job, data) = try smallJob(dir, epochs: 3)
    job.optimizer = try JobConfig(.object(["optimizer": .object(["type": "adamw", "lr": 0.003])]), source: "t").optimizer
    job.schedule.type = .warmupCosine
    job.schedule.warmupEpochs = 1
    job.train.clipGradNorm = 1
    job.data.augment.cropPadding = 2
    let t = try quiet(job, data)
    #expect(t.optimizer is Adam)
    var lrs: [Float] = [], before: [Float] = [], after: [Double] = []
    t.onStep = { _, _ in
        lrs.append(t.runner.lr)
        #expect(t.optimizer.lr == t.runner.lr)
        before.append(t.runner.lastGradientNorm ?? -1)
        // The update used the clipped gradients, which are still in the arena after the step.
        after.append(t.model.grads.buffer.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot())
    }
    let s = try t.run()
    #expect(s.lastEvaluation!.accuracy > 0.9)
    // 16 steps per epoch: warmup over the first 16 (lr·(i+1)/16), then cosine over the other 32,
    // of the lr the linear scaling rule gives for batch 32 (base 128): 0.003 · 32/128.
    let top = 0.003 * 32 / 128
    #expect(lrs.count == 48 && abs(t.scaledLR - top) < 1e-12)
    for i in 0..<16 { #expect(abs(Double(lrs[i]) - top * Double(i + 1) / 16) < 1e-8, "warmup step \(i): \(lrs[i])") }
    for i in 16..<48 {
        let expected = top * 0.5 * (1 + cos(Double.pi * Double(i - 16) / 32))
        #expect(abs(Double(lrs[i]) - expected) < 1e-8, "cosine step \(i): \(lrs[i]) vs \(expected)")
    }
    #expect(after.allSatisfy { $0 <= 1 + 1e-4 }, "\(after.max()!)")
    #expect(before.filter { $0 > 1 }.count >= 5, "clipping never had anything to clip: \(before)")
}

/// Label smoothing changes the objective itself: with ε = 0.1 over 10 classes the training loss
/// cannot fall below the smoothed target's entropy (0.50 nats); without it the same model goes far below.
@Test func labelSmoothingChangesTheLoss() throws {
    let dir = Fixtures.tempDirectory("smooth")
    var (job, data) = try smallJob(dir, epochs: 4)
    job.schedule.type = .constant
    func lastEpochLoss(_ eps: Double) throws -> Double {
        var j = job
        j.train.labelSmoothing = eps
        let t = try quiet(j, data)
        var losses: [Float] = []
        t.onStep = { _, l in losses.append(l) }
        _ = try t.run()
        return losses.suffix(16).reduce(0) { $0 + Double($1) } / 16
    }
    let eps = 0.1, c = 10.0
    let high = 1 - eps + eps / c, low = eps / c
    let floor = -(high * log(high) + (c - 1) * low * log(low))
    let plain = try lastEpochLoss(0), smoothed = try lastEpochLoss(eps)
    #expect(plain < 0.3 && smoothed > floor && smoothed - plain > 0.3, "plain \(plain), smoothed \(smoothed), floor \(floor)")
}

/// Every layer family, activation, loss and optimizer in a model that trains — on data a linear
/// map of the pixels cannot separate (grating orientations at random phases), so a broken
/// convolution, normalisation or activation backward fails: the linear control stays near chance.
@Test(.timeLimit(.minutes(10)))
func everyFamilyTrains() throws {
    let dir = Fixtures.tempDirectory("families")
    try Fixtures.writeGratingOrientations(dir, train: 512, test: 256)
    var (job, _) = try smallJob(Fixtures.tempDirectory("families-unused"), epochs: 10)
    job.data.path = dir
    let data = try JobData.load(job)
    job.schedule.type = .constant
    job.train.batchSize = 32
    func accuracy(_ layers: [ConfigValue], loss: String = "cross_entropy", optimizer: String = "adam", lr: Double? = nil) throws -> Double {
        var j = job
        j.model = ModelSpec(input: [1, 28, 28], layers: layers)
        j.train.loss = LossKind(rawValue: loss)!
        j.optimizer = try JobConfig(.object(["optimizer": .object(["type": .string(optimizer)])]), source: "t").optimizer
        j.optimizer.lr = lr ?? (optimizer == "sgd" ? 0.05 : optimizer == "adagrad" ? 0.05 : 0.01)
        return try quiet(j, data).run().lastEvaluation!.accuracy
    }
    let linear = try accuracy(["flatten", .object(["type": "linear", "out": 10])])
    #expect(linear < 0.45, "a linear model separates the gratings (\(linear)): the data does not test the layers")
    let conv: ConfigValue = .object(["type": "conv2d", "out": 8, "kernel": 3, "stride": 2, "padding": 1])
    // Max pooling before the average makes the feature an energy even after odd activations (tanh).
    let head: [ConfigValue] = ["maxpool", "global_avgpool", .object(["type": "linear", "out": 10])]
    let variants: [(String, [ConfigValue], String, String)] = [
        ("batchnorm + relu", [conv, "batchnorm", "relu"] + head, "cross_entropy", "sgd"),
        ("groupnorm + gelu", [conv, .object(["type": "groupnorm", "groups": 2]), "gelu"] + head, "cross_entropy", "adam"),
        // Instance norm of the conv's maps would erase the energy that tells the classes apart: it
        // normalises each image's contrast first here.
        ("instancenorm + silu", [.object(["type": "instancenorm", "affine": true]), conv, "silu"] + head, "cross_entropy", "adam"),
        ("layernorm + elu", [conv, .object(["type": "layernorm", "normalized_shape": [8, 14, 14]]), "elu"] + head, "cross_entropy", "adamw"),
        ("prelu + dropout", [conv, .object(["type": "prelu", "per_channel": true]), "maxpool", "global_avgpool",
                             .object(["type": "dropout", "p": 0.1]), .object(["type": "linear", "out": 10])], "cross_entropy", "rmsprop"),
        ("leaky relu, bce", [conv, "leaky_relu"] + head, "bce", "adam"),
        ("softplus, 3×3 max pooling", [conv, "softplus", .object(["type": "maxpool", "kernel": 3, "stride": 1, "padding": 1])] + head,
         "cross_entropy", "adam"),
        ("tanh, hinge (linear SVM head)", [conv, "tanh"] + head, "hinge", "rmsprop"),
        ("relu6, avgpool, perceptron", [conv, "relu6", .object(["type": "avgpool", "kernel": 3, "stride": 1, "padding": 1])] + head,
         "perceptron", "adam"),
        ("swish, mse", [conv, .object(["type": "swish", "beta": 1.5])] + head, "mse", "adagrad"),
    ]
    for (name, layers, loss, opt) in variants {
        // BCE spreads each label over ten sigmoids, each with a small gradient: a larger step.
        let acc = try accuracy(layers, loss: loss, optimizer: opt, lr: loss == "bce" ? 0.03 : nil)
        #expect(acc > 0.9, "\(name): accuracy \(acc) (linear control \(linear))")
    }
}
