import Cluster
import Formats
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// A 3-worker job on synthetic data: 1,024 samples, batch 32 per worker, so 10 steps an
/// epoch with 3 workers and 16 with 2; a checkpoint every `every` steps (all kept).
private func elasticJob(_ dir: String, every: Int = 0, epochs: Int = 2) throws -> String {
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 1024, test: 256)
    let path = "\(dir)/job.yaml"
    try FileIO.writeAtomically(path, bytes: Array("""
        name: elastic-test
        model:
          input: [1, 28, 28]
          layers: [flatten, {type: linear, out: 32}, relu, {type: dropout, p: 0.1}, {type: linear, out: 10}]
        data: {path: \(dir)}
        train: {epochs: \(epochs), batch_size: 32, log_every: 1, check_every: 4}
        optimizer: {type: adamw, lr: 0.002, weight_decay: 0.01}
        schedule: {type: cosine}
        scaling: {base_batch: 32, warmup_steps: 5}
        checkpoint: {every_steps: \(every), keep: 100}
        comm: {heartbeat: 0.5, heartbeat_timeout: 3, timeout: 5}
        """.utf8))
    return path
}

/// The parameters of the newest step checkpoint in a run directory, by name.
private func finalParameters(_ runDir: String) throws -> [String: [Float]] {
    let path = try #require(Checkpoint.list(in: "\(runDir)/checkpoints").last)
    let c = try Checkpoint.load(path)
    var out: [String: [Float]] = [:]
    for t in c.file.tensors where !t.name.hasPrefix("optimizer.") && t.dtype == .F32 { out[t.name] = t.floats() }
    return out
}

@Test(.timeLimit(.minutes(10)))
func lostWorkerTheOthersGoOnFromMemoryStepForStep() throws {
    // Rank 2 is SIGKILLed just before step 6: the two survivors go on from memory.
    let dir = Fixtures.tempDirectory("elastic")
    let job = try elasticJob(dir)
    let a = try Started([Fixtures.ringtrain, "launch", "--workers", "3", "--min-workers", "2", "--run-dir", "\(dir)/a", job],
                        environment: ["RINGTRAIN_TEST_KILL": "2:6"])
    #expect(a.wait(timeout: 240) == 0, "\(a.text)")
    #expect(a.text.contains("[coordinator] rank 2 (") && a.text.contains("going on with 2 workers"), "\(a.text)")
    #expect(a.text.contains("generation 1: 2 workers, rank 0 is"), "\(a.text)")
    // 6 steps of 96 samples are 9 steps of 64: the schedule goes on at the same sample count.
    #expect(a.text.contains("going on from memory at step 9 (epoch 1)"), "\(a.text)")
    #expect(!a.text.contains("resumed from"), "no checkpoint is read: \(a.text)")

    // The same world undisturbed, checkpointing at step 6; then a 2-worker run resumed from there.
    let b = try Started([Fixtures.ringtrain, "launch", "--workers", "3", "--run-dir", "\(dir)/b", "--set", "checkpoint.every_steps=6", job])
    #expect(b.wait(timeout: 240) == 0, "\(b.text)")
    let c = try Started([Fixtures.ringtrain, "launch", "--workers", "2", "--run-dir", "\(dir)/c",
                         "--resume", "\(dir)/b/checkpoints/step-00000006.safetensors", job])
    #expect(c.wait(timeout: 240) == 0, "\(c.text)")
    #expect(c.text.contains("step 6 is step 9 of 32 here"), "\(c.text)")

    // Every loss and lr after the loss equals the resumed run's, and so do the final parameters.
    let lossesA = stepLosses(a.text, stepsPerEpoch: 16).filter { $0.key > 9 }
    let lossesC = stepLosses(c.text, stepsPerEpoch: 16)
    #expect(lossesA.count == 23, "\(lossesA.keys.sorted())")
    for (step, loss) in lossesA { #expect(lossesC[step] == loss, "step \(step): elastic \(loss) vs resumed \(lossesC[step] ?? "-")") }
    #expect(try finalParameters("\(dir)/a") == finalParameters("\(dir)/c"))
    #expect(finalAccuracy(a.text) != nil && finalAccuracy(a.text) == finalAccuracy(c.text), "\(a.text)\n\(c.text)")
}

@Test(.timeLimit(.minutes(10)))
func replacementWorkerJoinsAndTheWorldGrowsAgain() throws {
    // Rank 1 of 2 dies before step 20 (after the first epoch's checkpoint); launch starts a
    // replacement, which joins the survivor.
    let dir = Fixtures.tempDirectory("join")
    let job = try elasticJob(dir, epochs: 3)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", "--min-workers", "1", "--max-restarts", "1",
                         "--run-dir", "\(dir)/run", "--set", "train.log_every=4", "--set", "checkpoint.keep=1", job],
                        environment: ["RINGTRAIN_TEST_KILL": "1:20"])
    #expect(p.wait(timeout: 240) == 0, "\(p.text)")
    // Retention holds across generations: one step checkpoint, the last.
    #expect(FileIO.list("\(dir)/run/checkpoints") == ["step-00000048.safetensors"], "\(p.text)")
    #expect(p.text.contains("starting worker 2 to take its place (1/1)"), "\(p.text)")
    #expect(p.text.contains("[coordinator] worker ") && p.text.contains(" joins (ring "), "\(p.text)")
    // The newcomer takes rank 0's state: its replica matches (check_every compares them), and
    // the job ends in a world of 2.
    let generations = p.output.filter { $0.contains("[coordinator] generation ") }
    #expect(generations.last?.contains(": 2 workers") == true, "\(p.text)")
    #expect(p.text.contains("elastic: step ") && p.text.contains("done with 2 workers"), "\(p.text)")
    #expect(!p.text.contains("replica drift"), "\(p.text)")
    let acc = try #require(finalAccuracy(p.text), "\(p.text)")
    #expect(acc > 0.5, "\(p.text)")
}

/// Below the minimum with --max-restarts: no replacement is started (the job cannot go on);
/// the whole job restarts from its newest checkpoint, as a static one does.
@Test(.timeLimit(.minutes(10)))
func belowTheMinimumTheJobRestartsFromDisk() throws {
    let dir = Fixtures.tempDirectory("belowr")
    let job = try elasticJob(dir)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", "--min-workers", "2", "--max-restarts", "1",
                         "--run-dir", "\(dir)/run", job], environment: ["RINGTRAIN_TEST_KILL": "1:20"])
    #expect(p.wait(timeout: 240) == 0, "\(p.text)")
    #expect(!p.text.contains("to take its place"), "\(p.text)")
    #expect(p.text.contains("fewer than --min-workers 2") && p.text.contains("[launch] restart 1/1 from \(dir)/run/checkpoints/step-00000016"),
            "\(p.text)")
    #expect(p.text.contains("finished: 32 steps"), "\(p.text)")
}

@Test(.timeLimit(.minutes(10)))
func losingWorkersBelowTheMinimumEndsTheJob() throws {
    let dir = Fixtures.tempDirectory("below")
    let job = try elasticJob(dir)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", "--min-workers", "2", "--run-dir", "\(dir)/run", job],
                        environment: ["RINGTRAIN_TEST_KILL": "1:5"])
    let code = p.wait(timeout: 120)
    #expect(code != nil && code != 0, "\(p.text)")
    #expect(p.text.contains("job failed: rank 1") && p.text.contains("1 worker left, fewer than --min-workers 2"), "\(p.text)")
    #expect(!p.text.contains("finished:"), "\(p.text)")
}
