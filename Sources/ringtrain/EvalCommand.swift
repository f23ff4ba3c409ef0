import ArgumentParser
import Config
import Formats
import NN
import TensorCore
import Train

/// `ringtrain eval CKPT`: a checkpoint's metrics on a split of its job's data (or other data),
/// optionally at another context length for sequence models.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on a split of its data, other data, or another context length.",
        discussion: "The data is read with the checkpoint's normalisation, vocabulary and class names. Prints `eval: <split>_loss … <metrics>`.")

    @Argument(help: "A RingTrain checkpoint, a run directory (its newest checkpoint) or last (the newest run).") var checkpoint: String
    @Option(help: "Split to evaluate: test, validation or train.") var split = "test"
    @Option(help: "Data instead of the job's: a training file or directory (data.train), split as the job splits it.") var data: String?
    @Option(help: "Sequence models: tokens per sample (model.input and data.text.context); learned positions cannot go past their table.")
    var context: Int?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a field of the checkpoint's job (repeatable).", valueName: "path=value"))
    var settings: [String] = []
    @Option(help: "Threads (default: OPENBLAS_NUM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        guard ["test", "validation", "train"].contains(split) else { throw ValidationError("--split must be test, validation or train, got \(split)") }
        if let c = context, c < 1 { throw ValidationError("--context must be at least 1, got \(c)") }
    }

    func run() throws {
        do {
            let checkpoint = try checkpointPath(self.checkpoint)
            if let t = threads { BLAS.threads = t }
            let c = try Checkpoint.load(checkpoint)
            var tree = try JobOptions.apply(settings, to: c.job.configValue)
            if let d = data { tree = try tree.setting(c.job.data.dataset != nil ? "data.path" : "data.train", to: .string(d), source: "--data") }
            if let n = context {
                // A learned table has no rows past its length: refuse rather than invent them.
                let trained = try Model(spec: c.job.model, source: checkpoint)
                for case let l as LearnedPositions in trained.allLayers where n > l.maxLength {
                    throw CLIError("\(checkpoint): its learned positions have \(l.maxLength) rows, so it cannot run at context \(n) (sinusoidal, rope, alibi and t5 positions can)")
                }
                tree = try tree.setting("model.input", to: .list([.int(n)] + c.job.model.input.dropFirst().map { .int($0) }), source: "--context")
                if c.job.data.format == .text { tree = try tree.setting("data.text.context", to: .int(n), source: "--context") }
            }
            let job = try JobConfig(tree, source: "\(checkpoint) (job)")
            let d = try JobData.load(job, known: c.data)
            let trainer = try Trainer(job: job, data: d, log: { _ in })
            for r in trainer.replicas { try Checkpoint.loadParameters(into: r.model, from: c.file, source: checkpoint, prefix: r.prefix) }
            let source = split == "test" ? d.test : split == "validation" ? d.validation : d.train
            guard let ds = source else { throw CLIError("the job has no \(split) split (its data section defines \(["train"] + (d.validation == nil ? [] : ["validation"]) + (d.test == nil ? [] : ["test"])))") }
            let ev = try trainer.evaluate(ds, split: split == "validation" ? "val" : split)
            if let table = ev.confusionTable() { Trainer.printLine(table) }
            Trainer.printLine("eval: " + ev.line + " samples \(ds.count)")
        } catch let e as ValidationError {
            throw e
        } catch let e as CLIError {
            throw e
        } catch {
            throw CLIError("\(error)")
        }
    }
}
