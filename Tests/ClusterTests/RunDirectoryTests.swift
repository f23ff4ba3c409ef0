import Formats
import Glibc
import Testing
import TestSupport
import Train

/// The JSON objects of a metrics.jsonl, in order.
private func metricLines(_ path: String) throws -> [[String: Double]] {
    try FileIO.readText(path).split(separator: "\n").map { line in
        guard case .map(let entries) = try JSON.parse(String(line)) else { return [:] }
        var d: [String: Double] = [:]
        for e in entries {
            if case .string(let s) = e.value { d[e.key + "=" + s] = 1 } else { d[e.key] = e.value.number ?? .nan }
        }
        return d
    }
}

/// A run directory holds the resolved job, the log, metrics.jsonl, TensorBoard events and the
/// checkpoints; the same numbers reach all three records; a resume goes on in the same
/// directory; a directory that holds a run is never reused by a new one.
@Test(.timeLimit(.minutes(10)))
func aRunDirectoryRecordsTheRunAndResumesFromIt() throws {
    let dir = Fixtures.tempDirectory("rundir")
    let job = try writeJob(dir, epochs: 2)
    let rt = Fixtures.ringtrain
    let run = "\(dir)/run"
    let r = Fixtures.run([rt, "train", job, "--run-dir", run, "--checkpoint-dir", "checkpoints"])
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.hasPrefix("run directory \(run)\n") && r.output.hasSuffix("run directory \(run)\n"), "\(r.output)")
    // Off a terminal there is no bar: plain periodic lines, no carriage returns or escapes.
    #expect(r.output.contains("epoch 1/2 step 4/32 loss") && !r.output.contains("\r") && !r.output.contains("\u{1B}"))
    let files = FileIO.list(run)
    #expect(files.contains("job.yaml") && files.contains("log.txt") && files.contains("metrics.jsonl"), "\(files)")
    #expect(Checkpoint.list(in: "\(run)/checkpoints").last == "\(run)/checkpoints/step-00000064.safetensors")

    // The log is what was printed.
    let log = try FileIO.readText("\(run)/log.txt")
    #expect(log.contains("epoch 2/2 train_loss") && log.contains("done: test_loss"), "\(log)")

    // metrics.jsonl: a line per step with its loss and lr, one per epoch with the evaluation
    // that was printed.
    let m = try metricLines("\(run)/metrics.jsonl")
    let steps = m.filter { $0["type=step"] != nil }
    let epochs = m.filter { $0["type=epoch"] != nil }
    #expect(steps.map { Int($0["step"]!) } == Array(1...64))
    #expect(steps.allSatisfy { $0["loss"]!.isFinite && $0["lr"]! > 0 })
    #expect(epochs.count == 2 && epochs.map { Int($0["step"]!) } == [32, 64])
    let done = doneFields(r.output)
    #expect(fmt(epochs[1]["test_acc"] ?? -1, 4) == done["test_acc"], "\(epochs[1]) vs \(done)")

    // TensorBoard: the same scalars, at the same steps.
    let eventFiles = files.filter { $0.hasPrefix("events.out.tfevents.") }
    try #require(eventFiles.count == 1, "\(files)")
    let events = try TensorBoard.decode(file: try FileIO.read("\(run)/\(eventFiles[0])"), source: eventFiles[0])
    #expect(events.first?.fileVersion == "brain.Event:2")
    let tbLoss = events.flatMap { e in e.scalars.filter { $0.tag == "train/loss" }.map { (e.step, $0.value) } }
    #expect(tbLoss.map(\.0) == Array(1...64).map(Int64.init))
    #expect(zip(tbLoss, steps).allSatisfy { $0.1 == Float($1["loss"]!) })
    let tbAcc = events.flatMap { e in e.scalars.filter { $0.tag == "test/acc" }.map { (e.step, $0.value) } }
    #expect(tbAcc.map(\.0) == [32, 64] && fmt(Double(tbAcc[1].1), 4) == done["test_acc"])

    // Python's TensorBoard reads the directory with the same tags, steps and values.
    if let py = Fixtures.python(with: "tensorboard") {
        let script = """
            import sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            ea = EventAccumulator(sys.argv[1]); ea.Reload()
            tags = ea.Tags()["scalars"]
            for t in ["train/loss", "train/lr", "train/samples_per_s", "epoch/train_loss", "test/loss", "test/acc", "epoch/samples_per_s"]:
                assert t in tags, (t, tags)
            loss = ea.Scalars("train/loss")
            print("steps", len(loss), loss[0].step, loss[-1].step, repr(loss[-1].value))
            acc = ea.Scalars("test/acc")
            print("acc", [a.step for a in acc], "%.4f" % acc[-1].value)
            """
        try FileIO.writeAtomically("\(dir)/tb.py", bytes: Array(script.utf8))
        let p = Fixtures.run([py, "\(dir)/tb.py", run])
        #expect(p.status == 0, "\(p.output)")
        #expect(p.output.contains("steps 64 1 64 \(Double(tbLoss.last!.1))"), "\(p.output) vs \(tbLoss.last!)")
        #expect(p.output.contains("acc [32, 64] \(done["test_acc"] ?? "?")"), "\(p.output)")
    }

    // job.yaml is the resolved job: `ringtrain config` of it prints it unchanged.
    let cfg = Fixtures.run([rt, "config", "\(run)/job.yaml"])
    let saved = try FileIO.readText("\(run)/job.yaml")
    #expect(cfg.status == 0 && cfg.output == saved, "\(cfg.output)")

    // A new run may not take over a directory that holds one.
    let reuse = Fixtures.run([rt, "train", job, "--run-dir", run])
    #expect(reuse.status != 0 && reuse.output.contains("\(run): already holds a run; resume it with --resume \(run)"), "\(reuse.output)")

    // Resuming the run directory continues in it: its newest checkpoint, the same files.
    let more = Fixtures.run([rt, "train", "--resume", run, "--epochs", "3"])
    #expect(more.status == 0 && more.output.contains("resumed from \(run)/checkpoints/step-00000064.safetensors at epoch 3, step 64")
            && more.output.contains("run directory \(run)"), "\(more.output)")
    let m2 = try metricLines("\(run)/metrics.jsonl").filter { $0["type=step"] != nil }
    #expect(m2.map { Int($0["step"]!) } == Array(1...96))
    #expect(FileIO.list(run).filter { $0.hasPrefix("events.out.tfevents.") }.count == 2)
    #expect(Checkpoint.list(in: "\(run)/checkpoints").last == "\(run)/checkpoints/step-00000096.safetensors")

    // A run directory without a checkpoint cannot be resumed, and says why.
    try FileIO.makeDirectories("\(dir)/empty-run")
    try FileIO.writeAtomically("\(dir)/empty-run/job.yaml", bytes: try FileIO.read("\(run)/job.yaml"))
    let none = Fixtures.run([rt, "train", "--resume", "\(dir)/empty-run"])
    #expect(none.status != 0 && none.output.contains("\(dir)/empty-run: this run has no checkpoint yet"), "\(none.output)")
    let nothing = Fixtures.run([rt, "train", "--resume", "\(dir)/no-such-run"])
    #expect(nothing.status != 0 && nothing.output.contains("no such checkpoint, run directory or 'last'"), "\(nothing.output)")
}

/// --quiet prints only the result (warnings and errors too); the run's log.txt still has
/// every line. Both flags at once are refused.
@Test(.timeLimit(.minutes(10)))
func quietPrintsOnlyTheResult() throws {
    let dir = Fixtures.tempDirectory("quiet")
    let job = try writeJob(dir, epochs: 1)
    let rt = Fixtures.ringtrain
    let q = Fixtures.run([rt, "train", job, "--quiet", "--run-dir", "\(dir)/run"])
    #expect(q.status == 0 && q.output.hasPrefix("done: test_loss") && q.output.split(separator: "\n").count == 1, "\(q.output)")
    let log = try FileIO.readText("\(dir)/run/log.txt")
    #expect(log.contains("training cluster-test") && log.contains("epoch 1/1 train_loss") && log.contains("done: test_loss"), "\(log)")
    // launch: the coordinator's result line only (its workers are quiet too).
    let l = Fixtures.run([rt, "launch", "--workers", "2", job, "--quiet", "--run-dir", "\(dir)/launched"])
    #expect(l.status == 0 && l.output.hasPrefix("[coordinator] job cluster-test finished:") && l.output.split(separator: "\n").count == 1,
            "\(l.output)")
    let both = Fixtures.run([rt, "train", job, "--quiet", "--verbose"])
    #expect(both.status != 0 && both.output.contains("use either --quiet or --verbose"), "\(both.output)")
}

/// Default run directories are named after the job and the start time under RINGTRAIN_RUNS;
/// `--resume last` picks the newest; an empty root says there is nothing to resume.
@Test(.timeLimit(.minutes(10)))
func resumeLastPicksTheNewestRun() throws {
    let dir = Fixtures.tempDirectory("resume-last")
    let job = try writeJob(dir, epochs: 1)
    let rt = Fixtures.ringtrain
    let root = "\(dir)/runs"
    let empty = Fixtures.run(["env", "RINGTRAIN_RUNS=\(root)", rt, "train", "--resume", "last"])
    #expect(empty.status != 0 && empty.output.contains("--resume last: no run directory here"), "\(empty.output)")

    let first = Fixtures.run(["env", "RINGTRAIN_RUNS=\(root)", rt, "train", job, "--set", "train.max_steps=8", "--checkpoint-dir", "checkpoints"])
    let second = Fixtures.run(["env", "RINGTRAIN_RUNS=\(root)", rt, "train", job, "--set", "train.max_steps=16", "--checkpoint-dir", "checkpoints"])
    #expect(first.status == 0 && second.status == 0, "\(first.output)\n\(second.output)")
    let runs = FileIO.list(root)
    #expect(runs.count == 2 && runs.allSatisfy { $0.hasPrefix("cluster-test-20") && $0.count >= "cluster-test-yyyymmdd-hhmmss".count }, "\(runs)")
    let newest = second.output.split(separator: "\n").last.map { String($0.dropFirst("run directory ".count)) } ?? ""
    let resumed = Fixtures.run(["env", "RINGTRAIN_RUNS=\(root)", rt, "train", "--resume", "last", "--set", "train.max_steps=24"])
    #expect(resumed.status == 0 && resumed.output.contains("resumed from \(newest)/checkpoints/step-00000016.safetensors"),
            "\(resumed.output)")
}
