import Cluster
import Formats
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// The line `[coordinator] job … finished: N steps, test_acc X` → X.
func finalAccuracy(_ text: String) -> Double? {
    guard let line = text.split(separator: "\n").last(where: { $0.contains("finished:") && $0.contains("test_acc") }),
          let r = line.range(of: "test_acc ") else { return nil }
    return Double(line[r.upperBound...].prefix { $0 == "." || $0.isNumber })
}

@Test(.timeLimit(.minutes(10)))
func launchTrainsWithTwoWorkers() throws {
    let dir = Fixtures.tempDirectory("launch")
    let job = try writeJob(dir, epochs: 2)
    let run = "\(dir)/run"
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", job, "--run-dir", run])
    let code = p.wait(timeout: 150)
    #expect(code == 0, "\(p.text)")
    #expect(p.text.contains("[coordinator] job cluster-test finished: 32 steps"))
    #expect(p.output.first == "[launch] run directory \(run)" && p.output.last == "[launch] run directory \(run)", "\(p.text)")
    // Rank 0 records the run: every step, and each epoch with the all-reduce timing.
    let metrics = try FileIO.readText("\(run)/metrics.jsonl").split(separator: "\n")
    #expect(metrics.filter { $0.contains("\"type\":\"step\"") }.count == 32)
    #expect(metrics.filter { $0.contains("\"type\":\"epoch\"") && $0.contains("\"allreduce_ms\":") && $0.contains("\"hidden_share\":") }.count == 2,
            "\(metrics)")
    #expect(try FileIO.readText("\(run)/log.txt").contains("training cluster-test"))
    // Every rank's timing per epoch, and the report's per-rank table from it.
    let ranks = try FileIO.readText("\(run)/ranks.jsonl").split(separator: "\n")
    #expect(ranks.count == 4 && ranks.filter { $0.contains("\"rank\":1") }.count == 2
            && ranks.allSatisfy { $0.contains("\"step_ms\":") && $0.contains("\"allreduce_ms\":") }, "\(ranks)")
    let plot = Fixtures.run([Fixtures.ringtrain, "plot", run])
    let html = try FileIO.readText("\(run)/report/report.html")
    #expect(plot.status == 0 && html.contains("Per-rank timings") && html.contains("<tr><td>1</td>"), "\(plot.output)")
    #expect(p.text.contains("[rank 0] training cluster-test (classification):"))
    #expect(p.text.contains("2 workers × batch 32 = global batch 64"))
    #expect((finalAccuracy(p.text) ?? 0) > 0.9, "\(p.text)")
    #expect(!p.output.contains { $0.hasPrefix("[rank 1]") }, "only rank 0 prints progress")
    #expect(Checkpoint.list(in: "\(dir)/ckpt").count == 2)
}

@Test(.timeLimit(.minutes(10)))
func killedWorkerStopsEveryProcessNamingItsRank() throws {
    let dir = Fixtures.tempDirectory("kill")
    let job = try writeJob(dir, epochs: 200)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "3", job])
    #expect(p.waitFor("checkpoint", timeout: 120), "\(p.text)")
    let workers = children(of: p.pid, matching: "worker")
    try #require(workers.count == 3, "\(workers) \(p.pid) \(p.text)")
    // The launcher asks each child for its rank on the command line: kill the one that is rank 1.
    let rank1 = try #require(children(of: p.pid, matching: "--rank 1 ").first, "no child with --rank 1")
    let killedAt = monotonicSeconds()
    kill(rank1, SIGKILL)
    let code = p.wait(timeout: 30)
    let took = monotonicSeconds() - killedAt
    #expect(code == 1, "\(p.text)")
    #expect(took < 10, "the launcher took \(took) s to stop")
    #expect(p.text.contains("[coordinator] job failed: rank 1"), "\(p.text)")
    for r in [0, 2] {
        #expect(p.output.contains { $0.hasPrefix("[rank \(r)]") && $0.contains("rank 1") && $0.contains("aborted") }, "rank \(r): \(p.text)")
    }
    #expect(workers.allSatisfy { kill($0, 0) != 0 }, "no worker is left behind")
}

/// `[rank 0] epoch E/N step S/M loss L lr X` lines → (global step, the line's loss and lr text).
func stepLosses(_ text: String, stepsPerEpoch: Int) -> [Int: String] {
    var out: [Int: String] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("[rank 0] epoch ") && line.contains(" loss ") && !line.contains("train_loss") {
        let w = line.split(separator: " ")
        guard let e = w.firstIndex(of: "epoch"), let st = w.firstIndex(of: "step"), let l = w.firstIndex(of: "loss"),
              let epoch = Int(w[e + 1].split(separator: "/")[0]), let step = Int(w[st + 1].split(separator: "/")[0]) else { continue }
        out[(epoch - 1) * stepsPerEpoch + step] = w[(l + 1)...].joined(separator: " ")
    }
    return out
}

@Test(.timeLimit(.minutes(10)))
func restartResumesFromTheLastCheckpoint() throws {
    // Uninterrupted reference run; both runs print the loss every 4 steps.
    let refDir = Fixtures.tempDirectory("ref")
    // 4,096 samples: 64 steps an epoch, so the workers are still busy when the test kills one.
    let refJob = try writeJob(refDir, epochs: 6, samples: 4096, extra: "")
    let ref = try Started([Fixtures.ringtrain, "launch", "--workers", "2", refJob])
    #expect(ref.wait(timeout: 150) == 0, "\(ref.text)")
    let refAcc = try #require(finalAccuracy(ref.text))

    let dir = Fixtures.tempDirectory("restart")
    let job = try writeJob(dir, epochs: 6, samples: 4096)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", "--max-restarts", "1", job])
    #expect(p.waitFor("step-00000040", timeout: 120), "\(p.text)")
    let workers = children(of: p.pid, matching: "worker")
    try #require(workers.count == 2)
    kill(workers[0], SIGKILL)
    #expect(p.wait(timeout: 150) == 0, "\(p.text)")
    #expect(p.text.contains("[launch] restart 1/1 from \(dir)/ckpt/step-"), "\(p.text)")
    #expect(p.text.contains("resumed from"), "\(p.text)")
    let acc = try #require(finalAccuracy(p.text))
    #expect(acc == refAcc, "restarted \(acc) vs uninterrupted \(refAcc)")
    // Every loss printed after the restart equals the uninterrupted run's at the same step.
    let resumedAt = try #require(p.text.split(separator: "\n").first { $0.contains("resumed from") }
        .flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }, "\(p.text)")
    let after = stepLosses(String(p.text[p.text.range(of: "resumed from")!.lowerBound...]), stepsPerEpoch: 64)
    let reference = stepLosses(ref.text, stepsPerEpoch: 64)
    #expect(after.count >= 10 && after.keys.allSatisfy { $0 > resumedAt }, "\(after)")
    for (step, loss) in after { #expect(reference[step] == loss, "step \(step): restarted \(loss) vs uninterrupted \(reference[step] ?? "-")") }
}

@Test(.timeLimit(.minutes(10)))
func workersExitWhenTheCoordinatorDies() throws {
    let dir = Fixtures.tempDirectory("coord")
    let job = try writeJob(dir, epochs: 500)
    let port = Fixtures.freePort()
    let coordinator = try Started([Fixtures.ringtrain, "coordinator", "--listen", "tcp://127.0.0.1:\(port)", "--workers", "2", job])
    let workers = try (0..<2).map { _ in
        try Started([Fixtures.ringtrain, "worker", "--coordinator", "tcp://127.0.0.1:\(port)", "--bind", "127.0.0.1", job])
    }
    #expect(coordinator.waitFor("job cluster-test started", timeout: 60), "\(coordinator.text)")
    #expect(workers[0].waitFor("checkpoint", timeout: 60) || workers[1].waitFor("checkpoint", timeout: 60))
    coordinator.kill(SIGKILL)
    let t0 = monotonicSeconds()
    for w in workers {
        let code = w.wait(timeout: 20)
        #expect(code != nil && code != 0, "\(w.text)")
        #expect(w.text.contains("coordinator") && (w.text.contains("silent") || w.text.contains("aborted")), "\(w.text)")
    }
    #expect(monotonicSeconds() - t0 < 10)
}

/// A worker whose coordinator is not there says so at once, counts down, and gives up at its
/// timeout; when the coordinator appears in time, it says it reached it and joins.
@Test(.timeLimit(.minutes(10)))
func workerWaitingForAnUnreachableCoordinatorSaysSo() throws {
    let port = Fixtures.freePort()
    let lonely = try Started([Fixtures.ringtrain, "worker", "--coordinator", "tcp://127.0.0.1:\(port)", "--bind", "127.0.0.1",
                              "--rendezvous-timeout", "4"])
    #expect(lonely.waitFor("waiting for the coordinator at tcp://127.0.0.1:\(port): not reachable yet (retrying); giving up in 3 s",
                           timeout: 3), "\(lonely.text)")
    let code = lonely.wait(timeout: 20)
    #expect(code != nil && code != 0 && lonely.text.contains("no answer from the coordinator at tcp://127.0.0.1:\(port) within 4 s"),
            "\(lonely.text)")

    let dir = Fixtures.tempDirectory("late-coordinator")
    let job = try writeJob(dir, epochs: 1)
    let late = Fixtures.freePort()
    let worker = try Started([Fixtures.ringtrain, "worker", "--coordinator", "tcp://127.0.0.1:\(late)", "--bind", "127.0.0.1", job])
    #expect(worker.waitFor("not reachable yet", timeout: 5), "\(worker.text)")
    let coordinator = try Started([Fixtures.ringtrain, "coordinator", "--listen", "tcp://127.0.0.1:\(late)", "--workers", "1", job])
    #expect(worker.wait(timeout: 120) == 0 && worker.text.contains("reached the coordinator at tcp://127.0.0.1:\(late)"), "\(worker.text)")
    #expect(coordinator.wait(timeout: 30) == 0, "\(coordinator.text)")
}

/// A GPT-style language model under `launch --workers 2` (8 windows each) prints the loss curve
/// one process with all 16 prints, step for step.
@Test(.timeLimit(.minutes(10)))
func gptLaunchFollowsTheSingleProcessLossCurve() throws {
    let dir = Fixtures.tempDirectory("launch-gpt")
    var rng = RNG(seed: 4)
    let text = String((0..<5000).map { i in Character(UnicodeScalar(UInt8(97 + (i * 3 + rng.below(3)) % 12))) })
    try FileIO.writeAtomically("\(dir)/corpus.txt", bytes: Array(text.utf8))
    let job = "\(dir)/gpt.yaml"
    try FileIO.writeAtomically(job, bytes: Array("""
        name: launch-gpt
        task: language_model
        model:
          input: [16]
          layers:
            - {type: embedding, vocab: 12, dim: 16}
            - {type: learned_positions}
            - {type: repeat, times: 2, layer: {type: transformer_encoder_layer, heads: 2, ffn: 32, dropout: 0, activation: gelu, norm_first: true, causal: true}}
            - layernorm
            - {type: linear, out: 12, bias: false, tie: 0}
        data: {train: \(dir)/corpus.txt, validation_fraction: 0.1, text: {tokenizer: char, cache_dir: \(dir)/cache, stride: 8}}
        train: {max_steps: 24, batch_size: 16, log_every: 2}
        optimizer: {type: adamw, lr: 0.003, weight_decay: 0.1, decay: matrices}
        scaling: {base_batch: 16}
        checkpoint: {dir: ""}
        comm: {heartbeat: 0.5, heartbeat_timeout: 3, timeout: 10}
        """.utf8))
    func losses(_ out: String) -> [Double] {
        out.split(separator: "\n").filter { $0.contains(" step ") && $0.contains(" loss ") && !$0.contains("train_loss") }.compactMap { line in
            let w = line.split(separator: " ")
            return w.firstIndex(of: "loss").flatMap { Double(w[$0 + 1]) }
        }
    }
    let single = Fixtures.run([Fixtures.ringtrain, "train", job, "--checkpoint-dir", "\(dir)/ck"])
    #expect(single.status == 0, "\(single.output)")
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", job, "--batch-size", "8"])
    #expect(p.wait(timeout: 300) == 0, "\(p.text)")
    #expect(p.text.contains("2 workers × batch 8 = global batch 16"), "\(p.text)")
    let a = losses(single.output), b = losses(p.text)
    #expect(a.count == 12 && b.count == 12, "\(a) vs \(b)")
    for (x, y) in zip(a, b) { #expect(abs(x - y) <= 2e-4 * max(1, abs(x)), "single \(a)\nlaunch \(b)") }
    #expect(a.last! < a.first! * 0.8, "the loss falls: \(a)")

    // A multi-worker fine-tune: every worker starts from the trained weights.
    let ckpt = try #require(Checkpoint.list(in: "\(dir)/ck").last)
    let warm = try Started([Fixtures.ringtrain, "launch", "--workers", "2", job, "--batch-size", "8", "--init-from", ckpt,
                            "--threads", "1", "--set", "train.max_steps=4", "--checkpoint-dir", ""])
    #expect(warm.wait(timeout: 300) == 0, "\(warm.text)")
    #expect(warm.text.contains("[rank 0] initialised weights from \(ckpt)"), "\(warm.text)")
    let w = losses(warm.text)
    #expect(!w.isEmpty && w[0] < a[0] * 0.8, "a fine-tune starts from the trained loss: \(w) vs fresh \(a)")
    let bad = Fixtures.run([Fixtures.ringtrain, "launch", "--workers", "2", job, "--init-partial"])
    #expect(bad.status != 0 && bad.output.contains("--init-partial needs --init-from"), "\(bad.output)")
}
