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

/// Evaluation result on one split.
public struct Evaluation: Sendable {
    public let loss: Double
    public let accuracy: Double
}

/// The training loop shared by every mode. With a `LocalCommunicator` it is the single-node
/// fallback; with a ring communicator each rank trains on its shard, gradients are averaged in
/// buckets while backward runs, and every rank takes the identical optimizer step.
public final class Trainer {
    public let job: JobConfig
    public let model: Model
    public let optimizer: Optimizer
    public let loss: Loss
    public let data: JobData
    public let comm: Communicator
    public let sampler: DistributedSampler
    public private(set) var state = TrainState()
    /// Generators that advance during training, saved in checkpoints (more join as layers need them).
    public var rngs: [String: RNG]

    /// Progress lines (only rank 0 prints by default).
    public var log: (String) -> Void
    /// Called after every optimizer step with the state after it and the step's loss (the
    /// mean over all ranks).
    public var onStep: ((TrainState, Float) -> Void)?
    /// Called after each epoch's evaluation (on every rank, with the same values).
    public var onEpoch: ((TrainState, Evaluation, Double) -> Void)?
    /// Stop (as if interrupted) once this many global steps have been taken.
    public var stopAtStep: Int?

    private let reducer: GradientReducer?
    /// ReduceLROnPlateau state (schedule `plateau`), stepped with each epoch's test loss.
    public private(set) var plateau: ReduceOnPlateau?
    /// Steps whose update was dropped because the loss was not finite (`train.on_nan: skip`).
    public private(set) var skippedSteps = 0
    private var consecutiveSkips = 0
    private let x = Tensor.workspace()
    private let labels = Labels()
    private let oneHot = Tensor.workspace()
    private let outputGrad = Tensor.workspace()

    public init(job: JobConfig, data: JobData, comm: Communicator = LocalCommunicator(),
                log: ((String) -> Void)? = nil) throws {
        self.job = job
        self.data = data
        self.comm = comm
        let rank = comm.rank
        self.log = log ?? { line in if rank == 0 { Trainer.printLine(line) } }
        // Gradients live in the communicator's buffer: ranks on one host all-reduce it in place.
        model = try Model(spec: job.model, source: "job model",
                          gradientStorage: comm.worldSize > 1 ? { try comm.allocateBuffer(count: $0) } : nil)
        guard model.inputShape == data.train.sampleShape else {
            throw TrainError("model input shape \(model.inputShape) does not match the dataset's sample shape \(data.train.sampleShape)")
        }
        let outputs = model.outputShape.reduce(1, *)
        guard model.outputShape.count == 1, outputs == data.train.numClasses else {
            throw TrainError("model output shape \(model.outputShape) does not match the dataset's \(data.train.numClasses) classes")
        }
        loss = job.makeLoss()
        optimizer = job.makeOptimizer(params: model.values, grads: model.grads)
        plateau = job.schedule.type == "plateau"
            ? ReduceOnPlateau(factor: job.schedule.gamma, patience: job.schedule.patience, threshold: job.schedule.threshold,
                              minFactor: job.schedule.minFactor)
            : nil
        sampler = DistributedSampler(count: data.train.count, batchSize: job.train.batchSize,
                                     world: comm.worldSize, rank: comm.rank, seed: UInt64(job.seed),
                                     accumulation: job.train.accumulationSteps)
        guard sampler.stepsPerEpoch > 0 else {
            throw TrainError("global batch \(sampler.globalBatch) is larger than the \(data.train.count) training samples")
        }
        reducer = comm.worldSize > 1 ? GradientReducer(model: model, comm: comm, bucketBytes: job.comm.bucketBytes) : nil
        rngs = [:]
        model.initialize(seed: UInt64(job.seed))
        model.random.rng = RNG(seed: UInt64(job.seed), stream: "dropout", UInt64(comm.rank))
        if job.train.syncBatchNorm && comm.worldSize > 1 {
            // A failed collective leaves garbage here, but the same communicator then fails the
            // step's gradient all-reduce, which ends the step with its error.
            for case let bn as BatchNorm in model.allLayers { bn.synchronize = { try? comm.allReduceSum($0) } }
        }
        // Every replica starts from rank 0's parameters.
        try comm.broadcast(model.values.buffer, root: 0)
    }

    public var stepsPerEpoch: Int { sampler.stepsPerEpoch }
    public var totalSteps: Int { stepsPerEpoch * job.train.epochs }

    // MARK: learning rate

    /// The learning rate after the linear scaling rule (Goyal et al.): base × global / base batch.
    public var scaledLR: Double {
        job.scaling.rule == "linear"
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
        case "cosine": return .cosine(totalSteps: after, minFactor: job.schedule.minFactor)
        case "step": return .step(everySteps: job.schedule.stepEpochs * stepsPerEpoch, gamma: job.schedule.gamma)
        case "warmup_cosine":
            return .warmupCosine(warmup: Int((job.schedule.warmupEpochs * Double(stepsPerEpoch)).rounded()),
                                 totalSteps: after, minFactor: job.schedule.minFactor)
        default: return .constant
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
        var s = job.scaling.rule == "linear"
            ? "lr \(job.optimizer.lr) × \(sampler.globalBatch)/\(job.scaling.baseBatch) = \(fmt(scaledLR, 5)) (linear scaling rule)"
            : "lr \(job.optimizer.lr) (scaling rule off)"
        if warmupSteps > 0 { s += ", warmup \(warmupSteps) steps from \(job.optimizer.lr)" }
        s += ", \(job.schedule.type) schedule"
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
        guard c.job.model == job.model else {
            throw FileError(c.path, "checkpoint holds a different model than the job")
        }
        try Checkpoint.loadParameters(into: model, from: c.file, source: c.path)
        try Checkpoint.loadOptimizer(optimizer, steps: c.optimizerSteps, from: c.file, source: c.path)
        for (k, v) in c.rngs { rngs[k] = v }
        if let r = c.rngs["dropout.\(comm.rank)"] { model.random.rng = r }
        // A checkpoint taken with another world size (or batch) resumes at the same sample position.
        let samplesSeen = c.state.stepInEpoch * c.job.train.batchSize * c.job.train.accumulationSteps * c.worldSize
        state = TrainState(epoch: c.state.epoch, stepInEpoch: samplesSeen / sampler.globalBatch,
                           globalStep: c.state.globalStep)
        if state.stepInEpoch >= stepsPerEpoch { state = TrainState(epoch: state.epoch + 1, globalStep: state.globalStep) }
        try comm.broadcast(model.values.buffer, root: 0)
    }

    /// Loads weights only (a fresh run from pretrained or exported parameters).
    public func initialize(fromWeights path: String) throws {
        let file = try SafeTensors.read(path: path)
        try Checkpoint.loadParameters(into: model, from: file, source: path)
        try comm.broadcast(model.values.buffer, root: 0)
    }

    // MARK: one step

    /// One optimizer step on this rank's batch (its micro-batches, rows one after another);
    /// returns the step's loss averaged over micro-batches and ranks.
    @discardableResult
    public func step(_ x: Tensor, _ labels: Labels, soft: Tensor? = nil) throws -> Float {
        model.zeroGrad()
        let k = job.train.accumulationSteps
        let b = job.train.batchSize
        var lossSum: Float = 0
        for m in 0..<k {
            let (mx, my) = k == 1 ? (x, labels) : microBatch(x, labels, m, b)
            let out = model.forward(mx, training: true)
            let t: Target = soft.map { s in .values(k == 1 ? s : Tensor(viewing: s.data + m * b * s.rowSize, shape: [b, s.rowSize])) }
                ?? target(for: out, my)
            let l = loss.compute(out, t, grad: outputGrad)
            lossSum += l
            if k > 1 { scale(outputGrad, 1 / Float(k)) }
            if m == k - 1, let r = reducer {
                r.begin(loss: lossSum / Float(k))
                model.backward(outputGrad, onLayerDone: r.layerDone)
            } else {
                model.backward(outputGrad)
            }
        }
        let stepLoss = try reducer?.finish() ?? lossSum / Float(k)
        // Decided on the averaged loss, so every rank makes the same choice.
        guard stepLoss.isFinite else {
            let at = "epoch \(state.epoch + 1), step \(state.globalStep + 1)"
            guard job.train.onNaN == "skip" else {
                throw TrainError("loss is \(stepLoss) at \(at): training diverged. Lower the learning rate, clip gradients (train.clip_grad_norm), or set train.on_nan: skip to drop such steps"
                                 + (needsWarmupHint ? "; \(warmupHint)" : ""))
            }
            skippedSteps += 1
            consecutiveSkips += 1
            log("warning: loss is \(stepLoss) at \(at); update skipped (\(skippedSteps) so far)")
            if consecutiveSkips >= 10 { throw TrainError("loss not finite for 10 steps in a row (last at \(at)); stopping") }
            model.zeroGrad()
            return stepLoss
        }
        consecutiveSkips = 0
        if job.train.clipGradValue > 0 { GradientClipping.clipValue(model.grads, value: Float(job.train.clipGradValue)) }
        if job.train.clipGradNorm > 0 { GradientClipping.clipNorm(model.grads, maxNorm: Float(job.train.clipGradNorm)) }
        optimizer.lr = Float(learningRate(step: state.globalStep))
        optimizer.step()
        return stepLoss
    }

    private var microViews: [(Tensor, Labels)] = []

    /// Rows [m·b, (m+1)·b) of the step's batch, as views.
    private func microBatch(_ x: Tensor, _ y: Labels, _ m: Int, _ b: Int) -> (Tensor, Labels) {
        let rowSize = x.count / x.rows
        let shape = [b] + Array(x.shape.dropFirst())
        while microViews.count <= m { microViews.append((Tensor.workspace(), Labels())) }
        let view = Tensor(viewing: x.data + m * b * rowSize, shape: shape)
        microViews[m].1.rebind(y.data + m * b, count: b)
        microViews[m].0 = view
        return (view, microViews[m].1)
    }

    private func scale(_ t: Tensor, _ s: Float) {
        for i in 0..<t.count { t.data[i] *= s }
    }

    private func target(for out: Tensor, _ labels: Labels) -> Target {
        guard job.lossTakesValues else { return .classes(labels) }
        oneHot.resize(out.shape)
        oneHot.zero()
        let c = out.rowSize
        for r in 0..<labels.count { oneHot.data[r * c + Int(labels[r])] = 1 }
        return .values(oneHot)
    }

    // MARK: evaluation

    /// Loss and accuracy over a whole split, in eval mode. Each rank evaluates its share and
    /// the sums are all-reduced, so every rank gets the same numbers.
    public func evaluate(_ ds: Dataset) throws -> Evaluation {
        try syncBuffers()
        let bs = job.train.evalBatchSize
        let w = comm.worldSize, r = comm.rank
        let shard = (r * ds.count / w)..<((r + 1) * ds.count / w)
        var totalLoss: Double = 0, correct = 0
        var start = shard.lowerBound
        while start < shard.upperBound {
            let end = min(start + bs, shard.upperBound)
            ds.gather(Array(start..<end)[...], into: x, labels: labels)
            let out = model.forward(x, training: false)
            totalLoss += Double(loss.compute(out, target(for: out, labels), grad: nil)) * Double(end - start)
            let c = out.rowSize
            for i in 0..<(end - start) {
                let row = out.data + i * c
                var best = 0
                for j in 1..<c where row[j] > row[best] { best = j }
                if best == Int(labels[i]) { correct += 1 }
            }
            start = end
        }
        var sums: [Float] = [Float(totalLoss), Float(correct)]
        if w > 1 { try sums.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) } }
        let n = Double(max(ds.count, 1))
        return Evaluation(loss: Double(sums[0]) / n, accuracy: Double(sums[1]) / n)
    }

    /// Gives every rank rank 0's buffers (BatchNorm running statistics), as PyTorch DDP does;
    /// called before evaluation and checkpoints, where they are used.
    public func syncBuffers() throws {
        guard comm.worldSize > 1, !model.buffers.isEmpty else { return }
        var flat: [Float] = model.buffers.flatMap { $0.buffer.value.array }
        try flat.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        var i = 0
        for (_, b) in model.buffers {
            for j in 0..<b.value.count { b.value.data[j] = flat[i + j] }
            i += b.value.count
        }
    }

    /// Checks that every replica holds bit-identical parameters.
    public func checkReplicas() throws {
        guard comm.worldSize > 1 else { return }
        var sum = model.values.checksum()
        let all = try comm.allGather(withUnsafeBytes(of: &sum) { Array($0) })
        if let bad = all.firstIndex(where: { $0 != all[0] }) {
            throw TrainError("replica drift at step \(state.globalStep): rank \(bad)'s parameters differ from rank 0's")
        }
    }

    // MARK: the loop

    /// Summary of a finished (or stopped) run.
    public struct Summary: Sendable {
        public var state: TrainState
        public var lastEvaluation: Evaluation?
        public var trainSeconds: Double
        public var samplesPerSecond: Double
        public var stopped: Bool
    }

    /// Trains until the configured number of epochs (or `stopAtStep`).
    public func run(checkpointDir: String? = nil) throws -> Summary {
        let epochs = job.train.epochs
        var lastEval: Evaluation?
        var trainSeconds = 0.0, samples = 0
        let k = job.train.accumulationSteps
        log("training \(job.name): \(model.parameterCount) parameters, \(data.train.count) samples, "
            + "\(comm.worldSize) worker\(comm.worldSize == 1 ? "" : "s") × batch \(job.train.batchSize)"
            + (k > 1 ? " × \(k) micro-batches" : "") + " = global batch \(sampler.globalBatch), "
            + "\(stepsPerEpoch) steps/epoch; \(lrDescription)")
        while state.epoch < epochs {
            var augment = job.data.augment
            augment.fill = data.std > 0 ? -data.mean / data.std : 0
            let loader = BatchLoader(data.train, sampler: sampler, epoch: state.epoch, from: state.stepInEpoch, augmentation: augment)
            var t0 = monotonicSeconds()
            var epochLoss = 0.0, epochSteps = 0
            while let (bx, by, soft) = loader.next() {
                if let stop = stopAtStep, state.globalStep >= stop {
                    loader.cancel()
                    trainSeconds += monotonicSeconds() - t0
                    return Summary(state: state, lastEvaluation: lastEval, trainSeconds: trainSeconds,
                                   samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: true)
                }
                let l: Float
                do {
                    l = try step(bx, by, soft: soft)
                    state.stepInEpoch += 1
                    state.globalStep += 1
                    if job.train.checkEvery > 0 && state.globalStep % job.train.checkEvery == 0 { try checkReplicas() }
                } catch { loader.cancel(); throw error }
                samples += sampler.globalBatch
                epochLoss += Double(l)
                epochSteps += 1
                onStep?(state, l)
                if job.train.logEvery > 0 && state.stepInEpoch % job.train.logEvery == 0 {
                    log("epoch \(state.epoch + 1)/\(epochs) step \(state.stepInEpoch)/\(stepsPerEpoch) loss \(fmt(l, 4)) lr \(fmt(optimizer.lr, 5))")
                }
                if let dir = checkpointDir, job.checkpoint.everySteps > 0,
                   state.globalStep % job.checkpoint.everySteps == 0, state.stepInEpoch < stepsPerEpoch {
                    let dt = monotonicSeconds() - t0
                    do { try saveCheckpoint(dir) } catch { loader.cancel(); throw error }
                    t0 = monotonicSeconds() - dt
                }
            }
            let epochTime = monotonicSeconds() - t0
            trainSeconds += epochTime
            state = TrainState(epoch: state.epoch + 1, stepInEpoch: 0, globalStep: state.globalStep)
            let ev = try evaluate(data.test)
            lastEval = ev
            let rate = Double(epochSteps * sampler.globalBatch) / max(epochTime, 1e-9)
            let comm = reducer?.takeTiming().map {
                " allreduce \(fmt($0.perStep * 1000, 2)) ms/step (\(Int(($0.hidden * 100).rounded()))% hidden behind backward)"
            } ?? ""
            log("epoch \(state.epoch)/\(epochs) train_loss \(fmt(epochLoss / Double(max(epochSteps, 1)), 4)) "
                + "test_loss \(fmt(ev.loss, 4)) test_acc \(fmt(ev.accuracy, 4)) "
                + "time \(fmt(epochTime, 2))s samples/s \(Int(rate))" + comm)
            onEpoch?(state, ev, rate)
            if var p = plateau {
                let before = p.scale
                p.step(ev.loss)
                plateau = p
                if p.scale != before { log("test loss has not improved for \(job.schedule.patience) epochs: lr scale now \(p.scale)") }
            }
            if let dir = checkpointDir { try saveCheckpoint(dir) }
        }
        return Summary(state: state, lastEvaluation: lastEval, trainSeconds: trainSeconds,
                       samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: false)
    }

    /// Writes a checkpoint of the current state (rank 0 only) and prunes old ones.
    public func saveCheckpoint(_ dir: String) throws {
        try syncBuffers()
        guard comm.rank == 0 else { return }
        let path = "\(dir)/\(Checkpoint.fileName(step: state.globalStep))"
        var all = rngs
        all["dropout.0"] = model.random.rng
        try Checkpoint.save(to: path, job: job, model: model, optimizer: optimizer, state: state,
                            rngs: all, worldSize: comm.worldSize)
        Checkpoint.prune(dir, keep: job.checkpoint.keep)
        log("checkpoint \(path)")
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
