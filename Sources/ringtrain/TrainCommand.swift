import ArgumentParser
import Config
import Formats
import Glibc
import TensorCore
import Train

/// Options shared by every command that runs a job.
struct JobOptions: ParsableArguments {
    @Argument(help: "YAML job file (default: the built-in Fashion-MNIST MLP job).")
    var job: String?

    @Option(name: .long, help: "The data: a named dataset's directory of IDX files (data.path), or the training file (data.train).")
    var data: String?

    @Option(name: .long, help: "Number of epochs (overrides train.epochs).")
    var epochs: Int?

    @Option(name: .long, help: "Per-worker batch size (overrides train.batch_size).")
    var batchSize: Int?

    @Option(name: .long, help: "Base learning rate (overrides optimizer.lr).")
    var lr: Double?

    @Option(name: .long, help: "Random seed (overrides seed).")
    var seed: Int?

    @Option(name: .long, help: "Checkpoint directory (overrides checkpoint.dir: relative paths are inside the run directory; empty string disables checkpoints).")
    var checkpointDir: String?

    @Option(name: .long, help: "Run directory for the job, log, metrics, TensorBoard events and checkpoints (default: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.")
    var runDir: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override any job field: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).", valueName: "path=value"))
    var settings: [String] = []

    func validate() throws {
        if let e = epochs, e < 1 { throw ValidationError("--epochs must be at least 1, got \(e)") }
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1, got \(b)") }
        if let l = lr, !(l >= 0 && l.isFinite) { throw ValidationError("--lr must be a non-negative number, got \(l)") }
        if let s = seed, s < 0 { throw ValidationError("--seed must be non-negative, got \(s)") }
    }

    /// `--set path=value` edits applied in order to a job's tree (values parsed as YAML).
    static func apply(_ settings: [String], to tree: ConfigValue) throws -> ConfigValue {
        var tree = tree
        for s in settings {
            guard let eq = s.firstIndex(of: "="), eq != s.startIndex else {
                throw ValidationError("--set \(s): expected path=value, e.g. --set train.max_steps=500")
            }
            let value = try YAML.parse(String(s[s.index(after: eq)...]), source: "--set \(s)")
            tree = try tree.setting(String(s[..<eq]), to: value, source: "--set")
        }
        return tree
    }

    /// The job file (or the default), with command-line overrides applied.
    func resolve(base: JobConfig? = nil) throws -> JobConfig {
        var j = try job.map { try JobConfig.load(path: $0) } ?? base ?? JobConfig()
        if !settings.isEmpty {
            // --set edits the job's tree, which is then read (and checked) as a job file would be.
            let tree = try Self.apply(settings, to: try job.map { try YAML.parse(try FileIO.readText($0), source: $0) } ?? j.configValue)
            j = try JobConfig(tree, source: job.map { "\($0) with --set" } ?? "--set")
        }
        if let d = data {
            if j.data.dataset != nil { j.data.path = d } else { j.data.train = .init(inputs: [d]) }
        }
        if let e = epochs { j.train.epochs = e }
        if let b = batchSize { j.train.batchSize = b }
        if let l = lr { j.optimizer.lr = l }
        if let s = seed { j.seed = s }
        if let c = checkpointDir { j.checkpoint.dir = c }
        return j
    }

    /// The run directory to record into: `--run-dir` (a new one), else the resumed run's own,
    /// else a new one under the runs root.
    func runDirectory(for job: JobConfig, resuming: RunDirectory?) throws -> RunDirectory {
        if let d = runDir { return try RunDirectory.create(for: job, explicit: d) }
        return try resuming ?? RunDirectory.create(for: job)
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train in one process (the single-node fallback: world size 1, no sockets).")

    @OptionGroup var options: JobOptions
    @OptionGroup var logging: LogOptions

    @Option(name: .long, help: ArgumentHelp("Resume from a checkpoint, a run directory (its newest checkpoint) or 'last' (the newest run): parameters, optimizer, progress, RNG.", valueName: "ckpt|run-dir|last"))
    var resume: String?

    @Option(name: .long, help: "Start a fresh run from the weights in this safetensors file (or a run directory's newest checkpoint, or last).")
    var initFrom: String?

    @Flag(name: .long, help: "With --init-from: take only the tensors whose names and shapes match (fine-tuning with a new head); report the rest.")
    var initPartial = false

    @Option(name: .long, help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS or all cores).")
    var threads: Int?

    func validate() throws {
        if resume != nil && initFrom != nil { throw ValidationError("use either --resume or --init-from, not both") }
        if initPartial && initFrom == nil { throw ValidationError("--init-partial needs --init-from") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        do {
            logging.apply()
            if let t = threads { BLAS.threads = t }
            let resumed = try resume.map { try RunDirectory.resolveResume($0) }
            let checkpoint = try resumed.map { try Checkpoint.load($0.checkpoint) }
            let job = try options.resolve(base: checkpoint?.job)
            let data = try JobData.load(job, known: checkpoint?.data)
            let trainer = try Trainer(job: job, data: data)
            if let c = checkpoint {
                try trainer.restore(c)
                if trainer.stoppedEarly, let g = job.train.earlyStopping {
                    Trainer.printLine("\(c.path) ends a run stopped early (\(g.metric) had not improved for \(g.patience) epochs): nothing to train. "
                        + "To train further, raise train.early_stopping.patience (--set train.early_stopping.patience=N)")
                    return
                }
                if trainer.isFinished {
                    let e = job.train.maxSteps > 0 ? "train.max_steps \(job.train.maxSteps)" : "\(job.train.epochs) epochs"
                    Trainer.printLine("\(c.path) ends a finished run (step \(trainer.state.globalStep) of \(trainer.totalSteps), \(e)): "
                        + "nothing to train. To train further, resume with a longer run: --resume \(c.path) --epochs N "
                        + "(or --set train.max_steps=N)")
                    return
                }
                RunLog.info("resumed from \(c.path) at epoch \(trainer.state.epoch + 1), step \(trainer.state.globalStep)")
            }
            if let w = try initFrom.map(checkpointPath) {
                let r = try trainer.initialize(fromWeights: w, partial: initPartial)
                RunLog.info("initialised weights from \(w)" + (initPartial
                    ? "; new: \(r.fresh.isEmpty ? "none" : r.fresh.joined(separator: ", ")); not used: \(r.unused.isEmpty ? "none" : r.unused.joined(separator: ", "))" : ""))
            }
            let run = try options.runDirectory(for: job, resuming: resumed?.run)
            let bar = RunLog.threshold <= .info ? ProgressBar.forTerminal() : nil
            if let bar {
                trainer.log = { bar.printAbove($0) }
                trainer.progress = bar
            }
            trainer.attach(try RunRecorder(run: run, job: job))
            trainer.log("run directory \(run.path)")
            let summary = try trainer.run(checkpointDir: run.checkpointDirectory(job))
            let final = summary.test ?? summary.lastEvaluation
            if let table = final?.confusionTable() { trainer.log(table) }
            // The result: printed whatever the log level.
            let done = "done: " + (final.map { $0.line + " " } ?? "")
                + "train_time \(fmt(summary.trainSeconds, 1))s samples/s \(Int(summary.samplesPerSecond))"
            trainer.recorder?.log(done)
            bar?.finish()
            Trainer.printLine(done)
            trainer.recorder?.flush()
            RunLog.info("run directory \(run.path)")
        } catch let e as ValidationError {
            throw e
        } catch {
            throw CLIError("\(error)")
        }
    }
}

/// An error printed as-is, exiting with status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}

/// A checkpoint argument: a file as given, a run directory (its newest checkpoint) or `last`
/// (the newest run's newest checkpoint).
func checkpointPath(_ arg: String) throws -> String {
    FileIO.isRegularFile(arg) ? arg : try RunDirectory.resolveResume(arg).checkpoint
}
