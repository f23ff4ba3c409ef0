import Comm
import Config
import Datasets
import Formats
import Glibc
import NN
import Optim
import TensorCore

/// Errors a training run stops with.
public struct TrainError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The training loop shared by every mode. With a `LocalCommunicator` it is the single-node
/// fallback; with a ring communicator each rank trains on its shard, gradients are averaged in
/// buckets while backward runs, and every rank takes the identical optimizer step. What one
/// step does is the task's (`Task.step`): the trainer brings the data, the schedule, the
/// replicas, evaluation and checkpoints.
public final class Trainer {
    public let job: JobConfig
    public let replicas: [Replica]
    public let task: Task
    public let data: JobData
    public let comm: Communicator
    public let sampler: DistributedSampler
    public let runner: StepRunner
    public private(set) var state = TrainState()
    /// Generators that advance during training, saved in checkpoints (more join as layers need them).
    public var rngs: [String: RNG]

    /// The first (for most jobs, the only) model.
    public var model: Model { replicas[0].model }
    public var optimizer: Optimizer { replicas[0].optimizer }

    /// Progress lines (only rank 0 prints by default).
    public var log: (String) -> Void
    /// Called after every optimizer step with the state after it and the step's loss (the
    /// mean over all ranks).
    public var onStep: ((TrainState, Float) -> Void)?
    /// Called after each epoch's evaluation (on every rank, with the same values; nil when the
    /// data has neither a validation nor a test split).
    public var onEpoch: ((TrainState, Evaluation?, Double) -> Void)?
    /// Stop (as if interrupted) once this many global steps have been taken.
    public var stopAtStep: Int?
    /// Called before every step; what it throws ends the run there (an elastic job's pause,
    /// which a world of one, with no ring to cancel, would not otherwise see).
    public var beforeStep: (() throws -> Void)?
    /// rank 0's random streams as they were after the last completed step: a step cut short
    /// has already drawn from them, and `snapshot()` must be the state between two steps.
    private var boundaryRNG: (dropout: RNG, task: RNG)?
    /// The run directory's writer of log, metrics and TensorBoard events (see `attach`).
    public private(set) var recorder: RunRecorder?
    /// This rank's timing of the last epoch: seconds, steps and the all-reduce's time per step
    /// with the share of it hidden behind backward (nil in one process).
    public private(set) var lastEpochTiming: EpochTiming?
    public struct EpochTiming: Sendable {
        public var seconds: Double
        public var steps: Int
        public var allreduceSeconds: Double?
        public var hiddenShare: Double?
        public var msPerStep: Double { steps > 0 ? seconds * 1000 / Double(steps) : 0 }
    }
    /// The live bar on a terminal: it replaces the periodic step lines (which still reach the
    /// run's log file); `log` should then print above it (`ProgressBar.printAbove`).
    public var progress: ProgressBar?

    /// ReduceLROnPlateau state (schedule `plateau`), stepped with each epoch's evaluation loss.
    public private(set) var plateau: ReduceOnPlateau?
    /// Steps whose update was dropped because the loss was not finite (`train.on_nan: skip`).
    public var skippedSteps: Int { runner.skippedSteps }
    /// Checkpoints this run wrote, oldest first: the only ones retention may delete.
    public private(set) var writtenCheckpoints: [String] = []
    private var madeCheckpointDirectory = false
    private let evalBatch = Batch()

    /// `task` replaces the job's own (a task the caller defines, e.g. with a step of its own).
    public init(job: JobConfig, data: JobData, comm: Communicator = LocalCommunicator(), task: Task? = nil,
                log: ((String) -> Void)? = nil) throws {
        self.job = job
        self.data = data
        self.comm = comm
        let rank = comm.rank
        // Only rank 0 reports progress; warnings keep their level (they pass --quiet).
        let log = log ?? { line in
            guard rank == 0 else { return }
            line.hasPrefix("warning:") ? RunLog.warning(line, rank: rank) : RunLog.info(line, rank: rank)
        }
        self.log = log
        // Gradients live in the communicator's buffer: ranks on one host all-reduce it in place.
        let several = job.namedModels.count > 1
        replicas = try job.namedModels.map { m in
            let model = try Model(spec: m.spec, source: several ? "job models.\(m.name)" : "job model",
                                  gradientStorage: comm.worldSize > 1 ? { try comm.allocateBuffer(count: $0) } : nil)
            let reducer = comm.worldSize > 1 ? GradientReducer(model: model, comm: comm, bucketBytes: job.comm.bucketBytes) : nil
            return Replica(name: m.name, model: model, optimizer: job.makeOptimizer(params: model.values, grads: model.grads),
                           reducer: reducer, prefix: several ? m.name + "." : "")
        }
        if !job.data.augment.isIdentity {
            guard data.train.input.shape.count == 3, !data.train.input.isInteger else {
                throw TrainError("data.augment works on images [channels, height, width]; \(data.train.name) holds \(data.train.input)")
            }
        }
        plateau = job.schedule.type == .plateau
            ? ReduceOnPlateau(factor: job.schedule.gamma, patience: job.schedule.patience, threshold: job.schedule.threshold,
                              minFactor: job.schedule.minFactor)
            : nil
        sampler = DistributedSampler(count: data.train.count, batchSize: job.train.batchSize,
                                     world: comm.worldSize, rank: comm.rank, seed: UInt64(job.seed),
                                     accumulation: job.train.accumulationSteps)
        guard sampler.stepsPerEpoch > 0 else {
            throw TrainError("global batch \(sampler.globalBatch) is larger than the \(data.train.count) training samples")
        }
        rngs = [:]
        runner = StepRunner(replicas: replicas, job: job, random: RNG(seed: UInt64(job.seed), stream: "task", UInt64(comm.rank)),
                            log: log)
        self.task = task ?? job.makeTask(data.info)
        try self.task.check(runner, data: data)
        for (i, r) in replicas.enumerated() {
            r.model.initialize(seed: UInt64(job.seed), stream: i == 0 ? "init" : "init.\(r.name)")
            r.model.random.rng = RNG(seed: UInt64(job.seed), stream: i == 0 ? "dropout" : "dropout.\(r.name)", UInt64(comm.rank))
            if job.train.syncBatchNorm && comm.worldSize > 1 {
                // A failed collective leaves garbage here, but the same communicator then fails the
                // step's gradient all-reduce, which ends the step with its error.
                for case let bn as BatchNorm in r.model.allLayers { bn.synchronize = { try? comm.allReduceSum($0) } }
            }
            // Every replica starts from rank 0's parameters.
            try comm.broadcast(r.model.values.buffer, root: 0)
        }
        runner.describeStep = { [unowned self] in "epoch \(state.epoch + 1), step \(state.globalStep + 1)" }
        runner.warmupHint = needsWarmupHint ? warmupHint : nil
        runner.log = { [unowned self] in self.log($0) }
        try checkParameterPatterns()
        applyParameterGroups(epoch: 0)
        if data.validation == nil, let key = job.checkpoint.best != nil ? "checkpoint.best" : job.train.earlyStopping != nil ? "train.early_stopping" : nil {
            throw TrainError("\(key) follows a validation metric, but the data has no validation split (set data.validation_fraction or data.validation)")
        }
    }

    /// Records this run into a run directory: every log line, and the metrics of each step,
    /// epoch and the final test.
    public func attach(_ r: RunRecorder) {
        recorder = r
        let print = log
        log = { print($0); r.log($0) }
    }

    public var stepsPerEpoch: Int { sampler.stepsPerEpoch }
    /// Steps the run takes: every epoch, or `train.max_steps` when set.
    public var totalSteps: Int { job.train.maxSteps > 0 ? job.train.maxSteps : stepsPerEpoch * job.train.epochs }

    /// Whether the run has nothing left to train (a resume from its last checkpoint).
    public var isFinished: Bool { state.globalStep >= totalSteps || stoppedEarly }

    /// checkpoint.best's metric so far, and early stopping's.
    public private(set) var bestTrack = MetricTrack()
    public private(set) var stopTrack = MetricTrack()

    /// Early stopping ended the run: its metric has not improved for `patience` epochs.
    public var stoppedEarly: Bool { job.train.earlyStopping.map { stopTrack.sinceBest >= $0.patience } ?? false }

    // MARK: learning rate

    /// The learning rate after the linear scaling rule (Goyal et al.): base × global / base batch.
    public var scaledLR: Double {
        job.scaling.rule == .linear
            ? job.optimizer.lr * Double(sampler.globalBatch) / Double(job.scaling.baseBatch)
            : job.optimizer.lr
    }

    public var warmupSteps: Int {
        job.scaling.warmupSteps > 0 ? job.scaling.warmupSteps
            : Int((job.scaling.warmupEpochs * Double(stepsPerEpoch)).rounded())
    }

    public var schedule: LRSchedule {
        let after = max(totalSteps - warmupSteps, 1)
        switch job.schedule.type {
        case .cosine: return .cosine(totalSteps: after, minFactor: job.schedule.minFactor)
        case .step: return .step(everySteps: job.schedule.stepEpochs * stepsPerEpoch, gamma: job.schedule.gamma)
        case .warmupCosine:
            return .warmupCosine(warmup: Int((job.schedule.warmupEpochs * Double(stepsPerEpoch)).rounded()),
                                 totalSteps: after, minFactor: job.schedule.minFactor)
        case .constant, .plateau: return .constant
        }
    }

    /// lr for the step after `step` steps: linear warmup from the base lr to the scaled lr,
    /// then the schedule applied to the scaled lr.
    public func learningRate(step: Int) -> Double {
        let w = warmupSteps
        if step < w {
            let base = job.optimizer.lr
            return base + (scaledLR - base) * Double(step) / Double(w)
        }
        return scaledLR * schedule.factor(step: step - w) * (plateau?.scale ?? 1)
    }

    /// One line saying which lr rule applies, for the start of a run.
    public var lrDescription: String {
        var s = job.scaling.rule == .linear
            ? "lr \(job.optimizer.lr) × \(sampler.globalBatch)/\(job.scaling.baseBatch) = \(fmt(scaledLR, 5)) (linear scaling rule)"
            : "lr \(job.optimizer.lr) (scaling rule off)"
        if warmupSteps > 0 { s += ", warmup \(warmupSteps) steps from \(job.optimizer.lr)" }
        s += ", \(job.schedule.type.rawValue) schedule"
        if needsWarmupHint { s += "\nnote: \(warmupHint)" }
        return s
    }

    /// The lr is scaled up by more than 2× with no warmup: large factors often diverge or
    /// stall in the first steps (the Fashion-MNIST MLP at ×8 ends at chance).
    var needsWarmupHint: Bool { scaledLR > 2 * job.optimizer.lr && warmupSteps == 0 }

    var warmupHint: String {
        "the linear scaling rule multiplies lr by \(fmt(scaledLR / job.optimizer.lr, 1)) with no warmup; "
            + "set scaling.warmup_epochs (Goyal et al. warm up for 5 epochs) or lower the factor (scaling.base_batch)"
    }

    // MARK: resuming

    /// Continues from a checkpoint: parameters, optimizer state, progress and RNG states.
    public func restore(_ c: Checkpoint.Contents) throws {
        guard c.job.namedModels == job.namedModels else {
            throw FileError(c.path, "checkpoint holds a different model than the job")
        }
        try checkData(c)
        for r in replicas {
            try Checkpoint.loadParameters(into: r.model, from: c.file, source: c.path, prefix: r.prefix)
            try Checkpoint.loadOptimizer(r.optimizer, steps: c.optimizerSteps[r.name] ?? 0, from: c.file, source: c.path,
                                         prefix: r.prefix)
        }
        for (k, v) in c.rngs { rngs[k] = v }
        if let s = c.selection {
            if let b = s["best"] { bestTrack = MetricTrack(b) }
            if let e = s["early_stopping"] { stopTrack = MetricTrack(e) }
        }
        if let r = c.rngs["dropout.\(comm.rank)"] { model.random.rng = r }
        if let r = c.rngs["task.\(comm.rank)"] { runner.random = r }
        // A checkpoint taken with another world size (or batch) resumes at the same sample position.
        let oldBatch = c.job.train.batchSize * c.job.train.accumulationSteps * c.worldSize
        let samplesSeen = c.state.stepInEpoch * oldBatch
        state = TrainState(epoch: c.state.epoch, stepInEpoch: samplesSeen / sampler.globalBatch,
                           globalStep: c.state.globalStep)
        if state.stepInEpoch >= stepsPerEpoch { state = TrainState(epoch: state.epoch + 1, globalStep: state.globalStep) }
        // Another global batch: count the steps this run would have taken to see the same
        // samples, so the schedule and warmup (functions of the step over this run's total)
        // go on from where they were, not from where the old step count lands on the new scale.
        if oldBatch != sampler.globalBatch {
            let before = c.state.globalStep
            state.globalStep = state.epoch * stepsPerEpoch + state.stepInEpoch
            log("global batch \(oldBatch) (\(c.worldSize) worker\(c.worldSize == 1 ? "" : "s")) in \(c.path), this run's is \(sampler.globalBatch): "
                + "step \(before) is step \(state.globalStep) of \(totalSteps) here (the same samples seen); "
                + "lr now \(fmt(learningRate(step: state.globalStep), 5)) (\(lrDescription.split(separator: "\n")[0]))")
        }
        for r in replicas { try comm.broadcast(r.model.values.buffer, root: 0) }
    }

    /// A checkpoint's data description must match this run's (vocabulary, classes, shapes).
    func checkData(_ c: Checkpoint.Contents) throws {
        guard let d = c.data else { return }
        if let t = d.tokenizer, let mine = data.info.tokenizer, t != mine {
            throw FileError(c.path, "checkpoint was trained with a \(t.kind.rawValue) vocabulary of \(t.size) tokens; this data's has \(mine.size)"
                            + (t.size == mine.size ? " different ones" : ""))
        }
        if let a = d.target, let b = data.info.target, a != b {
            throw FileError(c.path, "checkpoint was trained on targets \(a); this data has \(b)")
        }
        if let a = d.input, let b = data.info.input, a.shape != b.shape || a.kind != b.kind {
            throw FileError(c.path, "checkpoint was trained on inputs \(a); this data has \(b)")
        }
        if let a = d.classNames, let b = data.info.classNames, a != b {
            throw FileError(c.path, "checkpoint was trained on the classes \(a.joined(separator: ", ")); this data has \(b.joined(separator: ", "))")
        }
    }

    /// Loads weights only (a fresh run from pretrained or exported parameters). `partial`: only
    /// the tensors whose names and shapes match (fine-tuning with a new head); the rest of the
    /// model keeps its initialisation and is reported.
    @discardableResult
    public func initialize(fromWeights path: String, partial: Bool = false) throws -> (fresh: [String], unused: [String]) {
        let file = try SafeTensors.read(path: path)
        // Weights trained on another vocabulary would read every id as a different token.
        if let meta = file.metadata["data"], let ours = data.info.tokenizer,
           let theirs = try? DataInfo(try JSON.parse(meta), source: path).tokenizer, theirs != ours {
            throw FileError(path, "its vocabulary (\(theirs.kind.rawValue), \(theirs.size) tokens) differs from this data's (\(ours.kind.rawValue), \(ours.size) tokens): embedding rows would stand for other tokens")
        }
        var report: (fresh: [String], unused: [String]) = ([], [])
        for r in replicas {
            if partial {
                let m = try Checkpoint.loadMatching(into: r.model, from: file, source: path, prefix: r.prefix)
                report.fresh += m.fresh
                report.unused += m.unused
            } else {
                try Checkpoint.loadParameters(into: r.model, from: file, source: path, prefix: r.prefix)
            }
            try comm.broadcast(r.model.values.buffer, root: 0)
        }
        if partial && report.fresh.count == replicas.reduce(0, { $0 + $1.model.parameters.count + $1.model.buffers.filter { !$0.buffer.isCounter }.count }) {
            throw FileError(path, "no tensor matches this model by name and shape: nothing would be initialised from it")
        }
        return report
    }

    // MARK: one step

    /// One optimizer step on this rank's batch (its micro-batches, rows one after another):
    /// the task's step at this step's learning rate. Returns the step's loss averaged over
    /// micro-batches and ranks.
    @discardableResult
    public func step(_ batch: Batch) throws -> Float {
        runner.lr = Float(learningRate(step: state.globalStep))
        runner.globalStep = state.globalStep
        return try task.step(batch, runner)
    }

    // MARK: evaluation

    /// The task's metrics over a whole split, in eval mode. Each rank evaluates its share; the
    /// sums are gathered and added in rank order, so every rank gets the same numbers and they
    /// equal a single process's (counts exactly, sums up to rounding).
    public func evaluate(_ ds: DataSource, split: String = "test") throws -> Evaluation {
        try syncBuffers()
        let bs = job.train.evalBatchSize
        let w = comm.worldSize, r = comm.rank
        let shard = (r * ds.count / w)..<((r + 1) * ds.count / w)
        let m = task.makeMetrics()
        task.willEvaluate(ds)
        var start = shard.lowerBound
        while start < shard.upperBound {
            let end = min(start + bs, shard.upperBound)
            ds.gather(Array(start..<end)[...], into: evalBatch)
            task.evaluate(evalBatch, runner, into: m)
            start = end
        }
        if w > 1 { try reduce(m) }
        var ev = Evaluation(split: split, loss: m.loss, metrics: task.finish(m))
        if let c = task as? ClassificationTask {
            ev.confusion = c.confusion(m)
            ev.classNames = data.info.classNames
        }
        return ev
    }

    /// Every rank's sums and samples, added (and concatenated) in rank order.
    private func reduce(_ m: MetricSums) throws {
        var payload: [UInt8] = withUnsafeBytes(of: Int64(m.sums.count)) { Array($0) }
        payload += m.sums.withUnsafeBytes { Array($0) }
        payload += m.samples.withUnsafeBytes { Array($0) }
        let all = try comm.allGather(payload)
        var sums = [Double](repeating: 0, count: m.sums.count)
        var samples: [Float] = []
        for (rank, p) in all.enumerated() {
            let n = p.count >= 8 ? Int(p.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }) : -1
            guard n == m.sums.count, (p.count - 8 - 8 * n) % 4 == 0, p.count >= 8 + 8 * n else {
                throw TrainError("rank \(rank) sent evaluation sums of another shape")
            }
            p.withUnsafeBytes { raw in
                for i in 0..<n { sums[i] += raw.loadUnaligned(fromByteOffset: 8 + 8 * i, as: Double.self) }
                for i in 0..<((p.count - 8 - 8 * n) / 4) {
                    samples.append(raw.loadUnaligned(fromByteOffset: 8 + 8 * n + 4 * i, as: Float.self))
                }
            }
        }
        m.sums = sums
        m.samples = samples
    }

    /// Gives every rank rank 0's buffers (BatchNorm running statistics), as PyTorch DDP does;
    /// called before evaluation and checkpoints, where they are used.
    public func syncBuffers() throws {
        let buffers = replicas.flatMap(\.model.buffers)
        guard comm.worldSize > 1, !buffers.isEmpty else { return }
        var flat: [Float] = buffers.flatMap { $0.buffer.value.array }
        try flat.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        var i = 0
        for (_, b) in buffers {
            for j in 0..<b.value.count { b.value.data[j] = flat[i + j] }
            i += b.value.count
        }
    }

    /// Checks that every replica holds bit-identical parameters.
    public func checkReplicas() throws {
        guard comm.worldSize > 1 else { return }
        var sums = replicas.map { $0.model.values.checksum() }
        let all = try comm.allGather(sums.withUnsafeMutableBytes { Array($0) })
        if let bad = all.firstIndex(where: { $0 != all[0] }) {
            throw TrainError("replica drift at step \(state.globalStep): rank \(bad)'s parameters differ from rank 0's")
        }
    }

    // MARK: the loop

    /// Summary of a finished (or stopped) run.
    public struct Summary: Sendable {
        public var state: TrainState
        /// The last epoch's evaluation (validation, else test split).
        public var lastEvaluation: Evaluation?
        /// The test split at the end, when epochs were evaluated on a validation split.
        public var test: Evaluation?
        public var trainSeconds: Double
        public var samplesPerSecond: Double
        public var stopped: Bool
    }

    /// Trains until the configured number of epochs (or `stopAtStep`).
    public func run(checkpointDir: String? = nil) throws -> Summary {
        let epochs = job.train.maxSteps > 0 ? (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch : job.train.epochs
        var lastEval: Evaluation?
        var trainSeconds = 0.0, samples = 0
        let k = job.train.accumulationSteps
        let params = replicas.reduce(0) { $0 + $1.model.parameterCount }
        log("training \(job.name) (\(task.name)): \(params) parameters, \(data.train.count) samples, "
            + "\(comm.worldSize) worker\(comm.worldSize == 1 ? "" : "s") × batch \(job.train.batchSize)"
            + (k > 1 ? " × \(k) micro-batches" : "") + " = global batch \(sampler.globalBatch), "
            + "\(stepsPerEpoch) steps/epoch; \(lrDescription)")
        var frozen = applyParameterGroups(epoch: state.epoch)
        if !frozen.isEmpty { log("frozen: \(frozen.joined(separator: ", "))") }
        while state.epoch < epochs && state.globalStep < totalSteps {
            let now = applyParameterGroups(epoch: state.epoch)
            if now != frozen {
                let thawed = frozen.filter { !now.contains($0) }
                log("epoch \(state.epoch + 1): " + (thawed.isEmpty ? "frozen now: \(now.joined(separator: ", "))" : "unfrozen \(thawed.joined(separator: ", "))"))
                frozen = now
            }
            var augment = job.data.augment
            if let s = data.info.inputScaling, let m = s.mean.first, let d = s.std.first, s.mean.count == 1 {
                augment.fill = d > 0 ? Float(-m / d) : 0
            }
            let loader = BatchLoader(data.train, sampler: sampler, epoch: state.epoch, from: state.stepInEpoch, augmentation: augment)
            boundaryRNG = (model.random.rng, runner.random)
            var t0 = monotonicSeconds()
            var epochLoss = 0.0, epochSteps = 0
            while let batch = loader.next() {
                if let stop = stopAtStep, state.globalStep >= stop {
                    loader.cancel()
                    trainSeconds += monotonicSeconds() - t0
                    return Summary(state: state, lastEvaluation: lastEval, trainSeconds: trainSeconds,
                                   samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: true)
                }
                if state.globalStep >= totalSteps { loader.cancel(); break }
                let l: Float
                do {
                    try beforeStep?()
                    l = try step(batch)
                    state.stepInEpoch += 1
                    state.globalStep += 1
                    boundaryRNG = (model.random.rng, runner.random)
                    if job.train.checkEvery > 0 && state.globalStep % job.train.checkEvery == 0 { try checkReplicas() }
                } catch { loader.cancel(); throw error }
                samples += sampler.globalBatch
                epochLoss += Double(l)
                epochSteps += 1
                onStep?(state, l)
                recorder?.step(state, loss: l, lr: runner.lr, samples: sampler.globalBatch)
                // The last epoch of a run cut by train.max_steps is shorter.
                progress?.step(epoch: state.epoch + 1, epochs: epochs, step: state.stepInEpoch,
                               steps: min(stepsPerEpoch, totalSteps - state.globalStep + state.stepInEpoch),
                               globalBatch: sampler.globalBatch, loss: l, lr: runner.lr)
                if job.train.logEvery > 0 && state.stepInEpoch % job.train.logEvery == 0 {
                    let line = "epoch \(state.epoch + 1)/\(epochs) step \(state.stepInEpoch)/\(stepsPerEpoch) loss \(fmt(l, 4)) lr \(fmt(runner.lr, 5))"
                    if progress != nil { recorder?.log(line) } else { log(line) }
                }
                if let dir = checkpointDir, job.checkpoint.everySteps > 0,
                   state.globalStep % job.checkpoint.everySteps == 0, state.stepInEpoch < stepsPerEpoch {
                    let dt = monotonicSeconds() - t0
                    do { try checkpointDuringRun(dir) } catch { loader.cancel(); throw error }
                    t0 = monotonicSeconds() - dt
                }
            }
            let epochTime = monotonicSeconds() - t0
            trainSeconds += epochTime
            // An epoch cut short by train.max_steps stays where it stopped (a resume continues there).
            if state.stepInEpoch >= stepsPerEpoch { state = TrainState(epoch: state.epoch + 1, stepInEpoch: 0, globalStep: state.globalStep) }
            let ev = try data.epochSplit.map { try evaluate($0.data, split: $0.name) }
            lastEval = ev
            let rate = Double(epochSteps * sampler.globalBatch) / max(epochTime, 1e-9)
            let timing = replicas.compactMap { $0.reducer?.takeTiming() }.first
            lastEpochTiming = EpochTiming(seconds: epochTime, steps: epochSteps, allreduceSeconds: timing?.perStep, hiddenShare: timing?.hidden)
            let comm = timing.map {
                " allreduce \(fmt($0.perStep * 1000, 2)) ms/step (\(Int(($0.hidden * 100).rounded()))% hidden behind backward)"
            } ?? ""
            let epochNumber = state.stepInEpoch == 0 ? state.epoch : state.epoch + 1
            let trainLoss = epochLoss / Double(max(epochSteps, 1))
            log("epoch \(epochNumber)/\(epochs) train_loss \(fmt(trainLoss, 4)) "
                + (ev.map { $0.line + " " } ?? "")
                + "time \(fmt(epochTime, 2))s samples/s \(Int(rate))" + comm)
            recorder?.epoch(state, epoch: epochNumber, trainLoss: trainLoss, evaluation: ev, samplesPerSecond: rate, allreduce: timing)
            onEpoch?(state, ev, rate)
            if var p = plateau, let ev {
                let before = p.scale
                p.step(ev.loss)
                plateau = p
                if p.scale != before { log("\(ev.split) loss has not improved for \(job.schedule.patience) epochs: lr scale now \(p.scale)") }
            }
            if let ev, ev.split == "val" { try follow(ev, epoch: epochNumber, checkpointDir: checkpointDir) }
            if let dir = checkpointDir { try checkpointDuringRun(dir) }
            if stoppedEarly, let g = job.train.earlyStopping {
                log("early stopping: \(g.metric) has not improved for \(g.patience) epochs (best \(fmt(stopTrack.best ?? .nan, 4)) at epoch \(stopTrack.bestEpoch))")
                break
            }
        }
        var test: Evaluation?
        if data.validation != nil, let t = data.test {
            test = try evaluate(t, split: "test")
            log("test " + test!.line)
            recorder?.test(state, test!)
        }
        return Summary(state: state, lastEvaluation: lastEval, test: test, trainSeconds: trainSeconds,
                       samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: false)
    }

    /// checkpoint.best and early stopping after an epoch's validation.
    private func follow(_ ev: Evaluation, epoch: Int, checkpointDir: String?) throws {
        func value(_ g: MetricGoal, _ key: String) throws -> Double {
            guard let v = metric(ev, g.metric) else {
                throw TrainError("\(key): the \(task.name) task logs no \"\(g.metric)\"; it logs \(metricNames(ev).joined(separator: ", "))")
            }
            return v
        }
        if let g = job.checkpoint.best, bestTrack.add(try value(g, "checkpoint.best"), epoch: epoch, goal: g), let dir = checkpointDir,
           let path = try checkpointDuringRun(dir, as: "best.safetensors") {
            log("best \(g.metric) \(fmt(bestTrack.best!, 4)) (epoch \(epoch)): \(path)")
        }
        if let g = job.train.earlyStopping { _ = stopTrack.add(try value(g, "train.early_stopping"), epoch: epoch, goal: g) }
    }

    /// A checkpoint while training, under `checkpoint.on_error`: a write that fails (disk full,
    /// read-only, the directory gone) stops the run with the error, or is reported and
    /// skipped. Either way the previous checkpoint is untouched (writes go to a temporary file
    /// renamed into place). A directory that vanished after the first checkpoint is an error
    /// rather than quietly made again (it may be an unmounted volume). Nil when skipped.
    @discardableResult
    func checkpointDuringRun(_ dir: String, as name: String? = nil) throws -> String? {
        do {
            return try saveCheckpoint(dir, as: name)
        } catch let e as FileError where job.checkpoint.onError == .warn {
            log("warning: checkpoint not written: \(e); training goes on (checkpoint.on_error: warn) and the previous checkpoint stays")
            return nil
        }
    }

    /// Writes a checkpoint of the current state (rank 0 only) and deletes this run's own
    /// checkpoints beyond the newest `checkpoint.keep` (never another run's). `name` writes
    /// one outside the step series (best.safetensors), which retention leaves alone.
    @discardableResult
    public func saveCheckpoint(_ dir: String, as name: String? = nil) throws -> String {
        try syncBuffers()
        let path = "\(dir)/\(name ?? Checkpoint.fileName(step: state.globalStep))"
        guard comm.rank == 0 else { return path }
        if madeCheckpointDirectory && !FileIO.isDirectory(dir) {
            throw FileError(dir, "the checkpoint directory has vanished (deleted, or its volume unmounted)")
        }
        if !madeCheckpointDirectory {
            for f in Checkpoint.removeStaleTemporaries(in: dir) { log("removed \(f), a temporary file a killed process left") }
        }
        var all = rngs
        all["dropout.0"] = model.random.rng
        all["task.0"] = runner.random
        try Checkpoint.save(to: path, job: job, replicas: replicas, state: state, rngs: all, worldSize: comm.worldSize,
                            data: data.info, selection: selection)
        madeCheckpointDirectory = true
        if name != nil { return path }
        writtenCheckpoints.removeAll { $0 == path }
        writtenCheckpoints.append(path)
        while writtenCheckpoints.count > job.checkpoint.keep { FileIO.remove(writtenCheckpoints.removeFirst()) }
        log("checkpoint \(path)")
        return path
    }

    /// This rank's state between two steps as checkpoint bytes, without a collective (the ring
    /// may be broken): parameters, buffers, optimizer state, progress and the random streams
    /// as they were after the last completed step. An elastic job's new rank 0 broadcasts it;
    /// restoring it is exactly resuming from a checkpoint written at that step.
    public func snapshot() -> [UInt8] {
        var all = rngs
        all["dropout.0"] = boundaryRNG?.dropout ?? model.random.rng
        all["task.0"] = boundaryRNG?.task ?? runner.random
        // The run's step checkpoints so far go along: whichever rank 0 writes the next one
        // keeps `checkpoint.keep` of them in all.
        return Checkpoint.encode(job: job, replicas: replicas, state: state, rngs: all, worldSize: comm.worldSize,
                                 data: data.info, selection: selection,
                                 extra: [Self.writtenKey: JSON.string(.list(writtenCheckpoints.map { .string($0) }))])
    }

    static let writtenKey = "written_checkpoints"

    /// Takes over the step checkpoints a snapshot says this run has written (an elastic job's
    /// new rank 0), so retention counts them.
    public func adoptWrittenCheckpoints(from c: Checkpoint.Contents) {
        guard let text = c.file.metadata[Self.writtenKey], let v = try? JSON.parse(Array(text.utf8)), case .list(let items) = v else { return }
        writtenCheckpoints = items.compactMap { if case .string(let p) = $0, FileIO.exists(p) { return p } else { return nil } }
    }

    /// checkpoint.best and early stopping's progress, for checkpoint metadata.
    private var selection: ConfigValue? {
        job.checkpoint.best == nil && job.train.earlyStopping == nil ? nil
            : .object(["best": bestTrack.configValue, "early_stopping": stopTrack.configValue])
    }

    public static func printLine(_ s: String) {
        print(s)
        fflush(stdout)
    }
}

/// Fixed-point formatting without Foundation.
public func fmt(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return String(v) }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (abs(v) * p).rounded()
    let ip = Int(r / p), fp = Int(r.truncatingRemainder(dividingBy: p))
    var f = String(fp)
    while f.count < digits { f = "0" + f }
    return (v < 0 && r > 0 ? "-" : "") + String(ip) + (digits > 0 ? "." + f : "")
}

public func fmt(_ v: Float, _ digits: Int) -> String { fmt(Double(v), digits) }
