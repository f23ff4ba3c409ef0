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
        // A model reading ids: random ids into its first layer, which is timed on them.
        var ids: IntTensor?
        if let e = layers.first as? IndexInputLayer, let v = (e as? Embedding)?.vocabulary {
            ids = IntTensor((0..<x.count).map { _ in Int32(rng.below(v)) }, shape: x.shape)
            h = e.forward(indices: ids!, training: true)
            inputs.append(x)
        }
        for l in layers.dropFirst(ids == nil ? 0 : 1) { inputs.append(h); h = l.forward(h, training: true) }
        let dy = Tensor(shape: h.shape)
        for i in 0..<dy.count { dy[i] = rng.normal() * 0.01 }
        var total = 0.0
        print("layer                     forward ms  backward ms")
        for (i, l) in layers.enumerated() {
            let run = { () -> Tensor in
                if i == 0, let ids, let e = l as? IndexInputLayer { return e.forward(indices: ids, training: true) }
                return l.forward(inputs[i], training: true)
            }
            let out = run()
            let g = i == layers.count - 1 ? dy : Tensor(shape: out.shape)
            let first = layers.firstIndex { !$0.namedParameters().isEmpty } ?? 0
            let need = i > first
            for _ in 0..<10 { _ = run(); _ = l.backward(g, needInputGrad: need) }
            var t0 = monotonicSeconds()
            for _ in 0..<reps { _ = run() }
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

/// Conv2D forward/backward GFLOP/s next to one raw sgemm of the same forward product.
struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Conv2D and Linear GFLOP/s against raw sgemm on the same shapes.",
        discussion: "sgemm is one product of the layer's M·K·N on the same threads; peak is a 1024³ product.")

    @Option(help: "Batch size.") var batch = 64
    @Option(help: "Timed repetitions.") var reps = 30

    func run() throws {
        // The zoo's convolutions (cnn, cnn_bn, resnet_small on Fashion-MNIST), a 1×1 and a strided one;
        // the MLP's and CNN's linear layers.
        let convs: [(String, [Int], Int, Int, Int, Int)] = [
            ("conv 1→16 3×3 on 28×28", [1, 28, 28], 16, 3, 1, 1),
            ("conv 16→16 3×3 on 28×28", [16, 28, 28], 16, 3, 1, 1),
            ("conv 16→32 3×3 on 14×14", [16, 14, 14], 32, 3, 1, 1),
            ("conv 32→64 3×3 on 14×14", [32, 14, 14], 64, 3, 1, 1),
            ("conv 64→64 3×3 on 7×7", [64, 7, 7], 64, 3, 1, 1),
            ("conv 64→64 1×1 on 7×7", [64, 7, 7], 64, 1, 1, 0),
            ("conv 32→64 3×3 s2 on 14×14", [32, 14, 14], 64, 3, 2, 1),
        ]
        let linears: [(String, Int, Int)] = [("linear 784→256", 784, 256), ("linear 256→128", 256, 128), ("linear 1568→64", 1568, 64)]
        let peak = sgemmSeconds(1024, 1024, 1024).map { 2e-9 * 1024 * 1024 * 1024 / $0 } ?? 0
        print("sgemm peak (1024×1024×1024, \(BLAS.threads) threads): \(fmt(peak, 1)) GFLOP/s")
        print("layer (batch \(batch))".padding(31) + "fwd GFLOP/s  bwd GFLOP/s  sgemm GFLOP/s (same M·K·N)")
        for (name, input, out, k, s, p) in convs {
            let conv = try Conv2D(inputShape: input, outChannels: out, kernel: (k, k), stride: (s, s), padding: (p, p))
            let n = batch * conv.outputShape[1] * conv.outputShape[2]
            try report(name, conv, input: input, m: out, k: input[0] * k * k, n: n, peak: peak)
        }
        for (name, i, o) in linears {
            try report(name, Linear(i, o), input: [i], m: batch, k: i, n: o, peak: peak)
        }
    }

    /// Times forward and backward (with the input gradient) of `layer` against one sgemm of
    /// the same m·k·n; prints a table row and a RESULT line.
    func report(_ name: String, _ layer: Layer, input: [Int], m: Int, k: Int, n: Int, peak: Double) throws {
        var rng = RNG(seed: 1)
        for (_, prm) in layer.namedParameters() { for i in 0..<prm.count { prm.value[i] = rng.uniform(-0.1, 0.1) } }
        let x = Tensor(shape: [batch] + input)
        for i in 0..<x.count { x[i] = rng.normal() }
        let y = layer.forward(x, training: true)
        let dy = Tensor(shape: y.shape)
        for i in 0..<dy.count { dy[i] = rng.normal() }
        let flops = 2.0 * Double(m * k * n)
        for _ in 0..<3 { _ = layer.forward(x, training: true); _ = layer.backward(dy, needInputGrad: true) }
        var t0 = monotonicSeconds()
        for _ in 0..<reps { _ = layer.forward(x, training: true) }
        let fwd = flops / ((monotonicSeconds() - t0) / Double(reps)) / 1e9
        t0 = monotonicSeconds()
        for _ in 0..<reps { _ = layer.backward(dy, needInputGrad: true) }
        let bwd = 2 * flops / ((monotonicSeconds() - t0) / Double(reps)) / 1e9
        let g = sgemmSeconds(m, k, n).map { flops / $0 / 1e9 } ?? 0
        print("\(name.padding(31))\(fmt(fwd, 1).padding(13))\(fmt(bwd, 1).padding(13))\(fmt(g, 1))")
        print("RESULT layer=\"\(name)\" batch=\(batch) fwd_gflops=\(fmt(fwd, 1)) bwd_gflops=\(fmt(bwd, 1)) sgemm_gflops=\(fmt(g, 1)) peak_gflops=\(fmt(peak, 1))")
    }

    /// Seconds per C[m×n] = A[m×k]·B[k×n] on BLAS.gemm's threads.
    func sgemmSeconds(_ m: Int, _ k: Int, _ n: Int) -> Double? {
        let a = Tensor(shape: [m, k]), b = Tensor(shape: [k, n]), c = Tensor(shape: [m, n])
        a.fill(0.5); b.fill(0.25)
        for _ in 0..<3 { BLAS.gemm(m: m, n: n, k: k, a.data, lda: k, b.data, ldb: n, c.data, ldc: n) }
        let t0 = monotonicSeconds()
        for _ in 0..<reps { BLAS.gemm(m: m, n: n, k: k, a.data, lda: k, b.data, ldb: n, c.data, ldc: n) }
        return (monotonicSeconds() - t0) / Double(reps)
    }
}
