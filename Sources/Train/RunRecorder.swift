import Config
import Formats
import Glibc
import TensorCore

/// Writes what a run reports into its run directory: the log, `metrics.jsonl` and TensorBoard
/// scalars. Only the process that prints progress (rank 0, or the single process) has one.
/// Files are appended and flushed at least once a second and at every epoch, so a killed run
/// keeps what it reported; a resumed run goes on in the same files (a new event file).
///
/// metrics.jsonl, one object per line:
///
///     {"type":"step","step":12,"epoch":1,"loss":0.61,"lr":0.1,"samples_per_s":41000.0,"time":1764602530.2}
///     {"type":"epoch","step":469,"epoch":1,"train_loss":0.52,"val_loss":0.41,"val_acc":0.85,
///      "samples_per_s":40213.0,"allreduce_ms":0.8,"hidden_share":0.93,"time":…}
///     {"type":"test","step":4690,"epoch":10,"test_loss":0.35,"test_acc":0.88,"time":…}
///
/// (classification evaluations also carry "confusion": rows of counts by true class, and
/// "classes": their names when the data has them)
///
/// TensorBoard tags: train/loss, train/lr, train/samples_per_s (each step); epoch/train_loss,
/// epoch/samples_per_s, <split>/loss, <split>/<metric>, comm/allreduce_ms, comm/hidden_share
/// (each epoch).
public final class RunRecorder {
    public let run: RunDirectory
    private let metrics: UnsafeMutablePointer<FILE>
    private let logFile: UnsafeMutablePointer<FILE>
    public let events: EventFileWriter?
    private var lastFlush = monotonicSeconds()
    private var lastStep: (time: Double, step: Int)?

    /// Opens (appending) the run's files and writes the resolved job to job.yaml.
    public init(run: RunDirectory, job: JobConfig, tensorboard: Bool = true) throws {
        self.run = run
        try run.writeJob(job)
        func open(_ p: String) throws -> UnsafeMutablePointer<FILE> {
            guard let f = fopen(p, "a") else { throw FileError(p, "cannot open for writing: \(String(cString: strerror(errno)))") }
            return f
        }
        metrics = try open(run.metricsFile)
        logFile = try open(run.logFile)
        events = tensorboard ? try EventFileWriter(directory: run.path, host: hostName(), wallTime: Self.wallClock()) : nil
    }

    deinit {
        fclose(metrics)
        fclose(logFile)
    }

    public static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    public func log(_ line: String) {
        fputs(line + "\n", logFile)
        flushIfDue()
    }

    /// After each optimizer step: its loss (mean over ranks), lr and the samples it took.
    public func step(_ state: TrainState, loss: Float, lr: Float, samples: Int) {
        let now = monotonicSeconds(), wall = Self.wallClock()
        // Throughput between consecutive steps (the first step after a start or an epoch
        // boundary has no predecessor and reports none).
        let rate = lastStep.map { state.globalStep > $0.step ? Double(samples * (state.globalStep - $0.step)) / max(now - $0.time, 1e-9) : nil } ?? nil
        lastStep = (now, state.globalStep)
        var fields: [(String, ConfigValue)] = [("type", .string("step")), ("step", .int(state.globalStep)), ("epoch", .int(state.epoch + 1)),
                                               ("loss", number(Double(String(loss)) ?? .nan)), ("lr", number(Double(String(lr)) ?? .nan))]
        var scalars = [TensorBoard.Scalar("train/loss", loss), TensorBoard.Scalar("train/lr", lr)]
        if let r = rate {
            fields.append(("samples_per_s", number(r)))
            scalars.append(.init("train/samples_per_s", Float(r)))
        }
        write(fields, wall)
        try? events?.add(step: state.globalStep, wallTime: wall, scalars)
        flushIfDue()
    }

    /// After each epoch (and its evaluation).
    public func epoch(_ state: TrainState, epoch: Int, trainLoss: Double, evaluation: Evaluation?, samplesPerSecond: Double,
                      allreduce: (hidden: Double, perStep: Double)?) {
        let wall = Self.wallClock()
        var fields: [(String, ConfigValue)] = [("type", .string("epoch")), ("step", .int(state.globalStep)), ("epoch", .int(epoch)),
                                               ("train_loss", number(trainLoss))]
        var scalars = [TensorBoard.Scalar("epoch/train_loss", Float(trainLoss))]
        if let ev = evaluation { add(ev, &fields, &scalars) }
        fields.append(("samples_per_s", number(samplesPerSecond)))
        scalars.append(.init("epoch/samples_per_s", Float(samplesPerSecond)))
        if let a = allreduce {
            fields += [("allreduce_ms", number(a.perStep * 1000)), ("hidden_share", number(a.hidden))]
            scalars += [.init("comm/allreduce_ms", Float(a.perStep * 1000)), .init("comm/hidden_share", Float(a.hidden))]
        }
        write(fields, wall)
        try? events?.add(step: state.globalStep, wallTime: wall, scalars)
        lastStep = nil
        flush()
    }

    /// The held-out test split at the end of the run.
    public func test(_ state: TrainState, _ ev: Evaluation) {
        let wall = Self.wallClock()
        var fields: [(String, ConfigValue)] = [("type", .string("test")), ("step", .int(state.globalStep)), ("epoch", .int(state.epoch))]
        var scalars: [TensorBoard.Scalar] = []
        add(ev, &fields, &scalars)
        write(fields, wall)
        try? events?.add(step: state.globalStep, wallTime: wall, scalars)
        flush()
    }

    private func add(_ ev: Evaluation, _ fields: inout [(String, ConfigValue)], _ scalars: inout [TensorBoard.Scalar]) {
        fields.append(("\(ev.split)_loss", number(ev.loss)))
        scalars.append(.init("\(ev.split)/loss", Float(ev.loss)))
        for m in ev.metrics {
            fields.append(("\(ev.split)_\(m.name)", number(m.value)))
            scalars.append(.init("\(ev.split)/\(m.name)", Float(m.value)))
        }
        // Classification: the confusion matrix (rows: true class), for the report.
        if let c = ev.confusion, c.count <= 100 {
            fields.append(("confusion", .list(c.map { .list($0.map { .int($0) }) })))
            if let names = ev.classNames, names.count == c.count { fields.append(("classes", .list(names.map { .string($0) }))) }
        }
    }

    /// JSON has no NaN or infinity: a diverged loss is written as null.
    private func number(_ v: Double) -> ConfigValue { v.isFinite ? .double(v) : .null }

    private func write(_ fields: [(String, ConfigValue)], _ wall: Double) {
        let line = JSON.string(.map((fields + [("time", .double(wall))]).map { ConfigEntry(key: $0.0, value: $0.1) }))
        fputs(line + "\n", metrics)
    }

    private func flushIfDue() {
        if monotonicSeconds() - lastFlush >= 1 { flush() }
    }

    public func flush() {
        fflush(metrics)
        fflush(logFile)
        events?.flush()
        lastFlush = monotonicSeconds()
    }
}
