import Comm
import Config
import Datasets
import Formats
import NN
import TensorCore
import TestSupport
import Testing
import Train

/// A task whose step is not one forward/backward of one model: a GAN trains a discriminator
/// on real and generated samples, then the generator through the discriminator, each with
/// its own optimizer, gradients averaged across ranks, and noise from the runner's per-rank
/// stream. Written here against the public `Task` seam only, as a generative-model family would be.
final class GANTask: Task {
    let name = "gan"
    var targetEncoding: TargetEncoding { .none }
    let noiseWidth: Int
    private let bce = SigmoidBinaryCrossEntropy()
    private let noise = Tensor.workspace(), fake = Tensor.workspace()
    private let ones = Tensor.workspace(), zeros = Tensor.workspace(), grad = Tensor.workspace()

    init(noiseWidth: Int) { self.noiseWidth = noiseWidth }

    func check(_ runner: StepRunner, data: JobData) throws {
        guard let g = runner["generator"], let d = runner["discriminator"] else {
            throw TrainError("the gan task trains models named generator and discriminator")
        }
        guard g.model.inputShape == [noiseWidth], g.model.outputShape == data.train.input.shape,
              d.model.inputShape == data.train.input.shape, d.model.outputShape == [1] else {
            throw TrainError("gan: generator \(g.model.inputShape) → \(g.model.outputShape), discriminator \(d.model.inputShape) → \(d.model.outputShape) do not fit samples \(data.train.input.shape)")
        }
    }

    private func draw(_ n: Int, _ rng: inout RNG) {
        noise.resize([n, noiseWidth])
        for i in 0..<noise.count { noise[i] = rng.normal() }
        for t in [ones, zeros] { t.resize([n, 1]) }
        ones.fill(1)
        zeros.fill(0)
    }

    func step(_ batch: Batch, _ run: StepRunner) throws -> Float {
        let g = run["generator"]!, d = run["discriminator"]!, n = batch.count
        draw(n, &run.random)
        // Discriminator: real → 1, generated → 0; one all-reduce after both backwards.
        d.model.zeroGrad()
        fake.resize([n] + g.model.outputShape)
        fake.copy(from: g.model.forward(noise, training: true))
        let real = bce.compute(d.forward(batch, training: true), .values(ones), grad: grad)
        d.backward(grad, reduceWithLoss: nil)
        let fakeLoss = bce.compute(d.model.forward(fake, training: true), .values(zeros), grad: grad)
        d.backward(grad, reduceWithLoss: real + fakeLoss)
        let dLoss = try d.finishReduce(localLoss: real + fakeLoss)
        try run.apply(d, loss: dLoss)
        // Generator: make the discriminator say 1, through its input gradient.
        g.model.zeroGrad()
        let out = g.model.forward(noise, training: true)
        let gLoss = bce.compute(d.model.forward(out, training: true), .values(ones), grad: grad)
        let dx = d.model.inputGradient(grad)!
        g.backward(dx, reduceWithLoss: gLoss)
        try run.apply(g, loss: try g.finishReduce(localLoss: gLoss))
        return dLoss
    }

    /// sums: [Σ generated, Σ generated², real judged real, generated judged generated]
    func makeMetrics() -> MetricSums { MetricSums(count: 4) }

    func evaluate(_ batch: Batch, _ run: StepRunner, into m: MetricSums) {
        let g = run["generator"]!, d = run["discriminator"]!, n = batch.count
        var rng = RNG(seed: UInt64(m.count), stream: "gan-eval")
        draw(n, &rng)
        let real = d.forward(batch, training: false)
        for i in 0..<n where real[i] > 0 { m[2] += 1 }
        let out = g.model.forward(noise, training: false)
        for i in 0..<n { m[0] += Double(out[i]); m[1] += Double(out[i] * out[i]) }
        let judged = d.model.forward(out, training: false)
        for i in 0..<n where judged[i] <= 0 { m[3] += 1 }
        m.add(samples: n, meanLoss: 0, terms: n)
    }

    func finish(_ m: MetricSums) -> [Metric] {
        let n = max(m.count, 1), mean = m[0] / n
        return [Metric("gen_mean", mean), Metric("gen_std", (max(m[1] / n - mean * mean, 0)).squareRoot()),
                Metric("d_acc", (m[2] + m[3]) / (2 * n))]
    }
}

func ganJob(_ dir: String, epochs: Int) throws -> JobConfig {
    var rng = RNG(seed: 13)
    try FileIO.writeAtomically("\(dir)/real.npy", bytes: NPY.image(floats: (0..<2048).map { _ in 3 + 0.5 * rng.normal() }, shape: [2048, 1]))
    let yaml = """
        name: gan
        models:
          generator: {input: [2], layers: [{type: linear, out: 16}, relu, {type: linear, out: 1}]}
          discriminator: {input: [1], layers: [{type: linear, out: 16}, leaky_relu, {type: linear, out: 1}]}
        task: reconstruction
        data: {train: \(dir)/real.npy, normalize: none, test_fraction: 0.125}
        train: {epochs: \(epochs), batch_size: 64, log_every: 0, check_every: 4}
        optimizer: {type: adam, lr: 0.004, betas: [0.5, 0.999]}
        schedule: {type: constant}
        scaling: {rule: none}
        checkpoint: {dir: ""}
        """
    return try JobConfig(try YAML.parse(yaml, source: "gan.yaml"), source: "gan.yaml")
}

@Test(.timeLimit(.minutes(10)))
func ganTrainsTwoModelsInTurnThroughTheTaskSeam() throws {
    let dir = Fixtures.tempDirectory("gan")
    let job = try ganJob(dir, epochs: 25)
    #expect(job.namedModels.map(\.name) == ["generator", "discriminator"])
    let data = try JobData.load(job, targets: TargetEncoding.none)
    let t = try Trainer(job: job, data: data, task: GANTask(noiseWidth: 2), log: { _ in })
    #expect(t.replicas.map(\.name) == ["generator", "discriminator"])
    let before = try t.evaluate(data.test!)
    let s = try t.run()
    let after = try #require(s.lastEvaluation)
    // The generator moved its samples from around 0 to the real mean 3 (std 0.5).
    #expect(abs((before["gen_mean"] ?? 0) - 3) > 2, "\(before.line)")
    #expect(abs((after["gen_mean"] ?? 0) - 3) < 0.5 && (after["gen_std"] ?? 0) < 1.5, "\(after.line)")
    // Both optimizers stepped every step.
    #expect(t.replicas.allSatisfy { $0.optimizer.stepCount == s.state.globalStep })

    // Checkpoints name each model's tensors by its model, and restore both.
    try t.saveCheckpoint("\(dir)/ck")
    let path = "\(dir)/ck/\(Checkpoint.fileName(step: s.state.globalStep))"
    let names = Set(try SafeTensors.read(path: path).tensors.map(\.name))
    #expect(names.contains("generator.0.weight") && names.contains("discriminator.2.bias")
            && names.contains("optimizer.exp_avg.generator.0.weight") && !names.contains("0.weight"), "\(names.sorted())")
    let u = try Trainer(job: job, data: data, task: GANTask(noiseWidth: 2), log: { _ in })
    try u.restore(try Checkpoint.load(path))
    #expect(zip(t.replicas, u.replicas).allSatisfy { $0.model.values.checksum() == $1.model.values.checksum() })
    #expect(u.replicas.allSatisfy { $0.optimizer.stepCount == s.state.globalStep })
    #expect(u.runner.random == t.runner.random, "the task's noise stream resumes where it was")
}

/// Two ranks train the GAN data-parallel: each draws its own noise, gradients of both models
/// are averaged, and the trainer's replica checksum (every 4 steps) finds them identical.
@Test(.timeLimit(.minutes(10)))
func ganTrainsDataParallel() throws {
    let dir = Fixtures.tempDirectory("gan-ddp")
    var job = try ganJob(dir, epochs: 2)
    job.train.batchSize = 32
    let data = try JobData.load(job, targets: TargetEncoding.none)
    let ring = try localRing(2, options: .init(timeout: 20))
    let results = concurrently(2) { r -> (UInt64, UInt64) in
        let t = try Trainer(job: job, data: data, comm: ring[r], task: GANTask(noiseWidth: 2), log: { _ in })
        _ = try t.run()
        return (t.replicas[0].model.values.checksum(), t.replicas[1].model.values.checksum())
    }
    let sums = try results.map { try $0.get() }
    #expect(sums[0] == sums[1])
}
