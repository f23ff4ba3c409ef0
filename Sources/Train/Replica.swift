import Comm
import Datasets
import NN
import Optim
import TensorCore

/// One model a job trains, with its optimizer and, in a data-parallel run, the reducer that
/// averages its gradients across ranks while backward runs. A supervised job has one
/// ("model"); a GAN has a generator and a discriminator.
public final class Replica {
    public let name: String
    public let model: Model
    public let optimizer: Optimizer
    let reducer: GradientReducer?
    /// Prefix of this model's tensors in checkpoints ("" for a single-model job).
    public let prefix: String

    init(name: String, model: Model, optimizer: Optimizer, reducer: GradientReducer?, prefix: String) {
        self.name = name
        self.model = model
        self.optimizer = optimizer
        self.reducer = reducer
        self.prefix = prefix
    }

    /// The model's forward on a batch's inputs (ids go to an embedding without passing through Float).
    public func forward(_ b: Batch, training: Bool) -> Tensor {
        b.integerInput ? model.forward(indices: b.ids, training: training) : model.forward(b.inputs, training: training)
    }

    /// Backward from dL/d(output). With `reduceWithLoss`, the gradient all-reduce starts as
    /// layers finish and that loss rides along (call `finishReduce` before reading gradients).
    public func backward(_ dy: Tensor, reduceWithLoss loss: Float?) {
        if let loss, let r = reducer {
            r.begin(loss: loss)
            model.backward(dy, onLayerDone: r.layerDone)
        } else {
            model.backward(dy)
        }
    }

    /// Waits for the gradient all-reduce; returns the loss averaged over ranks (`localLoss`
    /// in a single process).
    public func finishReduce(localLoss: Float) throws -> Float {
        try reducer?.finish() ?? localLoss
    }
}

/// What a task's step works with: the replicas, the micro-batch split, the lr and the update
/// rule (the NaN policy, clipping, the optimizer step), and a random stream per rank for tasks
/// that sample (noise, timesteps), saved in checkpoints.
public final class StepRunner {
    public let replicas: [Replica]
    public let accumulation: Int
    public let microBatchSize: Int
    /// The learning rate of the step being taken (warmup and schedule applied).
    public internal(set) var lr: Float = 0
    /// The optimizer step being taken (0-based; counted over the whole run, resumes included).
    public internal(set) var globalStep = 0
    /// Draws of tasks that sample during training; one stream per rank.
    public var random: RNG
    let job: JobConfig
    var log: (String) -> Void
    var describeStep: () -> String = { "" }
    var warmupHint: String?
    public private(set) var skippedSteps = 0
    /// The global gradient norm before clipping at the last update (with `train.clip_grad_norm`).
    public private(set) var lastGradientNorm: Float?
    private var consecutiveSkips = 0

    init(replicas: [Replica], job: JobConfig, random: RNG, log: @escaping (String) -> Void) {
        self.replicas = replicas
        self.job = job
        accumulation = job.train.accumulationSteps
        microBatchSize = job.train.batchSize
        self.random = random
        self.log = log
    }

    public subscript(name: String) -> Replica? { replicas.first { $0.name == name } }

    /// The step's batch as `accumulation` micro-batches (views; the whole batch when 1).
    public func microBatches(_ batch: Batch) -> [Batch] {
        guard accumulation > 1 else { return [batch] }
        return (0..<accumulation).map { batch.rows(($0 * microBatchSize)..<(($0 + 1) * microBatchSize), view: $0) }
    }

    /// Applies `r`'s averaged gradients: checks `loss` (the same on every rank, so every rank
    /// decides alike), clips, sets the lr and steps the optimizer. False when the update was
    /// skipped (`train.on_nan: skip`).
    @discardableResult
    public func apply(_ r: Replica, loss: Float) throws -> Bool {
        guard loss.isFinite else {
            let at = describeStep()
            guard job.train.onNaN == .skip else {
                throw TrainError("loss is \(loss) at \(at): training diverged. Lower the learning rate, clip gradients (train.clip_grad_norm), or set train.on_nan: skip to drop such steps"
                                 + (warmupHint.map { "; \($0)" } ?? ""))
            }
            skippedSteps += 1
            consecutiveSkips += 1
            log("warning: loss is \(loss) at \(at); update skipped (\(skippedSteps) so far)")
            if consecutiveSkips >= 10 { throw TrainError("loss not finite for 10 steps in a row (last at \(at)); stopping") }
            r.model.zeroGrad()
            return false
        }
        consecutiveSkips = 0
        // Frozen parameters have no gradient (as PyTorch's None): clipping must not count them.
        if job.train.clipGradNorm > 0 || job.train.clipGradValue > 0 {
            for run in r.optimizer.runs.runs where run.lrScale == 0 { (r.model.grads.data + run.range.lowerBound).update(repeating: 0, count: run.range.count) }
        }
        if job.train.clipGradValue > 0 { GradientClipping.clipValue(r.model.grads, value: Float(job.train.clipGradValue)) }
        if job.train.clipGradNorm > 0 { lastGradientNorm = GradientClipping.clipNorm(r.model.grads, maxNorm: Float(job.train.clipGradNorm)) }
        r.optimizer.lr = lr
        r.optimizer.step()
        return true
    }
}
