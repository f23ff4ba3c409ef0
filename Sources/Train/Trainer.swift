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
/// fallback; with a ring communicator each rank trains on its shard and the gradients are
/// averaged before the (identical) optimizer step.
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
    /// Called after every optimizer step with the state after it and the batch loss.
    public var onStep: ((TrainState, Float) -> Void)?
    /// Stop (as if interrupted) once this many global steps have been taken.
    public var stopAtStep: Int?

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
        model = try Model(spec: job.model, source: "job model")
        guard model.inputShape == data.train.sampleShape else {
            throw TrainError("model input shape \(model.inputShape) does not match the dataset's sample shape \(data.train.sampleShape)")
        }
        let outputs = model.outputShape.reduce(1, *)
        guard model.outputShape.count == 1, outputs == data.train.numClasses else {
            throw TrainError("model output shape \(model.outputShape) does not match the dataset's \(data.train.numClasses) classes")
        }
        switch job.train.loss {
        case "mse": loss = MeanSquaredError()
        default: loss = SoftmaxCrossEntropy()
        }
        optimizer = SGD(params: model.values, grads: model.grads, lr: Float(job.optimizer.lr),
                        momentum: Float(job.optimizer.momentum), dampening: Float(job.optimizer.dampening),
                        nesterov: job.optimizer.nesterov, weightDecay: Float(job.optimizer.weightDecay))
        sampler = DistributedSampler(count: data.train.count, batchSize: job.train.batchSize,
                                     world: comm.worldSize, rank: comm.rank, seed: UInt64(job.seed))
        guard sampler.stepsPerEpoch > 0 else {
            throw TrainError("global batch \(sampler.globalBatch) is larger than the \(data.train.count) training samples")
        }
        rngs = [:]
        model.initialize(seed: UInt64(job.seed))
        // Every replica starts from rank 0's parameters.
        try comm.broadcast(model.values.buffer, root: 0)
    }

    public var stepsPerEpoch: Int { sampler.stepsPerEpoch }
    public var totalSteps: Int { stepsPerEpoch * job.train.epochs }

    public var schedule: LRSchedule {
        switch job.schedule.type {
        case "cosine": return .cosine(totalSteps: totalSteps, minFactor: job.schedule.minFactor)
        case "step": return .step(everySteps: job.schedule.stepEpochs * stepsPerEpoch, gamma: job.schedule.gamma)
        default: return .constant
        }
    }

    /// Continues from a checkpoint: parameters, optimizer state, progress and RNG states.
    public func restore(_ c: Checkpoint.Contents) throws {
        guard c.job.model == job.model else {
            throw FileError(c.path, "checkpoint holds a different model than the job")
        }
        try Checkpoint.loadParameters(into: model, from: c.file, source: c.path)
        try Checkpoint.loadOptimizer(optimizer, steps: c.optimizerSteps, from: c.file, source: c.path)
        for (k, v) in c.rngs { rngs[k] = v }
        // A checkpoint taken with a different world size resumes at the same sample position.
        let samplesSeen = c.state.stepInEpoch * job.train.batchSize * c.worldSize
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

    /// One optimizer step on this rank's batch; returns the batch loss.
    @discardableResult
    public func step(_ x: Tensor, _ labels: Labels) throws -> Float {
        model.zeroGrad()
        let out = model.forward(x, training: true)
        let lossValue = loss.compute(out, target(for: out, labels), grad: outputGrad)
        guard lossValue.isFinite else {
            throw TrainError("loss is \(lossValue) at epoch \(state.epoch + 1), step \(state.globalStep + 1): training diverged (lower the learning rate?)")
        }
        model.backward(outputGrad)
        if comm.worldSize > 1 { try comm.allReduceMean(model.grads.buffer) }
        optimizer.lr = Float(job.optimizer.lr * schedule.factor(step: state.globalStep))
        optimizer.step()
        return lossValue
    }

    private func target(for out: Tensor, _ labels: Labels) -> Target {
        guard job.train.loss == "mse" else { return .classes(labels) }
        oneHot.resize(out.shape)
        oneHot.zero()
        let c = out.rowSize
        for r in 0..<labels.count { oneHot.data[r * c + Int(labels[r])] = 1 }
        return .values(oneHot)
    }

    /// Loss and accuracy over a whole split, in eval mode.
    public func evaluate(_ ds: Dataset) -> Evaluation {
        let bs = job.train.evalBatchSize
        var totalLoss: Double = 0, correct = 0
        var start = 0
        while start < ds.count {
            let end = min(start + bs, ds.count)
            let idx = Array(start..<end)
            ds.gather(idx[...], into: x, labels: labels)
            let out = model.forward(x, training: false)
            totalLoss += Double(loss.compute(out, target(for: out, labels), grad: nil)) * Double(end - start)
            let c = out.rowSize
            for r in 0..<(end - start) {
                let row = out.data + r * c
                var best = 0
                for j in 1..<c where row[j] > row[best] { best = j }
                if best == Int(labels[r]) { correct += 1 }
            }
            start = end
        }
        return Evaluation(loss: totalLoss / Double(max(ds.count, 1)), accuracy: Double(correct) / Double(max(ds.count, 1)))
    }

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
        log("training \(job.name): \(model.parameterCount) parameters, \(data.train.count) samples, "
            + "\(comm.worldSize) worker\(comm.worldSize == 1 ? "" : "s") × batch \(job.train.batchSize), "
            + "\(stepsPerEpoch) steps/epoch, lr \(job.optimizer.lr) (\(job.schedule.type))")
        while state.epoch < epochs {
            let loader = BatchLoader(data.train, sampler: sampler, epoch: state.epoch, from: state.stepInEpoch)
            var t0 = monotonicSeconds()
            var epochLoss = 0.0, epochSteps = 0
            while let (bx, by) = loader.next() {
                if let stop = stopAtStep, state.globalStep >= stop {
                    loader.cancel()
                    trainSeconds += monotonicSeconds() - t0
                    return Summary(state: state, lastEvaluation: lastEval, trainSeconds: trainSeconds,
                                   samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: true)
                }
                let l: Float
                do { l = try step(bx, by) } catch { loader.cancel(); throw error }
                state.stepInEpoch += 1
                state.globalStep += 1
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
            let ev = evaluate(data.test)
            lastEval = ev
            log("epoch \(state.epoch)/\(epochs) train_loss \(fmt(epochLoss / Double(max(epochSteps, 1)), 4)) "
                + "test_loss \(fmt(ev.loss, 4)) test_acc \(fmt(ev.accuracy, 4)) "
                + "time \(fmt(epochTime, 2))s samples/s \(Int(Double(epochSteps * sampler.globalBatch) / max(epochTime, 1e-9)))")
            if let dir = checkpointDir { try saveCheckpoint(dir) }
        }
        return Summary(state: state, lastEvaluation: lastEval, trainSeconds: trainSeconds,
                       samplesPerSecond: Double(samples) / max(trainSeconds, 1e-9), stopped: false)
    }

    /// Writes a checkpoint of the current state (rank 0 only) and prunes old ones.
    public func saveCheckpoint(_ dir: String) throws {
        guard comm.rank == 0 else { return }
        let path = "\(dir)/\(Checkpoint.fileName(step: state.globalStep))"
        try Checkpoint.save(to: path, job: job, model: model, optimizer: optimizer, state: state,
                            rngs: rngs, worldSize: comm.worldSize)
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
