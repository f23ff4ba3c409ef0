import ArgumentParser
import NN
import TensorCore
import Train

/// Per-layer forward/backward time of a model at a batch size, to see where a step goes.
struct BenchLayers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "layers", abstract: "Time each layer's forward and backward.")

    @Argument(help: "YAML job file (default: the built-in MLP job).") var job: String?
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Timed repetitions.") var reps = 200
    @Option(help: "OpenBLAS threads.") var threads: Int?

    func run() throws {
        if let t = threads { BLAS.threads = t }
        let j = try job.map { try JobConfig.load(path: $0) } ?? JobConfig()
        let model = try Model(spec: j.model)
        model.initialize(seed: 0)
        var rng = RNG(seed: 1)
        let x = Tensor(shape: [batch] + model.inputShape)
        for i in 0..<x.count { x[i] = rng.normal() }
        let layers = model.network.layers
        var inputs: [Tensor] = []
        var h = x
        for l in layers { inputs.append(h); h = l.forward(h, training: true) }
        let dy = Tensor(shape: h.shape)
        for i in 0..<dy.count { dy[i] = rng.normal() * 0.01 }
        var total = 0.0
        print("layer                     forward ms  backward ms")
        for (i, l) in layers.enumerated() {
            let out = l.forward(inputs[i], training: true)
            let g = i == layers.count - 1 ? dy : Tensor(shape: out.shape)
            let first = layers.firstIndex { !$0.namedParameters().isEmpty } ?? 0
            let need = i > first
            for _ in 0..<10 { _ = l.forward(inputs[i], training: true); _ = l.backward(g, needInputGrad: need) }
            var t0 = monotonicSeconds()
            for _ in 0..<reps { _ = l.forward(inputs[i], training: true) }
            let f = (monotonicSeconds() - t0) / Double(reps)
            t0 = monotonicSeconds()
            for _ in 0..<reps { _ = l.backward(g, needInputGrad: need) }
            let b = (monotonicSeconds() - t0) / Double(reps)
            total += f + b
            let name = "\(i) \(type(of: l))".padding(24)
            print("\(name)  \(fmt(f * 1e3, 4))      \(fmt(b * 1e3, 4))")
        }
        print("total ms per step: \(fmt(total * 1e3, 4))  (\(Int(Double(batch) / total)) samples/s upper bound)")
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

/// `ringtrain summary [JOB.yaml]`: layers, output shapes, parameters, FLOPs.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Print each layer's output shape, parameters and forward FLOPs (per sample), with totals.")

    @Argument(help: "YAML job file (default: the built-in MLP job).") var job: String?
    @Option(help: "A zoo model instead of a job file (mlp, cnn, cnn_bn, resnet_small, …).") var model: String?

    func run() throws {
        let spec: ModelSpec
        if let m = model {
            guard let s = ModelSpec.zoo[m] else {
                throw ValidationError("unknown model \(m) (known: \(ModelSpec.zoo.keys.sorted().joined(separator: ", ")))")
            }
            spec = s
        } else {
            spec = try wrapErrors { try job.map { try JobConfig.load(path: $0) } ?? JobConfig() }.model
        }
        let m = try wrapErrors { try Model(spec: spec) }
        print("input \(spec.input)")
        print(ModelSummary(m).text)
    }
}
