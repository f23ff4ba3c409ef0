import Config
import Datasets
import Formats
import NN

/// A training job: what to train, on what, and how. Read from a YAML job file (or from a
/// checkpoint's metadata, as JSON) with every key validated; unknown keys are errors.
public struct JobConfig: Equatable, Sendable {
    public var name = "fmnist-mlp"
    public var seed = 0
    public var model = ModelSpec.mlp

    public struct Data: Equatable, Sendable {
        public var dataset = "fashion-mnist"
        public var path = FashionMNIST.defaultDirectory
        /// Scale features to zero mean and unit variance (statistics of the training split).
        public var normalize = true
        /// Training-time augmentation (image datasets).
        public var augment = Augmentation()
    }
    public var data = Data()

    public struct Train: Equatable, Sendable {
        public var epochs = 10
        /// Per-worker batch size (the whole batch in single-node mode).
        public var batchSize = 128
        public var loss = "cross_entropy"
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
        public var onNaN = "stop"
        /// Data-parallel runs: BatchNorm statistics over the global batch (SyncBatchNorm)
        /// instead of each rank's own.
        public var syncBatchNorm = false
    }
    public var train = Train()

    /// Large-batch training: the linear scaling rule and gradual warmup (Goyal et al. 2017).
    public struct Scaling: Equatable, Sendable {
        /// linear: lr = optimizer.lr × global_batch / base_batch; none: lr as given.
        public var rule = "linear"
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
        public var transport = "auto"
        /// none, or bf16: gradient buckets travel the ring as bfloat16 (half the bytes).
        public var compression = "none"
    }
    public var comm = Comm()

    public struct Optimizer: Equatable, Sendable {
        public var type = "sgd"
        public var lr = 0.05
        public var momentum = 0.9
        public var dampening = 0.0
        public var nesterov = false
        public var weightDecay = 0.0
        /// Adam/AdamW β₁, β₂; ε for Adam, AdamW, RMSprop, AdaGrad.
        public var betas = [0.9, 0.999]
        public var eps = 1e-8
        /// RMSprop smoothing α and centering; AdaGrad lr decay.
        public var alpha = 0.99
        public var centered = false
        public var lrDecay = 0.0

        /// torch.optim's default learning rate and weight decay for each type (SGD: this project's default job).
        static let defaults: [String: (lr: Double, weightDecay: Double, momentum: Double, eps: Double)] = [
            "sgd": (0.05, 0, 0.9, 1e-8), "adagrad": (0.01, 0, 0, 1e-10), "rmsprop": (0.01, 0, 0, 1e-8),
            "adam": (0.001, 0, 0, 1e-8), "adamw": (0.001, 0.01, 0, 1e-8),
        ]
    }
    public var optimizer = Optimizer()

    public struct Schedule: Equatable, Sendable {
        /// constant | cosine | step | warmup_cosine | plateau
        public var type = "cosine"
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
        /// Directory for checkpoints; empty disables writing them.
        public var dir = "checkpoints"
        /// Also write one every this many steps (0: only at epoch ends).
        public var everySteps = 0
        /// How many recent checkpoints to keep.
        public var keep = 3
    }
    public var checkpoint = Checkpoint()

    public init() {}

    public static let losses = ["cross_entropy", "mse", "bce", "poisson_nll", "hinge", "perceptron"]
    public static let optimizers = ["sgd", "adagrad", "rmsprop", "adam", "adamw"]
    public static let schedules = ["constant", "cosine", "step", "warmup_cosine", "plateau"]

    /// Parses and validates a job; `source` names the file in error messages.
    public init(_ value: ConfigValue, source: String) throws {
        let r = try ConfigReader(value, source: source)
        name = try r.string("name", default: name)
        seed = try r.int("seed", default: seed, min: 0)
        if let m = r.value("model") {
            model = try ModelSpec(m, source: source)
            _ = try Model(spec: model, source: source)   // validates layer types, options and shapes now
        }

        let d = try r.section("data")
        data.dataset = try d.string("dataset", default: data.dataset, oneOf: ["fashion-mnist", "mnist"])
        data.path = try d.string("path", default: data.path)
        data.normalize = try d.bool("normalize", default: data.normalize)
        let a = try d.section("augment")
        data.augment.cropPadding = try a.int("crop_padding", default: 0, min: 0, max: 16)
        data.augment.flip = try a.bool("flip", default: false)
        data.augment.cutout = try a.int("cutout", default: 0, min: 0)
        data.augment.mixupAlpha = try a.double("mixup", default: 0, min: 0)
        data.augment.cutmixAlpha = try a.double("cutmix", default: 0, min: 0)
        try a.finish()
        try d.finish()

        let t = try r.section("train")
        train.epochs = try t.int("epochs", default: train.epochs, min: 1)
        train.batchSize = try t.int("batch_size", default: train.batchSize, min: 1)
        train.loss = try t.string("loss", default: train.loss, oneOf: Self.losses)
        train.evalBatchSize = try t.int("eval_batch_size", default: train.evalBatchSize, min: 1)
        train.logEvery = try t.int("log_every", default: train.logEvery, min: 0)
        train.accumulationSteps = try t.int("accumulation_steps", default: train.accumulationSteps, min: 1)
        train.checkEvery = try t.int("check_every", default: train.checkEvery, min: 0)
        train.labelSmoothing = try t.double("label_smoothing", default: train.labelSmoothing, min: 0, max: 1)
        if train.labelSmoothing > 0 && train.loss != "cross_entropy" {
            throw t.error("label_smoothing", "only applies to the cross_entropy loss")
        }
        train.clipGradNorm = try t.double("clip_grad_norm", default: train.clipGradNorm, min: 0)
        train.clipGradValue = try t.double("clip_grad_value", default: train.clipGradValue, min: 0)
        train.onNaN = try t.string("on_nan", default: train.onNaN, oneOf: ["stop", "skip"])
        train.syncBatchNorm = try t.bool("sync_batchnorm", default: train.syncBatchNorm)
        try t.finish()

        let sc = try r.section("scaling")
        scaling.rule = try sc.string("rule", default: scaling.rule, oneOf: ["linear", "none"])
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
        comm.transport = try cm.string("transport", default: comm.transport, oneOf: ["auto", "ring", "tcp"])
        comm.compression = try cm.string("compression", default: comm.compression, oneOf: ["none", "bf16"])
        if comm.heartbeatTimeout <= comm.heartbeat {
            throw cm.error("heartbeat_timeout", "must be longer than heartbeat (\(comm.heartbeat) s)")
        }
        try cm.finish()

        let o = try r.section("optimizer")
        optimizer.type = try o.string("type", default: optimizer.type, oneOf: Self.optimizers)
        let typeDefaults = Optimizer.defaults[optimizer.type]!
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
        if optimizer.nesterov && (optimizer.momentum == 0 || optimizer.dampening != 0) {
            throw o.error("nesterov", "Nesterov momentum needs momentum > 0 and dampening = 0")
        }
        try o.finish()

        let s = try r.section("schedule")
        schedule.type = try s.string("type", default: schedule.type, oneOf: Self.schedules)
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
        try c.finish()
        try r.finish()
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
            "model": model.configValue,
            "data": .object(["dataset": .string(data.dataset), "path": .string(data.path),
                             "normalize": .bool(data.normalize),
                             "augment": .object(["crop_padding": .int(data.augment.cropPadding), "flip": .bool(data.augment.flip),
                                                 "cutout": .int(data.augment.cutout), "mixup": .double(data.augment.mixupAlpha),
                                                 "cutmix": .double(data.augment.cutmixAlpha)])]),
            "train": .object(["epochs": .int(train.epochs), "batch_size": .int(train.batchSize),
                              "loss": .string(train.loss), "eval_batch_size": .int(train.evalBatchSize),
                              "log_every": .int(train.logEvery), "accumulation_steps": .int(train.accumulationSteps),
                              "check_every": .int(train.checkEvery), "label_smoothing": .double(train.labelSmoothing),
                              "clip_grad_norm": .double(train.clipGradNorm), "clip_grad_value": .double(train.clipGradValue),
                              "on_nan": .string(train.onNaN), "sync_batchnorm": .bool(train.syncBatchNorm)]),
            "scaling": .object(["rule": .string(scaling.rule), "base_batch": .int(scaling.baseBatch),
                                "warmup_epochs": .double(scaling.warmupEpochs), "warmup_steps": .int(scaling.warmupSteps)]),
            "comm": .object(["bucket_mb": .double(Double(comm.bucketBytes) / 1_048_576), "timeout": .double(comm.timeout),
                             "heartbeat": .double(comm.heartbeat), "heartbeat_timeout": .double(comm.heartbeatTimeout),
                             "transport": .string(comm.transport), "compression": .string(comm.compression)]),
            "optimizer": .object(["type": .string(optimizer.type), "lr": .double(optimizer.lr),
                                  "momentum": .double(optimizer.momentum),
                                  "dampening": .double(optimizer.dampening),
                                  "nesterov": .bool(optimizer.nesterov),
                                  "weight_decay": .double(optimizer.weightDecay),
                                  "betas": .list(optimizer.betas.map { .double($0) }), "eps": .double(optimizer.eps),
                                  "alpha": .double(optimizer.alpha), "centered": .bool(optimizer.centered),
                                  "lr_decay": .double(optimizer.lrDecay)]),
            "schedule": .object(["type": .string(schedule.type), "min_factor": .double(schedule.minFactor),
                                 "step_epochs": .int(schedule.stepEpochs), "gamma": .double(schedule.gamma),
                                 "warmup_epochs": .double(schedule.warmupEpochs), "patience": .int(schedule.patience),
                                 "threshold": .double(schedule.threshold)]),
            "checkpoint": .object(["dir": .string(checkpoint.dir), "every_steps": .int(checkpoint.everySteps),
                                   "keep": .int(checkpoint.keep)]),
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

    /// Where this job's checkpoints go ("" when disabled).
    public var checkpointDirectory: String {
        checkpoint.dir.isEmpty ? "" : "\(checkpoint.dir)/\(name)"
    }
}
