import ArgumentParser
import Datasets
import Formats
import TensorCore
import Train

/// `ringtrain predict CKPT INPUT [--out FILE]`: a trained model's predictions for new inputs.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict with a checkpoint: IDX, .npy or CSV inputs → CSV or .npy of predictions; text prompts → generated text.",
        discussion: """
            Inputs are read as the job read its training data, with the normalisation, feature columns, \
            categories and vocabulary stored in the checkpoint (a CSV may hold other columns too, e.g. the \
            target). Columns: classification `class,p_<class>…`, binary `class,p`, multilabel `p_<j>…`, \
            regression the targets in data units, counting `rate_<j>…`. --out FILE.npy writes the numbers \
            as a float32 [samples, columns] array. For a language model, each line of a text INPUT is a \
            prompt and the output is CSV `prompt,generated`.
            """)

    @Argument(help: "A checkpoint, a run directory (its newest checkpoint) or last.") var checkpoint: String
    @Argument(help: "Inputs: an IDX file (*-ubyte[.gz], .idx), .npy, .csv, or text prompts (.txt, language models).") var input: String
    @Option(help: "Output file: .csv or .npy (default: CSV on standard output).") var out: String?
    @Option(help: "Input format when the name does not tell: idx, npy, csv, text.") var format: String?
    @Option(help: "Samples per forward pass.") var batchSize = 256
    @Option(help: "Language models: tokens to generate per prompt.") var tokens = 100
    @Option(help: "Language models: sampling temperature (0: the most likely token).") var temperature = 0.0
    @Option(help: "Threads (default: OPENBLAS_NUM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let f = format, DataConfig.Format(rawValue: f) == nil { throw ValidationError("--format must be idx, npy, csv or text, got \(f)") }
        if let o = out, !(o.hasSuffix(".csv") || o.hasSuffix(".npy")) { throw ValidationError("--out must end in .csv or .npy, got \(o)") }
        guard tokens >= 1 else { throw ValidationError("--tokens must be at least 1, got \(tokens)") }
    }

    func run() throws {
        try wrapErrors {
            if let t = threads { BLAS.threads = t }
            let path = try checkpointPath(self.checkpoint)
            let c = try Checkpoint.load(path)
            let fmt = try format.map { DataConfig.Format(rawValue: $0)! } ?? Predictor.format(of: input)
            if c.job.task.kind == .languageModel && fmt == .text { return try generate(c) }
            guard FileIO.exists(input) else { throw FileError(input, "no such file") }
            let p = try Predictor(checkpoint: c, input: input, format: fmt)
            p.run(batchSize: batchSize)
            try write(p.csv(), numbers: p.values, columns: p.columns.count)
            if out != nil { Trainer.printLine("predict: \(p.data.count) samples → \(out!) (\(p.columns.joined(separator: ", ")))") }
        }
    }

    /// One continuation per non-empty line of the prompt file.
    private func generate(_ c: Checkpoint.Contents) throws {
        guard out?.hasSuffix(".npy") != true else { throw ValidationError("--out: a language model's predictions are text; write .csv") }
        let gen = try TextGenerator(checkpoint: c)
        var o = TextGenerator.Options()
        o.tokens = tokens
        o.temperature = temperature
        var csv = "prompt,generated\n"
        for (i, line) in try FileIO.readText(input).split(separator: "\n").enumerated() where !line.isEmpty {
            let ids: [Int32]
            do { ids = try gen.encode(String(line)) } catch { throw FileError(input, "line \(i + 1): \(error)") }
            let text = gen.tokenizer.decode(gen.generate(prompt: ids, o))
            csv += CSV.field(String(line), always: true) + "," + CSV.field(text, always: true) + "\n"
        }
        try write(csv, numbers: nil, columns: 0)
    }

    private func write(_ csv: String, numbers: [Float]?, columns: Int) throws {
        guard let o = out else { print(csv, terminator: ""); return }
        if o.hasSuffix(".npy"), let v = numbers {
            try FileIO.writeAtomically(o, bytes: NPY.image(floats: v, shape: [columns == 0 ? 0 : v.count / columns, columns]))
        } else {
            try FileIO.writeAtomically(o, bytes: Array(csv.utf8))
        }
    }
}
