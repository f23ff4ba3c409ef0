import Config
import Formats
import NN
import TensorCore
import TestSupport
import Testing
import Train

/// checkpoint.best keeps the epoch with the best validation metric (retention leaves it
/// alone); early stopping ends the run after `patience` epochs without improvement, and a
/// resume of that run knows it stopped.
@Test func bestCheckpointAndEarlyStopping() throws {
    let dir = Fixtures.tempDirectory("best")
    var (job, _) = try smallJob(dir, epochs: 12)
    job.data.validationFraction = 0.25
    job.checkpoint.keep = 1
    job.checkpoint.best = MetricGoal(metric: "val_acc")
    job.train.earlyStopping = MetricGoal(metric: "val_loss", patience: 2, minDelta: 0.05)
    let data = try JobData.load(job)
    var lines: [String] = []
    let t = try Trainer(job: job, data: data, log: { lines.append($0) })
    var accs: [Double] = [], losses: [Double] = []
    t.onEpoch = { _, ev, _ in accs.append(ev!.accuracy); losses.append(ev!.loss) }
    let s = try t.run(checkpointDir: "\(dir)/ck")
    // Where early stopping had to stop: two epochs in a row not 0.05 below the best loss.
    var best = Double.infinity, since = 0, stopEpoch = 0
    for (i, l) in losses.enumerated() {
        if l < best - 0.05 { best = l; since = 0 } else { since += 1 }
        if since >= 2 { stopEpoch = i + 1; break }
    }
    #expect(stopEpoch > 0 && stopEpoch < 12 && s.state.epoch == stopEpoch, "losses \(losses)")
    #expect(lines.contains { $0.hasPrefix("early stopping: val_loss has not improved for 2 epochs") }, "\(lines)")
    #expect(s.test != nil, "the test split is evaluated at the end")
    // best.safetensors holds the epoch of the highest validation accuracy (the first of ties).
    let bestEpoch = accs.firstIndex(of: accs.max()!)! + 1
    let saved = try Checkpoint.load("\(dir)/ck/best.safetensors")
    #expect(saved.state.epoch == bestEpoch, "accuracies \(accs)")
    #expect(FileIO.list("\(dir)/ck").filter { $0.hasPrefix("step-") }.count == 1 && FileIO.exists("\(dir)/ck/best.safetensors"))
    #expect(lines.contains { $0.hasPrefix("best val_acc") && $0.contains("(epoch \(bestEpoch))") })

    // Resumed from its last checkpoint, the run knows it stopped.
    let last = try #require(Checkpoint.list(in: "\(dir)/ck").last)
    let again = try Trainer(job: job, data: data, log: { _ in })
    try again.restore(try Checkpoint.load(last))
    #expect(again.stoppedEarly && again.isFinished && again.stopTrack.sinceBest == 2)
}

@Test func selectionNeedsAValidationMetric() throws {
    let dir = Fixtures.tempDirectory("best-bad")
    var (job, data) = try smallJob(dir, epochs: 2)
    job.checkpoint.best = MetricGoal(metric: "val_acc")
    #expect { try Trainer(job: job, data: data, log: { _ in }) } throws: { "\($0)".contains("checkpoint.best follows a validation metric, but the data has no validation split") }
    job.data.validationFraction = 0.25
    job.checkpoint.best = MetricGoal(metric: "val_f1")
    let t = try Trainer(job: job, data: try JobData.load(job), log: { _ in })
    #expect { try t.run() } throws: { "\($0)".contains("checkpoint.best: the classification task logs no \"val_f1\"; it logs val_loss, val_acc") }
    for (yaml, message) in [("checkpoint: {best: test_acc}", "not \"test_acc\": the test split is kept for the end"),
                            ("train: {early_stopping: {metric: val_loss, patience: 0}}", "patience"),
                            ("train: {early_stopping: val_loss}", "expected a mapping")] {
        #expect { try JobConfig(try YAML.parse(yaml, source: "j"), source: "j") } throws: { "\($0)".contains(message) }
    }
    let parsed = try JobConfig(try YAML.parse("checkpoint: {best: val_loss}\ntrain: {early_stopping: {metric: val_acc, patience: 4}}", source: "j"), source: "j")
    #expect(parsed.checkpoint.best == MetricGoal(metric: "val_loss", mode: .min) && parsed.train.earlyStopping?.mode == .max
            && parsed.train.earlyStopping?.patience == 4)
    #expect(try JobConfig(parsed.configValue, source: "again") == parsed)
}
