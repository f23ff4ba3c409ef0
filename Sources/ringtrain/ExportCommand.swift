import ArgumentParser
import Config
import Formats
import NN
import TensorCore
import Train

/// Writes a model's state dict (a zoo model freshly initialised, or a trained checkpoint's),
/// its spec and one evaluation-mode forward pass, so that scripts/fixtures/make_parity.py can
/// rebuild it in PyTorch, load the weights with load_state_dict(strict=True) and compare outputs.
struct ExportModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-model",
        abstract: "Export a model's weights (PyTorch state_dict names, no optimizer state) with its spec and one forward pass, for PyTorch.",
        discussion: "From a checkpoint (or run directory, or last), or a freshly initialised zoo model. Load it in Python with safetensors.torch.load_file and model.load_state_dict(…, strict=True): docs/checkpoints.md.")

    @Argument(help: "Zoo model name, `all` (then --out is a directory, one file per model), a checkpoint file, a run directory or last.") var model: String
    @Option(help: "Output safetensors file (a directory with `all`).") var out: String
    @Option(help: "Seed.") var seed = 0

    func run() throws {
        if model.hasSuffix(".safetensors") || model == "last" || FileIO.isDirectory(model) {
            return try wrapErrors { try exportCheckpoint(try checkpointPath(model)) }
        }
        if model == "all" {
            try FileIO.makeDirectories(out)
            for name in ModelSpec.zoo.keys.sorted() { try export(name, to: "\(out)/\(name).safetensors") }
            return
        }
        try export(model, to: out)
    }

    /// A trained checkpoint's model on a batch of inputs (ids drawn from the vocabulary for a
    /// model that reads ids).
    func exportCheckpoint(_ model: String) throws {
        let c = try Checkpoint.load(model)
        let m = try Model(spec: c.job.model, source: model)
        try Checkpoint.loadParameters(into: m, from: c.file, source: model, prefix: "")
        var rng = RNG(seed: UInt64(seed) + 1)
        let shape = [4] + c.job.model.input
        let x = Tensor(shape: shape)
        let y: Tensor
        if let e = m.inputEmbedding {
            let ids = IntTensor(shape: shape)
            for i in 0..<ids.count { ids.data[i] = Int32(rng.below(e.vocabulary)); x[i] = Float(ids.data[i]) }
            y = m.forward(indices: ids, training: false)
        } else {
            for i in 0..<x.count { x[i] = rng.normal() }
            y = m.forward(x, training: false)
        }
        try write(m, input: x, output: y, blocks: c.job.model, name: c.job.name, ids: m.takesIndices, to: out)
    }

    func write(_ m: Model, input x: Tensor, output y: Tensor, blocks spec: ModelSpec, name: String, ids: Bool, to out: String) throws {
        var w = SafeTensors.Writer()
        for (name, p) in m.parameters { w.add(name, shape: p.shape, floats: p.value.data) }
        for (name, b) in m.buffers {
            if b.isCounter { w.add(name, shape: b.shape, int64s: [Int64(b.value[0])]) } else { w.add(name, shape: b.shape, floats: b.value.data) }
        }
        w.add("__input", shape: x.shape, floats: x.data)
        w.add("__output", shape: y.shape, floats: y.data)
        // Both forms: the expanded one lists every primitive layer; the block one is what the
        // fixture script rebuilds from its own block definitions (an independent check of each expansion).
        w.metadata = ["spec": JSON.string(m.expandedSpec.configValue), "blocks_spec": JSON.string(spec.configValue), "model": name,
                      "seed": String(seed), "ids": ids ? "true" : "false"]
        try w.write(to: out)
        print("wrote \(out): \(m.parameterCount) parameters")
    }

    func export(_ model: String, to out: String) throws {
        guard let spec = ModelSpec.zoo[model] else {
            throw ValidationError("unknown model \(model) (zoo: \(ModelSpec.zoo.keys.sorted().joined(separator: ", ")); or all)")
        }
        let m = try Model(spec: spec, source: model)
        m.initialize(seed: UInt64(seed))
        // A few training-mode passes move BatchNorm's running statistics away from 0/1.
        var rng = RNG(seed: UInt64(seed) + 1)
        let x = Tensor(shape: [4] + spec.input)
        for _ in 0..<3 {
            for i in 0..<x.count { x[i] = rng.normal() }
            _ = m.forward(x, training: true)
        }
        for i in 0..<x.count { x[i] = rng.normal() }
        let y = m.forward(x, training: false)
        try write(m, input: x, output: y, blocks: spec, name: model, ids: false, to: out)
    }
}
