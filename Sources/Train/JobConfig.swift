import Config
import Datasets
import Formats
import NN

/// The choices a job file makes by name, parsed once into these types.
public enum CheckpointErrorPolicy: String, CaseIterable, Sendable { case stop, warn }

public enum LossKind: String, CaseIterable, Sendable {
    case crossEntropy = "cross_entropy", mse, mae, huber, bce, poissonNLL = "poisson_nll", hinge, perceptron
}

public enum OptimizerKind: String, CaseIterable, Sendable { case sgd, adagrad, rmsprop, adam, adamw }
/// Which parameters weight decay touches: all, or matrices only (≥ 2 dimensions: no biases, norm gains).
public enum DecayScope: String, CaseIterable, Sendable { case all, matrices }

public enum ScheduleKind: String, CaseIterable, Sendable {
    case constant, cosine, step, warmupCosine = "warmup_cosine", plateau
}

public enum ScalingRule: String, CaseIterable, Sendable { case linear, none }

public enum NaNPolicy: String, CaseIterable, Sendable { case stop, skip }

public enum TransportKind: String, CaseIterable, Sendable { case auto, ring, tcp }

public enum CompressionKind: String, CaseIterable, Sendable { case none, bf16 }

/// What is learned from the data: it fixes the targets, the loss wiring, the metrics and
/// evaluation (docs/tasks.md).
public enum TaskKind: String, CaseIterable, Sendable {
    case classification, binary, multilabel, regression
    case boundedRegression = "bounded_regression"
    case counting
    case languageModel = "language_model"
    /// Sequence to sequence (an encoder–decoder): per-token cross-entropy on the target with
    /// teacher forcing; evaluated by greedy decoding (exact match, token accuracy).
    case seq2seq
    /// BERT-style pre-training of an encoder: masked tokens (and next-sentence prediction).
    case maskedLM = "masked_lm"
    case reconstruction

    /// The task a loss implies when the job names no task.
    static func implied(by loss: LossKind) -> TaskKind {
        switch loss {
        case .crossEntropy, .hinge, .perceptron: return .classification
        case .bce: return .binary
        case .mse, .mae, .huber: return .regression
        case .poissonNLL: return .counting
        }
    }

    /// The loss when the job names none.
    var defaultLoss: LossKind {
        switch self {
        case .classification, .languageModel, .seq2seq, .maskedLM: return .crossEntropy
        case .binary, .multilabel: return .bce
        case .regression, .boundedRegression, .reconstruction: return .mse
        case .counting: return .poissonNLL
        }
    }

    /// The losses that make sense for this task.
    var losses: [LossKind] {
        switch self {
        case .classification: return [.crossEntropy, .hinge, .perceptron, .mse, .bce]
        case .binary, .multilabel: return [.bce]
        case .regression, .boundedRegression: return [.mse, .mae, .huber]
        case .counting: return [.poissonNLL]
        case .languageModel, .seq2seq, .maskedLM: return [.crossEntropy]
        case .reconstruction: return [.mse, .mae, .huber, .bce]
        }
    }
}

/// A model of a multi-model job (a GAN's generator and discriminator), by name.
public struct NamedModel: Equatable, Sendable {
    public var name: String
    public var spec: ModelSpec
    public init(_ name: String, _ spec: ModelSpec) { self.name = name; self.spec = spec }
}

/// A training job: what to train, on what, and how. Read from a YAML job file (or from a
/// checkpoint's metadata, as JSON) with every key validated; unknown keys are errors.
public struct JobConfig: Equatable, Sendable {
    public var name = "fmnist-mlp"
    public var seed = 0
    public var model = ModelSpec.mlp
    /// Several named models (`models:` in the job file) for tasks that train more than one;
    /// empty for the usual one model (`model:`).
    public var models: [NamedModel] = []

    public struct TaskOptions: Equatable, Sendable {
        public var kind = TaskKind.classification
        /// bounded_regression: predictions lie in [low, high] (low + (high − low)·σ(z)).
        public var low = 0.0
        public var high = 1.0
        /// counting: the rate is e^z (the loss takes log-rates) or softplus(z).
        public enum RateOutput: String, CaseIterable, Sendable { case exp, softplus }
        public var rate = RateOutput.exp
        /// classification: also report top-k accuracy.
        public var topK = 5
        /// masked_lm: next-sentence prediction (BERT) or none (RoBERTa); the share of tokens
        /// chosen; masks fixed per sample (static) or drawn again every step (dynamic).
        public var nsp = true
        public var maskRate = 0.15
        public enum Masking: String, CaseIterable, Sendable { case `static`, dynamic }
        public var masking = Masking.static
    }
    public var task = TaskOptions()

    public var data = DataConfig()

    public struct Train: Equatable, Sendable {
        public var epochs = 10
        /// Stop after this many optimizer steps (0: train every epoch); the schedule spans them.
        public var maxSteps = 0
        /// Per-worker batch size (the whole batch in single-node mode).
        public var batchSize = 128
        public var loss = LossKind.crossEntropy
        /// huber: the threshold δ between the quadratic and linear parts.
        public var huberDelta = 1.0
        public var evalBatchSize = 1000
        /// Print a progress line every this many steps (0: only at epoch ends).
        public var logEvery = 100
        /// Micro-batches per optimizer step (gradients accumulate; one all-reduce per step).
        public var accumulationSteps = 1
        /// Compare a checksum of every replica's parameters every this many steps (0: never).
        public var checkEvery = 100
        /// cross_entropy only: label smoothing ε.
        public var labelSmoothing = 0.0
        /// Clip the global gradient norm to this (0: off), or every gradient to ±value (0: off).
        public var clipGradNorm = 0.0
        public var clipGradValue = 0.0
        /// A non-finite loss: stop with an error, or skip that step (its update is dropped).
        public var onNaN = NaNPolicy.stop
        /// Data-parallel runs: BatchNorm statistics over the global batch (SyncBatchNorm)
        /// instead of each rank's own.
        public var syncBatchNorm = false
        /// Parameters not trained (for all or the first epochs), by name pattern.
        public var freeze: [Freeze] = []
        /// Stop when a validation metric has not improved for `patience` epochs.
        public var earlyStopping: MetricGoal?
    }
    public var train = Train()

    /// Large-batch training: the linear scaling rule and gradual warmup (Goyal et al. 2017).
    public struct Scaling: Equatable, Sendable {
        /// linear: lr = optimizer.lr × global_batch / base_batch; none: lr as given.
        public var rule = ScalingRule.linear
        /// The batch size `optimizer.lr` was tuned for.
        public var baseBatch = 128
        /// Ramp linearly from optimizer.lr to the scaled lr over this many epochs (or steps).
        public var warmupEpochs = 0.0
        public var warmupSteps = 0
    }
    public var scaling = Scaling()

    /// Distributed runs: gradient buckets and how long to wait for peers.
    public struct Comm: Equatable, Sendable {
        public var bucketBytes = 4 << 20
        /// Seconds without progress before a collective fails.
        public var timeout = 30.0
        /// Heartbeat interval and the silence after which a process counts as failed.
        public var heartbeat = 1.0
        public var heartbeatTimeout = 5.0
        /// auto: gradients all-reduced in place in shared memory when every worker is on one
        /// host, else the ring with shared-memory edges between co-located workers; ring: the
        /// ring only (shared-memory edges, private gradients); tcp: the ring over TCP only.
        public var transport = TransportKind.auto
        /// none, or bf16: gradient buckets travel the ring as bfloat16 (half the bytes).
        public var compression = CompressionKind.none
    }
    public var comm = Comm()

    public struct Optimizer: Equatable, Sendable {
        public var type = OptimizerKind.sgd
        public var lr = 0.05
        public var momentum = 0.9
        public var dampening = 0.0
        public var nesterov = false
        public var weightDecay = 0.0
        public var decay = DecayScope.all
        /// Adam/AdamW β₁, β₂; ε for Adam, AdamW, RMSprop, AdaGrad.
        public var betas = [0.9, 0.999]
        public var eps = 1e-8
        /// RMSprop smoothing α and centering; AdaGrad lr decay.
        public var alpha = 0.99
        public var centered = false
        public var lrDecay = 0.0

        /// torch.optim's default learning rate and weight decay for each type (SGD: this project's default job).
        static func defaults(_ t: OptimizerKind) -> (lr: Double, weightDecay: Double, momentum: Double, eps: Double) {
            switch t {
            case .sgd: return (0.05, 0, 0.9, 1e-8)
            case .adagrad: return (0.01, 0, 0, 1e-10)
            case .rmsprop: return (0.01, 0, 0, 1e-8)
            case .adam: return (0.001, 0, 0, 1e-8)
            case .adamw: return (0.001, 0.01, 0, 1e-8)
            }
        }
        /// Per-parameter lr scale and weight decay, by name pattern (first match wins).
        public var groups: [ParameterGroup] = []
    }
    public var optimizer = Optimizer()

    public struct Schedule: Equatable, Sendable {
        public var type = ScheduleKind.cosine
        /// warmup_cosine: the linear ramp from 0.
        public var warmupEpochs = 0.0
        /// plateau: multiply by `gamma` after `patience` epochs without a `threshold` relative
        /// improvement of the test loss.
        public var patience = 10
        public var threshold = 1e-4
        /// For cosine: the final lr as a fraction of the initial one.
        public var minFactor = 0.0
        /// For step: multiply by `gamma` every `stepEpochs` epochs.
        public var stepEpochs = 30
        public var gamma = 0.1
    }
    public var schedule = Schedule()

    public struct Checkpoint: Equatable, Sendable {
        /// Directory for checkpoints: inside the run directory when relative, as given when
        /// absolute; empty disables writing them.
        public var dir = "checkpoints"
        /// Also write one every this many steps (0: only at epoch ends).
        public var everySteps = 0
        /// How many recent checkpoints to keep.
        public var keep = 3
        /// Also keep the checkpoint with the best value of this validation metric (best.safetensors).
        public var best: MetricGoal?
        /// A checkpoint that cannot be written (disk full, read-only, vanished directory): stop
        /// the run with the error, or warn and train on (the previous checkpoint stays).
        public var onError = CheckpointErrorPolicy.stop
    }
    public var checkpoint = Checkpoint()

    public init() {}

    /// Parses and validates a job; `source` names the file in error messages.
    public init(_ value: ConfigValue, source: String) throws {
        let r = try ConfigReader(value, source: source)
        name = try r.string("name", default: name)
        seed = try r.int("seed", default: seed, min: 0)
        if let m = r.value("model") {
            model = try ModelSpec(m, source: source)
            _ = try Model(spec: model, source: source)   // validates layer types, options and shapes now
        }
        if let ms = r.value("models") {
            guard r.value("model") == nil else { throw r.error("models", "give model (one) or models (several), not both") }
            let mr = try ConfigReader(ms, source: source, path: "models")
            for e in mr.entries {
                let spec = try ModelSpec(mr.value(e.key)!, source: source, path: "models.\(e.key)")
                _ = try Model(spec: spec, source: source)
                models.append(NamedModel(e.key, spec))
            }
            try mr.finish()
            guard !models.isEmpty else { throw r.error("models", "expected a mapping of names to models") }
            model = models[0].spec
        }

        data = try DataConfig(try r.section("data"))

        let t = try r.section("train")
        train.epochs = try t.int("epochs", default: train.epochs, min: 1)
        train.maxSteps = try t.int("max_steps", default: 0, min: 0)
        train.batchSize = try t.int("batch_size", default: train.batchSize, min: 1)
        let loss = try t.optionalChoice("loss", LossKind.self)
        train.evalBatchSize = try t.int("eval_batch_size", default: train.evalBatchSize, min: 1)
        train.logEvery = try t.int("log_every", default: train.logEvery, min: 0)
        train.accumulationSteps = try t.int("accumulation_steps", default: train.accumulationSteps, min: 1)
        train.checkEvery = try t.int("check_every", default: train.checkEvery, min: 0)
        train.labelSmoothing = try t.double("label_smoothing", default: train.labelSmoothing, min: 0, max: 1)
        train.huberDelta = try t.double("huber_delta", default: train.huberDelta, min: 1e-9)
        train.clipGradNorm = try t.double("clip_grad_norm", default: train.clipGradNorm, min: 0)
        train.clipGradValue = try t.double("clip_grad_value", default: train.clipGradValue, min: 0)
        train.onNaN = try t.choice("on_nan", default: train.onNaN)
        train.syncBatchNorm = try t.bool("sync_batchnorm", default: train.syncBatchNorm)
        train.freeze = try ParameterGroupsConfig.freeze(t)
        train.earlyStopping = try MetricGoal.read(t, "early_stopping", earlyStopping: true)
        try t.finish()
        try parseTask(r, loss: loss, t)

        let sc = try r.section("scaling")
        scaling.rule = try sc.choice("rule", default: scaling.rule)
        scaling.baseBatch = try sc.int("base_batch", default: scaling.baseBatch, min: 1)
        scaling.warmupEpochs = try sc.double("warmup_epochs", default: scaling.warmupEpochs, min: 0)
        scaling.warmupSteps = try sc.int("warmup_steps", default: scaling.warmupSteps, min: 0)
        if scaling.warmupEpochs > 0 && scaling.warmupSteps > 0 {
            throw sc.error("warmup_steps", "give warmup_epochs or warmup_steps, not both")
        }
        try sc.finish()

        let cm = try r.section("comm")
        comm.bucketBytes = Int(try cm.double("bucket_mb", default: Double(comm.bucketBytes) / 1_048_576, min: 0.001) * 1_048_576)
        comm.timeout = try cm.double("timeout", default: comm.timeout, min: 0.1)
        comm.heartbeat = try cm.double("heartbeat", default: comm.heartbeat, min: 0.05)
        comm.heartbeatTimeout = try cm.double("heartbeat_timeout", default: comm.heartbeatTimeout, min: 0.2)
        comm.transport = try cm.choice("transport", default: comm.transport)
        comm.compression = try cm.choice("compression", default: comm.compression)
        if comm.heartbeatTimeout <= comm.heartbeat {
            throw cm.error("heartbeat_timeout", "must be longer than heartbeat (\(comm.heartbeat) s)")
        }
        try cm.finish()

        let o = try r.section("optimizer")
        optimizer.type = try o.choice("type", default: optimizer.type)
        let typeDefaults = Optimizer.defaults(optimizer.type)
        optimizer.lr = try o.double("lr", default: typeDefaults.lr, min: 0)
        optimizer.momentum = try o.double("momentum", default: typeDefaults.momentum, min: 0, max: 1)
        optimizer.eps = try o.double("eps", default: typeDefaults.eps, min: 0)
        optimizer.alpha = try o.double("alpha", default: optimizer.alpha, min: 0, max: 1)
        optimizer.centered = try o.bool("centered", default: optimizer.centered)
        optimizer.lrDecay = try o.double("lr_decay", default: optimizer.lrDecay, min: 0)
        if let b = o.value("betas") {
            guard case .list(let l) = b, l.count == 2, let b1 = l[0].number, let b2 = l[1].number,
                  (0..<1).contains(b1), (0..<1).contains(b2) else {
                throw o.error("betas", "expected two numbers in [0, 1), found \(b.summary)")
            }
            optimizer.betas = [b1, b2]
        }
        optimizer.dampening = try o.double("dampening", default: optimizer.dampening, min: 0, max: 1)
        optimizer.nesterov = try o.bool("nesterov", default: optimizer.nesterov)
        optimizer.weightDecay = try o.double("weight_decay", default: typeDefaults.weightDecay, min: 0)
        optimizer.decay = try o.choice("decay", default: optimizer.decay)
        optimizer.groups = try ParameterGroupsConfig.groups(o)
        if optimizer.nesterov && (optimizer.momentum == 0 || optimizer.dampening != 0) {
            throw o.error("nesterov", "Nesterov momentum needs momentum > 0 and dampening = 0")
        }
        try o.finish()

        let s = try r.section("schedule")
        schedule.type = try s.choice("type", default: schedule.type)
        schedule.minFactor = try s.double("min_factor", default: schedule.minFactor, min: 0, max: 1)
        schedule.stepEpochs = try s.int("step_epochs", default: schedule.stepEpochs, min: 1)
        schedule.gamma = try s.double("gamma", default: schedule.gamma, min: 0, max: 1)
        schedule.warmupEpochs = try s.double("warmup_epochs", default: schedule.warmupEpochs, min: 0)
        schedule.patience = try s.int("patience", default: schedule.patience, min: 0)
        schedule.threshold = try s.double("threshold", default: schedule.threshold, min: 0)
        try s.finish()

        let c = try r.section("checkpoint")
        checkpoint.dir = try c.string("dir", default: checkpoint.dir)
        checkpoint.everySteps = try c.int("every_steps", default: checkpoint.everySteps, min: 0)
        checkpoint.keep = try c.int("keep", default: checkpoint.keep, min: 1)
        checkpoint.best = try MetricGoal.read(c, "best", earlyStopping: false)
        checkpoint.onError = try c.choice("on_error", default: checkpoint.onError)
        try c.finish()
        try r.finish()
    }

    /// The `task:` key (a name or a mapping), checked against the loss.
    mutating func parseTask(_ r: ConfigReader, loss: LossKind?, _ t: ConfigReader) throws {
        var kind: TaskKind?
        if let v = r.value("task") {
            if case .string = v {
                kind = try r.requiredChoice("task", TaskKind.self)
            } else {
                let tr = try r.section("task")
                kind = try tr.requiredChoice("type", TaskKind.self)
                task.low = try tr.double("low", default: task.low)
                task.high = try tr.double("high", default: task.high)
                if task.high <= task.low { throw tr.error("high", "must be greater than low (\(task.low))") }
                task.rate = try tr.choice("rate", default: task.rate)
                task.topK = try tr.int("top_k", default: task.topK, min: 1)
                task.nsp = try tr.bool("nsp", default: task.nsp)
                task.maskRate = try tr.double("mask_rate", default: task.maskRate, min: 0.01, max: 0.9)
                task.masking = try tr.choice("masking", default: task.masking)
                try tr.finish()
            }
        }
        task.kind = kind ?? loss.map(TaskKind.implied) ?? .classification
        train.loss = loss ?? task.kind.defaultLoss
        guard task.kind.losses.contains(train.loss) else {
            throw t.error("loss", "the \(task.kind.rawValue) task takes \(task.kind.losses.map(\.rawValue).joined(separator: " or ")), not \(train.loss.rawValue)")
        }
        if train.labelSmoothing > 0 && train.loss != .crossEntropy {
            throw t.error("label_smoothing", "only applies to the cross_entropy loss")
        }
        if !data.augment.isIdentity && task.kind != .classification && data.augment.mixes {
            throw r.error("data.augment", "MixUp and CutMix mix class labels; they need the classification task")
        }
    }

    /// Reads a YAML job file.
    public static func load(path: String) throws -> JobConfig {
        let text = try FileIO.readText(path)
        return try JobConfig(try YAML.parse(text, source: path), source: path)
    }

    /// The full job as a tree (every field, defaults included), for checkpoints and hashing.
    public var configValue: ConfigValue {
        .object([
            "name": .string(name),
            "seed": .int(seed),
            "model": models.isEmpty ? model.configValue : .null,
            "models": models.isEmpty ? .null : .map(models.map { ConfigEntry(key: $0.name, value: $0.spec.configValue) }),
            "task": .object(["type": .string(task.kind.rawValue), "low": .double(task.low), "high": .double(task.high),
                             "rate": .string(task.rate.rawValue), "top_k": .int(task.topK), "nsp": .bool(task.nsp),
                             "mask_rate": .double(task.maskRate), "masking": .string(task.masking.rawValue)]),
            "data": data.configValue,
            "train": .object(["epochs": .int(train.epochs), "max_steps": .int(train.maxSteps), "batch_size": .int(train.batchSize),
                              "loss": .string(train.loss.rawValue), "huber_delta": .double(train.huberDelta),
                              "eval_batch_size": .int(train.evalBatchSize),
                              "log_every": .int(train.logEvery), "accumulation_steps": .int(train.accumulationSteps),
                              "check_every": .int(train.checkEvery), "label_smoothing": .double(train.labelSmoothing),
                              "clip_grad_norm": .double(train.clipGradNorm), "clip_grad_value": .double(train.clipGradValue),
                              "on_nan": .string(train.onNaN.rawValue), "sync_batchnorm": .bool(train.syncBatchNorm),
                              "freeze": ParameterGroupsConfig.value(train.freeze),
                              "early_stopping": train.earlyStopping?.configValue ?? .null]),
            "scaling": .object(["rule": .string(scaling.rule.rawValue), "base_batch": .int(scaling.baseBatch),
                                "warmup_epochs": .double(scaling.warmupEpochs), "warmup_steps": .int(scaling.warmupSteps)]),
            "comm": .object(["bucket_mb": .double(Double(comm.bucketBytes) / 1_048_576), "timeout": .double(comm.timeout),
                             "heartbeat": .double(comm.heartbeat), "heartbeat_timeout": .double(comm.heartbeatTimeout),
                             "transport": .string(comm.transport.rawValue), "compression": .string(comm.compression.rawValue)]),
            "optimizer": .object(["type": .string(optimizer.type.rawValue), "lr": .double(optimizer.lr),
                                  "momentum": .double(optimizer.momentum),
                                  "dampening": .double(optimizer.dampening),
                                  "nesterov": .bool(optimizer.nesterov),
                                  "weight_decay": .double(optimizer.weightDecay),
                                  "decay": .string(optimizer.decay.rawValue),
                                  "betas": .list(optimizer.betas.map { .double($0) }), "eps": .double(optimizer.eps),
                                  "alpha": .double(optimizer.alpha), "centered": .bool(optimizer.centered),
                                  "lr_decay": .double(optimizer.lrDecay),
                                  "groups": ParameterGroupsConfig.value(optimizer.groups)]),
            "schedule": .object(["type": .string(schedule.type.rawValue), "min_factor": .double(schedule.minFactor),
                                 "step_epochs": .int(schedule.stepEpochs), "gamma": .double(schedule.gamma),
                                 "warmup_epochs": .double(schedule.warmupEpochs), "patience": .int(schedule.patience),
                                 "threshold": .double(schedule.threshold)]),
            "checkpoint": .object(["dir": .string(checkpoint.dir), "every_steps": .int(checkpoint.everySteps),
                                   "keep": .int(checkpoint.keep), "best": checkpoint.best?.configValue ?? .null,
                                   "on_error": .string(checkpoint.onError.rawValue)]),
        ])
    }
}

extension JobConfig {
    /// A short stable fingerprint of the whole job (every field), to check that processes
    /// started with their own job files agree.
    public var hash: String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in JSON.string(configValue).utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return String(h, radix: 16)
    }

    /// The models this job trains, by name ("model" for a single-model job).
    public var namedModels: [NamedModel] { models.isEmpty ? [NamedModel("model", model)] : models }
}
