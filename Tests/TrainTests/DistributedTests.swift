import Comm
import Config
import NN
import TensorCore
import TestSupport
import Testing
import Train

/// A job on synthetic data with `samples` training samples.
func syntheticJob(_ dir: String, samples: Int, batch: Int, epochs: Int = 1) throws -> (JobConfig, JobData) {
    try Fixtures.writeSyntheticFashionMNIST(dir, train: samples, test: 200)
    var job = JobConfig()
    job.name = "ddp"
    job.data.path = dir
    job.model = ModelSpec(input: [1, 28, 28], layers: [.string("flatten"),
        .object(["type": .string("linear"), "out": .int(32)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(10)])])
    job.train.epochs = epochs
    job.train.batchSize = batch
    job.train.logEvery = 0
    job.train.checkEvery = 10
    job.scaling.baseBatch = 128
    job.schedule.type = .constant
    job.comm.bucketBytes = 16 << 10     // several buckets for this small model
    job.comm.timeout = 20
    return (job, try JobData.load(job))
}

/// Losses of the first `steps` steps, as seen by rank 0, with `world` in-process ranks.
/// `inPlace`: gradients in shared buffers all-reduced in place (the default on one host), or
/// private gradients through the ring. `hosts[r]`: the host rank r acts as (hierarchical
/// all-reduce when there are several).
func losses(_ job: JobConfig, _ data: JobData, world: Int, steps: Int, accumulation: Int = 1,
            inPlace: Bool = true, compression: RingCommunicator.Options.Compression = .none,
            hosts: [Int]? = nil) throws -> [Float] {
    var j = job
    j.train.batchSize = job.train.batchSize / world / accumulation
    j.train.accumulationSteps = accumulation
    let ring = world == 1 ? [] : try localRing(world, options: .init(timeout: 20, sharedBuffers: inPlace, compression: compression),
                                               hosts: hosts)
    #expect(ring.allSatisfy { $0.sharesBuffers == inPlace })
    #expect(ring.allSatisfy { $0.isHierarchical == (inPlace && Set(hosts ?? [0]).count > 1) })
    let comms: [Communicator] = world == 1 ? [LocalCommunicator()] : ring
    let results = concurrently(world) { r -> [Float] in
        let t = try Trainer(job: j, data: data, comm: comms[r], log: { _ in })
        // Gradients live in the communicator's shared buffer exactly when it reduces in place.
        #expect(t.model.grads.storage.isExternal == (world > 1 && inPlace))
        var seen: [Float] = []
        t.onStep = { _, l in seen.append(l) }
        t.stopAtStep = steps
        _ = try t.run()
        return seen
    }
    let all = try results.map { try $0.get() }
    for other in all.dropFirst() { #expect(other == all[0], "every rank sees the same averaged loss") }
    return all[0]
}

@Test(.timeLimit(.minutes(10)), arguments: [true, false])
func dataParallelMatchesSingleNodeStepForStep(inPlace: Bool) throws {
    let dir = Fixtures.tempDirectory("ddp")
    let (job, data) = try syntheticJob(dir, samples: 128 * 50, batch: 128)
    let single = try losses(job, data, world: 1, steps: 50)
    #expect(single.count == 50)
    for (world, accumulation) in [(2, 1), (4, 1), (2, 2)] {
        let ddp = try losses(job, data, world: world, steps: 50, accumulation: accumulation, inPlace: inPlace)
        #expect(ddp.count == 50)
        let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
        #expect(worst <= 1e-4, "world \(world) × accumulation \(accumulation), in place \(inPlace): worst relative difference \(worst)")
    }
}

/// Gradients all-reduced hierarchically (in place per host, rings across hosts) train exactly
/// like one process: equal hosts, unequal hosts (3 + 2: two lanes, one rank only waits), and
/// hosts of 2 + 1 (one lane, a host of one).
@Test(.timeLimit(.minutes(10)), arguments: [[0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1]])
func dataParallelAcrossHostsMatchesSingleNode(hosts: [Int]) throws {
    let dir = Fixtures.tempDirectory("ddp-hosts")
    let (job, data) = try syntheticJob(dir, samples: 120 * 30, batch: 120)
    let single = try losses(job, data, world: 1, steps: 30)
    let ddp = try losses(job, data, world: hosts.count, steps: 30, hosts: hosts)
    #expect(ddp.count == 30)
    let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(worst <= 1e-4, "hosts \(hosts): worst relative difference \(worst)")
}

/// bf16 gradients on the ring: replicas stay identical (the trainer's checksum every 10 steps
/// would stop the run) and the losses follow the exact run closely.
@Test(.timeLimit(.minutes(10)))
func compressedGradientsTrainLikeExactOnes() throws {
    let dir = Fixtures.tempDirectory("ddpbf16")
    let (job, data) = try syntheticJob(dir, samples: 128 * 50, batch: 128)
    let exact = try losses(job, data, world: 2, steps: 50, inPlace: false)
    let bf16 = try losses(job, data, world: 2, steps: 50, inPlace: false, compression: .bf16)
    #expect(bf16.count == 50)
    let worst = zip(exact, bf16).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(worst <= 0.02 && worst > 0, "worst relative difference \(worst)")
}

@Test(.timeLimit(.minutes(10)))
func dataParallelCNNMatchesSingleNode() throws {
    let dir = Fixtures.tempDirectory("ddpcnn")
    var (job, data) = try syntheticJob(dir, samples: 32 * 20, batch: 32)
    job.model = ModelSpec(input: [1, 28, 28], layers: [
        .object(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1]), "relu", "maxpool",
        .object(["type": "conv2d", "out": 8, "kernel": 3, "stride": 2]), "relu", "flatten",
        .object(["type": "linear", "out": 10])])
    job.scaling.baseBatch = 32
    let single = try losses(job, data, world: 1, steps: 20)
    let ddp = try losses(job, data, world: 2, steps: 20)
    let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(single.count == 20 && worst <= 1e-4, "worst relative difference \(worst)")
}

@Test(.timeLimit(.minutes(10)))
func syncBatchNormMakesDataParallelMatchSingleNode() throws {
    let dir = Fixtures.tempDirectory("syncbn")
    var (job, data) = try syntheticJob(dir, samples: 32 * 20, batch: 32)
    job.model = ModelSpec(input: [1, 28, 28], layers: [
        .object(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "bias": false]), "batchnorm", "relu", "maxpool",
        .object(["type": "conv2d", "out": 8, "kernel": 3, "stride": 2]), "batchnorm", "relu", "flatten",
        .object(["type": "linear", "out": 10])])
    job.scaling.baseBatch = 32
    job.train.syncBatchNorm = true
    let single = try losses(job, data, world: 1, steps: 20)
    let ddp = try losses(job, data, world: 2, steps: 20)
    let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(single.count == 20 && worst <= 1e-4, "worst relative difference \(worst)")
    // Without synchronisation each rank normalises its own half-batch: the losses differ.
    job.train.syncBatchNorm = false
    let local = try losses(job, data, world: 2, steps: 20)
    #expect(zip(single, local).contains { abs($0 - $1) / max(abs($0), 1e-6) > 1e-3 })
}

@Test func gradientBucketsCoverTheArenaInBackwardOrder() throws {
    let dir = Fixtures.tempDirectory("buckets")
    var (job, data) = try syntheticJob(dir, samples: 256, batch: 32)
    job.model = ModelSpec(input: [1, 28, 28], layers: [.string("flatten"),
        .object(["type": .string("linear"), "out": .int(64)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(64)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(10)])])
    let t = try Trainer(job: job, data: data, log: { _ in })
    // Layer ranges in the arena: last layer first.
    let ranges = t.model.layerRanges
    #expect(ranges[5]!.lowerBound == 0)
    #expect(ranges[5]!.upperBound <= ranges[3]!.lowerBound && ranges[3]!.upperBound <= ranges[1]!.lowerBound)
    #expect(ranges[0] == nil && ranges[2] == nil)
}

@Test func linearScalingRuleAndWarmup() throws {
    let dir = Fixtures.tempDirectory("lr")
    var (job, data) = try syntheticJob(dir, samples: 1024, batch: 64, epochs: 4)
    job.optimizer.lr = 0.1
    job.scaling.baseBatch = 32
    job.scaling.warmupEpochs = 1
    let t = try Trainer(job: job, data: data, log: { _ in })
    #expect(t.stepsPerEpoch == 16 && t.warmupSteps == 16)
    #expect(abs(t.scaledLR - 0.2) < 1e-12)
    #expect(abs(t.learningRate(step: 0) - 0.1) < 1e-12)
    #expect(abs(t.learningRate(step: 8) - 0.15) < 1e-12)
    #expect(abs(t.learningRate(step: 16) - 0.2) < 1e-12)          // constant schedule after warmup
    #expect(t.lrDescription.contains("lr 0.1 × 64/32 = 0.20000 (linear scaling rule), warmup 16 steps"))
    #expect(!t.lrDescription.contains("note:"))
    // ×8 with no warmup: the start line says so (a ×2 factor does not).
    job.scaling.baseBatch = 8
    job.scaling.warmupEpochs = 0
    let big = try Trainer(job: job, data: data, log: { _ in })
    #expect(big.lrDescription.contains("note: the linear scaling rule multiplies lr by 8.0 with no warmup; set scaling.warmup_epochs"),
            "\(big.lrDescription)")
    job.scaling.baseBatch = 32
    #expect(try !Trainer(job: job, data: data, log: { _ in }).lrDescription.contains("note:"))
    job.scaling.rule = .none
    let u = try Trainer(job: job, data: data, log: { _ in })
    #expect(u.scaledLR == 0.1 && u.lrDescription.contains("scaling rule off"))
}

@Test(.timeLimit(.minutes(10)))
func checkpointFromTwoWorkersResumesOnOne() throws {
    let dir = Fixtures.tempDirectory("reshard")
    var (job, data) = try syntheticJob(dir, samples: 64 * 12, batch: 64, epochs: 2)
    job.train.batchSize = 32                       // per worker: 2 × 32 = global 64
    let ring = try localRing(2, options: .init(timeout: 20))
    let saved = concurrently(2) { r -> String in
        let t = try Trainer(job: job, data: data, comm: ring[r], log: { _ in })
        t.stopAtStep = 5
        _ = try t.run()
        try t.saveCheckpoint("\(dir)/ck")
        return "\(dir)/ck/\(Checkpoint.fileName(step: 5))"
    }
    let path = try saved[0].get()
    let c = try Checkpoint.load(path)
    #expect(c.worldSize == 2 && c.state == TrainState(epoch: 0, stepInEpoch: 5, globalStep: 5))
    // One worker with the whole global batch continues at the same sample (5 × 64 = 320).
    var single = job
    single.train.batchSize = 64
    let t = try Trainer(job: single, data: data, log: { _ in })
    try t.restore(c)
    #expect(t.state == TrainState(epoch: 0, stepInEpoch: 5, globalStep: 5))
    // …and trains on as an uninterrupted single process would: the same losses after step 5.
    var resumed: [Float] = []
    t.onStep = { _, l in resumed.append(l) }
    _ = try t.run()
    let reference = try Trainer(job: single, data: data, log: { _ in })
    var full: [Float] = []
    reference.onStep = { _, l in full.append(l) }
    _ = try reference.run()
    #expect(resumed.count == full.count - 5)
    let worst = zip(resumed, full.dropFirst(5)).map { abs($0 - $1) / max(abs($1), 1e-6) }.max() ?? 1
    #expect(worst <= 1e-4, "resumed on one vs uninterrupted: worst relative difference \(worst)")
    // Four workers of 16: the same position.
    var four = job
    four.train.batchSize = 16
    let ring4 = try localRing(4, options: .init(timeout: 20))
    let states = concurrently(4) { r -> (TrainState, [Float]) in
        let t = try Trainer(job: four, data: data, comm: ring4[r], log: { _ in })
        try t.restore(try Checkpoint.loadShared(path, comm: ring4[r]))
        let at = t.state
        var seen: [Float] = []
        t.onStep = { _, l in seen.append(l) }
        _ = try t.run()
        return (at, seen)
    }
    for s in states {
        let (at, seen) = try s.get()
        #expect(at == TrainState(epoch: 0, stepInEpoch: 5, globalStep: 5))
        let worst = zip(seen, full.dropFirst(5)).map { abs($0 - $1) / max(abs($1), 1e-6) }.max() ?? 1
        #expect(seen.count == full.count - 5 && worst <= 1e-4, "resumed on four: worst relative difference \(worst)")
    }
}

/// A frozen first layer (its backward skipped, its buckets all-reduced as zeros) trains the
/// same with two ranks as in one process.
@Test(.timeLimit(.minutes(10)))
func frozenLayersTrainAlikeDataParallel() throws {
    let dir = Fixtures.tempDirectory("ddp-freeze")
    var (job, data) = try syntheticJob(dir, samples: 128 * 20, batch: 128)
    job.train.freeze = [Freeze(patterns: ["1.*"])]
    job.optimizer.groups = [ParameterGroup(patterns: ["3.bias"], lrScale: 3)]
    let single = try losses(job, data, world: 1, steps: 20)
    let ddp = try losses(job, data, world: 2, steps: 20)
    let worst = zip(single, ddp).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 1
    #expect(single.count == 20 && worst <= 1e-4, "worst relative difference \(worst)")
}

/// The learning-rate schedule follows the samples seen: a checkpoint of one world size resumed
/// with another goes on at the lr an uninterrupted run of the new size has at that point, and
/// ends where that run ends — one worker → two and two → one.
@Test(.timeLimit(.minutes(10)), arguments: [(1, 2), (2, 1)])
func scheduleFollowsSamplesAcrossWorldSizes(from: Int, to: Int) throws {
    let dir = Fixtures.tempDirectory("lr-reshard")
    var (job, data) = try syntheticJob(dir, samples: 64 * 24, batch: 64, epochs: 4)
    job.schedule.type = .cosine
    job.scaling.baseBatch = 64
    job.scaling.warmupEpochs = 1
    func trainers(_ world: Int) throws -> [Trainer] {
        let comms: [Communicator] = world == 1 ? [LocalCommunicator()] : try localRing(world, options: .init(timeout: 20))
        return try concurrently(world) { r in try Trainer(job: job, data: data, comm: comms[r], log: { _ in }) }.map { try $0.get() }
    }
    // Two epochs at the old size, a checkpoint at the end of the second.
    let old = try trainers(from)
    let saved = concurrently(from) { r -> String in
        old[r].stopAtStep = 2 * old[r].stepsPerEpoch
        _ = try old[r].run()
        try old[r].saveCheckpoint("\(dir)/ck-\(from)")
        return "\(dir)/ck-\(from)/\(Checkpoint.fileName(step: old[r].state.globalStep))"
    }
    let path = try saved[0].get()
    // The uninterrupted run at the new size, and the resumed one.
    let reference = try trainers(to)[0]
    let resumed = try trainers(to)
    let steps = concurrently(to) { r -> (TrainState, [Double]) in
        try resumed[r].restore(try Checkpoint.loadShared(path, comm: resumed[r].comm))
        let at = resumed[r].state
        var lrs: [Double] = []
        resumed[r].onStep = { s, _ in lrs.append(resumed[r].learningRate(step: s.globalStep - 1)) }
        _ = try resumed[r].run()
        return (at, lrs)
    }
    let (at, lrs) = try steps[0].get()
    let per = reference.stepsPerEpoch
    #expect(at == TrainState(epoch: 2, stepInEpoch: 0, globalStep: 2 * per), "\(at), \(per) steps per epoch")
    // Every step from there on at the uninterrupted run's lr, to its last.
    let want = (2 * per..<reference.totalSteps).map { reference.learningRate(step: $0) }
    #expect(lrs.count == want.count && zip(lrs, want).allSatisfy { abs($0 - $1) <= 1e-12 }, "\(lrs.prefix(4)) vs \(want.prefix(4))")
    #expect(resumed[0].state.globalStep == reference.totalSteps && (lrs.last ?? 1) < 0.01 * reference.scaledLR)
}
