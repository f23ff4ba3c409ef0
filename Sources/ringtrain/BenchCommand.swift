import ArgumentParser
import NN
import TensorCore
import Train

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print figures comparable with the reference scripts.",
        subcommands: [BenchTrain.self, BenchLayers.self, BenchAllReduce.self, BenchConv.self])
}

/// Training throughput of a model on Fashion-MNIST, measured like
/// shared/anchors/torch_train.py: samples/s over the training loop only.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Single-process training throughput.")

    @Option(help: "Model from the zoo (mlp, cnn, cnn_bn, resnet_small, …).") var model = "mlp"
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Epochs to time (the first is included).") var epochs = 2
    @Option(help: "OpenBLAS threads.") var threads: Int?
    @Option(help: "Dataset directory.") var data: String?

    func run() throws {
        if let t = threads { BLAS.threads = t }
        var job = JobConfig()
        guard let spec = ModelSpec.zoo[model] else {
            throw ValidationError("unknown model \(model) (known: \(ModelSpec.zoo.keys.sorted().joined(separator: ", ")))")
        }
        job.model = spec
        job.scaling.rule = .none
        job.train.batchSize = batch
        job.train.epochs = epochs
        job.train.logEvery = 0
        job.schedule.type = .constant
        if let d = data { job.data.path = d }
        let d = try JobData.load(job)
        let trainer = try Trainer(job: job, data: d, log: { _ in })
        let s = try trainer.run()
        let acc = s.lastEvaluation.map { fmt($0.accuracy, 4) } ?? "-"
        print("RESULT ringtrain model=\(model) threads=\(BLAS.threads) batch=\(batch) samples_per_s=\(Int(s.samplesPerSecond)) test_acc=\(acc) params=\(trainer.model.parameterCount)")
    }
}
