import Cluster
import Config
import Formats
import Glibc
import NN
import TensorCore
import TestSupport
import Testing
import Train

/// The `done:` line's fields: `done: test_loss 0.1234 test_acc 0.9 … train_time …` → ["test_loss": "0.1234", …].
func doneFields(_ output: String) -> [String: String] {
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("done:") }) else { return [:] }
    let w = line.split(separator: " ").dropFirst().map(String.init)
    var d: [String: String] = [:]
    for i in stride(from: 0, to: w.count - 1, by: 2) { d[w[i]] = w[i + 1] }
    return d
}

/// `ringtrain train` through the command line: a run, a resume that ends where an uninterrupted
/// run ends (the same bits, so the same printed loss), and a fresh run from the weights.
@Test(.timeLimit(.minutes(10)))
func trainResumeAndInitFromThroughTheCLI() throws {
    let dir = Fixtures.tempDirectory("cli-train")
    let job = try writeJob(dir, epochs: 2)
    let rt = Fixtures.ringtrain
    let full = Fixtures.run([rt, "train", job, "--checkpoint-dir", "\(dir)/full"])
    #expect(full.status == 0, "\(full.output)")
    let done = doneFields(full.output)
    #expect(Double(done["test_acc"] ?? "") ?? 0 > 0.9, "\(full.output)")
    #expect(FileIO.list("\(dir)/full").contains("step-00000064.safetensors"))

    let first = Fixtures.run([rt, "train", job, "--epochs", "1", "--checkpoint-dir", "\(dir)/part"])
    #expect(first.status == 0, "\(first.output)")
    // Resuming from a checkpoint the full run wrote mid-way (step 56 of 64) ends where it ended.
    let mid = "\(dir)/full/step-00000056.safetensors"
    try #require(FileIO.exists(mid), "no mid-run checkpoint: \(FileIO.list("\(dir)/full"))")
    let resumed = Fixtures.run([rt, "train", "--resume", mid, "--checkpoint-dir", "\(dir)/resumed"])
    #expect(resumed.status == 0 && resumed.output.contains("resumed from \(mid) at epoch 2, step 56"), "\(resumed.output)")
    #expect(doneFields(resumed.output)["test_loss"] == done["test_loss"] && doneFields(resumed.output)["test_acc"] == done["test_acc"],
            "resumed \(doneFields(resumed.output)) vs uninterrupted \(done)")

    // The last checkpoint of a finished run: nothing to do, said so with how to go further.
    let end = "\(dir)/full/step-00000064.safetensors"
    let again = Fixtures.run([rt, "train", "--resume", end, "--checkpoint-dir", "\(dir)/again"])
    #expect(again.status == 0 && again.output.contains("ends a finished run (step 64 of 64, 2 epochs): nothing to train")
            && again.output.contains("--epochs N"), "\(again.output)")
    let longer = Fixtures.run([rt, "train", "--resume", end, "--epochs", "3", "--checkpoint-dir", "\(dir)/longer"])
    #expect(longer.status == 0 && longer.output.contains("resumed from \(end) at epoch 3, step 64")
            && longer.output.contains("epoch 3/3"), "\(longer.output)")

    // inspect: progress, model, tensors; as JSON for scripts; a broken file is an error naming it.
    let shown = Fixtures.run([rt, "inspect", end])
    #expect(shown.status == 0 && shown.output.contains("job cluster-test (classification), step 64, epoch 3")
            && shown.output.contains("optimizer slots"), "\(shown.output)")
    let asJSON = Fixtures.run([rt, "inspect", end, "--json"])
    let tree = try JSON.parse(asJSON.output.split(separator: "\n").last.map(String.init) ?? "")
    #expect(tree["global_step"] == .int(64) && tree["world_size"] == .int(1), "\(asJSON.output)")
    try FileIO.writeAtomically("\(dir)/junk.safetensors", bytes: Array("not a checkpoint".utf8))
    let junk = Fixtures.run([rt, "inspect", "\(dir)/junk.safetensors"])
    #expect(junk.status != 0 && junk.output.contains("\(dir)/junk.safetensors"), "\(junk.output)")

    // --init-from: the weights only — a new run from step 0 that starts far better than chance.
    let warm = Fixtures.run([rt, "train", job, "--epochs", "1", "--init-from", "\(dir)/part/step-00000032.safetensors",
                             "--checkpoint-dir", ""])
    #expect(warm.status == 0 && warm.output.contains("initialised weights from"), "\(warm.output)")
    #expect(warm.output.contains("epoch 1/1 step 4/32 loss"), "a fresh run counts from step 0: \(warm.output)")
    let line = warm.output.split(separator: "\n").first { $0.contains("step 4/32 loss") }
    let words = line.map { $0.split(separator: " ").map(String.init) } ?? []
    let firstLoss = words.firstIndex(of: "loss").flatMap { Double(words[$0 + 1]) }
    #expect((firstLoss ?? 9) < 0.5, "the first steps should start from trained weights: \(warm.output)")
}

/// `--set` overrides any field of the job file (or of the default job), checked as the file is.
@Test func setOverridesJobFields() throws {
    let dir = Fixtures.tempDirectory("cli-set")
    let job = try writeJob(dir, epochs: 2)
    let rt = Fixtures.ringtrain
    let r = Fixtures.run([rt, "train", job, "--set", "train.epochs=1", "--set", "train.batch_size=16", "--checkpoint-dir", ""])
    #expect(r.status == 0 && r.output.contains("× batch 16") && r.output.contains("epoch 1/1"), "\(r.output)")
    let bad = Fixtures.run([rt, "train", job, "--set", "train.batch_size=many"])
    #expect(bad.status != 0 && bad.output.contains("train.batch_size"), "\(bad.output)")
    let noEquals = Fixtures.run([rt, "train", "--set", "train.epochs"])
    #expect(noEquals.status != 0 && noEquals.output.contains("expected path=value"), "\(noEquals.output)")
}

/// `ringtrain summary` prints the seed table's formulas: Conv 2·C_in·C_out·f²·H·W, Linear 2·d·h,
/// activations and pooling per element, parameters as PyTorch counts them.
@Test func summaryFiguresFollowTheSeedFormulas() throws {
    let r = Fixtures.run([Fixtures.ringtrain, "summary", "--model", "cnn"])
    #expect(r.status == 0, "\(r.output)")
    func row(_ prefix: String) -> (params: Int, flops: Int)? {
        guard let line = r.output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        let nums = line.split(separator: " ").suffix(2).map { Int($0.replacingOccurrences(of: ",", with: "")) }
        guard nums.count == 2, let p = nums[0], let f = nums[1] else { return nil }
        return (p, f)
    }
    #expect(row("0 Conv2D")! == (1 * 16 * 9 + 16, 2 * 1 * 16 * 9 * 28 * 28))
    #expect(row("3 Conv2D")! == (16 * 32 * 9 + 32, 2 * 16 * 32 * 9 * 14 * 14))
    #expect(row("1 ReLU")!.flops == 16 * 28 * 28)
    #expect(row("2 MaxPool2D")!.flops == 4 * 16 * 14 * 14)
    #expect(row("7 Linear")! == (1568 * 64 + 64, 2 * 1568 * 64))
    #expect(row("9 Linear")! == (64 * 10 + 10, 2 * 64 * 10))
    let total = try #require(r.output.split(separator: "\n").first { $0.hasPrefix("total") })
    #expect(total.contains("105,866") && total.contains("2,271,808"), "\(total)")
    // The same totals as the model itself reports (every leaf counted once).
    let m = try Model(spec: ModelSpec.zoo["cnn"]!)
    #expect(m.parameterCount == 105_866 && ModelSummary(m).totalFlops == 2_271_808)
}

/// `export-model`: the state dict under PyTorch's names, both spec forms, and an evaluation
/// output that this build's model reproduces from the file's weights.
@Test func exportModelWritesAReloadableStateDict() throws {
    let dir = Fixtures.tempDirectory("export")
    let r = Fixtures.run([Fixtures.ringtrain, "export-model", "resnet_small", "--out", "\(dir)/r.safetensors"])
    #expect(r.status == 0 && r.output.contains("77754 parameters"), "\(r.output)")
    let f = try SafeTensors.read(path: "\(dir)/r.safetensors")
    #expect(f.metadata["model"] == "resnet_small" && f.metadata["spec"] != nil && f.metadata["blocks_spec"] != nil)
    let m = try Model(spec: ModelSpec.zoo["resnet_small"]!)
    var weights = f
    weights.tensors.removeAll { $0.name.hasPrefix("__") }
    try Checkpoint.loadParameters(into: m, from: weights, source: "export")
    let x = try #require(f.tensor("__input")), want = try #require(f.tensor("__output")).floats()
    let y = m.forward(Tensor(shape: x.shape, values: x.floats()), training: false)
    #expect(zip(y.array, want).allSatisfy { abs($0 - $1) < 1e-5 })
    let bad = Fixtures.run([Fixtures.ringtrain, "export-model", "resnet9000", "--out", "\(dir)/x.safetensors"])
    #expect(bad.status != 0 && bad.output.contains("unknown model resnet9000"), "\(bad.output)")
}

/// Every benchmark runs briefly and prints lines a script can parse; every command has --help.
@Test(.timeLimit(.minutes(10)))
func benchCommandsPrintParseableResults() throws {
    let dir = Fixtures.tempDirectory("bench")
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 512, test: 128)
    let rt = Fixtures.ringtrain
    let train = Fixtures.run([rt, "bench", "train", "--epochs", "1", "--batch", "64", "--data", dir])
    let t = Fixtures.records(train.output, "RESULT")
    #expect(train.status == 0 && t.count == 1 && Int(t[0]["samples_per_s"] ?? "") ?? 0 > 0 && t[0]["params"] == "235146", "\(train.output)")
    let layers = Fixtures.run([rt, "bench", "layers", "--batch", "8", "--reps", "2"])
    #expect(layers.status == 0 && layers.output.contains("total ms per step:") && layers.output.contains("1 Linear"), "\(layers.output)")
    let conv = Fixtures.run([rt, "bench", "conv", "--batch", "2", "--reps", "1"])
    let convRows = conv.output.split(separator: "\n").filter { $0.hasPrefix("conv ") }
    #expect(conv.status == 0 && convRows.count >= 5 && convRows.allSatisfy { $0.split(separator: " ").suffix(3).allSatisfy { Double($0) ?? 0 > 0 } },
            "\(conv.output)")
    let ar = Fixtures.run([rt, "bench", "allreduce", "--workers", "2", "--size", "64KiB", "--iters", "3"])
    let rows = Fixtures.records(ar.output, "RESULT")
    #expect(ar.status == 0 && rows.count == 1 && rows[0]["check"] == "ok" && Double(rows[0]["busbw_GBps"] ?? "") != nil, "\(ar.output)")
    for cmd in [["train"], ["launch"], ["coordinator"], ["worker"], ["keygen"], ["summary"], ["version"],
                ["bench", "train"], ["bench", "layers"], ["bench", "conv"], ["bench", "allreduce"]] {
        let h = Fixtures.run([rt] + cmd + ["--help"])
        #expect(h.status == 0 && h.output.contains("USAGE: ringtrain \(cmd.joined(separator: " "))"), "\(cmd): \(h.output)")
    }
}

/// Ctrl-C (SIGINT) to `launch` stops the coordinator and every worker; none is left behind.
@Test(.timeLimit(.minutes(10)))
func interruptingLaunchLeavesNoProcess() throws {
    let dir = Fixtures.tempDirectory("sigint")
    let job = try writeJob(dir, epochs: 500)
    let p = try Started([Fixtures.ringtrain, "launch", "--workers", "2", job])
    #expect(p.waitFor("training cluster-test", timeout: 60), "\(p.text)")
    let workers = children(of: p.pid, matching: "worker")
    try #require(workers.count == 2, "\(workers)")
    p.kill(SIGINT)
    let code = p.wait(timeout: 20)
    #expect(code != nil && code != 0, "\(p.text)")
    let deadline = monotonicSeconds() + 10
    while workers.contains(where: { kill($0, 0) == 0 }) && monotonicSeconds() < deadline { usleep(50_000) }
    #expect(workers.allSatisfy { kill($0, 0) != 0 }, "workers left running: \(workers.filter { kill($0, 0) == 0 })")
}

/// Every shell script of the project passes shellcheck (when it is installed; scripts/bootstrap
/// --test installs it).
@Test(.enabled(if: Fixtures.run(["sh", "-c", "command -v shellcheck"]).status == 0, "shellcheck is not installed"))
func shellScriptsPassShellcheck() throws {
    let root = Fixtures.packageRoot
    let scripts = ["cluster/ssh-launch", "cluster/slurm/ringtrain.sbatch", "scripts/bootstrap", "scripts/test", ".ci/run",
                   "scripts/fixtures/make-all", "scripts/bench/allreduce", "scripts/bench/ddp", "scripts/bench/train",
                   "scripts/bench/transfer", "scripts/new-user", "scripts/docs/cli-reference", "scripts/report-screenshots"]
        + FileIO.list(root + "/cluster/netns").map { "cluster/netns/" + $0 }
    let r = Fixtures.run(["shellcheck"] + scripts.map { root + "/" + $0 })
    #expect(r.status == 0, "\(r.output)")
}

/// The Python scripts (soak, benchmarks and their PyTorch twins) at least compile.
@Test func pythonScriptsCompile() throws {
    let root = Fixtures.packageRoot
    let scripts = ["scripts/soak", "scripts/bench/elastic", "scripts/bench/elastic_torch.py", "scripts/bench/torch_seq_ddp.py",
                   "scripts/bench/anchor_val.py"].map { root + "/" + $0 }
    let r = Fixtures.run(["python3", "-c", "import sys\nfor f in sys.argv[1:]: compile(open(f).read(), f, 'exec')"] + scripts)
    #expect(r.status == 0, "\(r.output)")
}

/// The SLURM batch script run as SLURM would on this host: a stand-in `srun` starts the tasks with SLURM_PROCID/NTASKS/JOB_NODELIST set, task 0
/// hosts the coordinator, and the job trains to the end.
@Test(.timeLimit(.minutes(10)))
func slurmScriptRunsUnderAStandInSrun() throws {
    let script = Fixtures.packageRoot + "/cluster/slurm/ringtrain.sbatch"
    let dir = Fixtures.tempDirectory("slurm")
    let job = try writeJob(dir, epochs: 1)
    let bin = "\(dir)/bin"
    try FileIO.makeDirectories(bin)
    try FileIO.writeAtomically("\(bin)/srun", bytes: Array("""
        #!/usr/bin/env bash
        # Stand-in for srun: SLURM_NTASKS copies of the command on this host.
        while [[ "$1" == --* ]]; do shift; done
        pids=()
        for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i "$@" > "\(dir)/task$i.log" 2>&1 & pids+=($!); done
        code=0
        for p in "${pids[@]}"; do wait "$p" || code=$?; done
        exit $code
        """.utf8))
    chmod("\(bin)/srun", 0o755)
    let r = Fixtures.run(["env", "PATH=\(bin):/usr/bin:/bin", "SLURM_NTASKS=2", "SLURM_JOB_NODELIST=127.0.0.1",
                          "SLURM_CPUS_PER_TASK=1", "RINGTRAIN_PORT=\(Fixtures.freePort())", "RINGTRAIN_BIN=\(Fixtures.ringtrain)",
                          "bash", script, job])
    let task0 = (try? FileIO.readText("\(dir)/task0.log")) ?? ""
    #expect(r.status == 0, "\(r.output)\n\(task0)")
    #expect(task0.contains("[coordinator] job cluster-test finished: 16 steps"), "\(task0)")
}

/// `ringtrain generate`: a small causal Transformer trained on a repetitive text continues it;
/// greedy decoding is deterministic; a prompt outside the vocabulary, a checkpoint of another
/// task, and --init-from weights of another vocabulary are clear errors.
@Test(.timeLimit(.minutes(10)))
func generateContinuesTheTrainedText() throws {
    let dir = Fixtures.tempDirectory("cli-generate")
    let text = String(repeating: "abcdefgh ", count: 300)
    try FileIO.writeAtomically("\(dir)/corpus.txt", bytes: Array(text.utf8))
    let job = "\(dir)/lm.yaml"
    try FileIO.writeAtomically(job, bytes: Array("""
        name: tiny-lm
        task: language_model
        model:
          input: [16]
          layers:
            - {type: embedding, vocab: 9, dim: 16}
            - {type: learned_positions}
            - {type: transformer_encoder_layer, heads: 2, ffn: 32, dropout: 0, norm_first: true, causal: true}
            - layernorm
            - {type: linear, out: 9, bias: false, tie: 0}
        data: {train: \(dir)/corpus.txt, text: {tokenizer: char, cache_dir: \(dir)/cache}}
        train: {epochs: 6, batch_size: 8, log_every: 0}
        optimizer: {type: adam, lr: 0.01}
        scaling: {base_batch: 8}
        checkpoint: {dir: \(dir)/ckpt, keep: 1}
        """.utf8))
    let rt = Fixtures.ringtrain
    let trained = Fixtures.run([rt, "train", job])
    #expect(trained.status == 0, "\(trained.output)")
    let ckpt = try #require(Checkpoint.list(in: "\(dir)/ckpt").last)
    let g = Fixtures.run([rt, "generate", ckpt, "--prompt", "cdef", "--tokens", "40", "--temperature", "0"])
    #expect(g.status == 0, "\(g.output)")
    let out = g.output.split(separator: "\n").first.map(String.init) ?? ""
    // Greedy decoding continues the pattern, past the 16-position window (where the caches slide).
    let expected = String(String(repeating: "abcdefgh ", count: 8).dropFirst(2).prefix(44))
    #expect(out == expected, "greedy continuation: \(g.output)")
    let again = Fixtures.run([rt, "generate", ckpt, "--prompt", "cdef", "--tokens", "40", "--temperature", "0"])
    #expect(again.output.split(separator: "\n").first.map(String.init) == out)
    // predict: each line of a prompt file continued, as CSV; the same text as generate.
    try FileIO.writeAtomically("\(dir)/prompts.txt", bytes: Array("cdef\nh ab\n".utf8))
    let pr = Fixtures.run([rt, "predict", ckpt, "\(dir)/prompts.txt", "--tokens", "40"])
    #expect(pr.status == 0 && pr.output.hasPrefix("prompt,generated\n\"cdef\",\"\(expected.dropFirst(4))\"\n\"h ab\",\"cd"), "\(pr.output)")
    let badPrompt = Fixtures.run([rt, "predict", ckpt, "\(dir)/prompts.txt", "--out", "\(dir)/p.npy"])
    #expect(badPrompt.status != 0 && badPrompt.output.contains("write .csv"), "\(badPrompt.output)")
    try FileIO.writeAtomically("\(dir)/floats.npy", bytes: NPY.image(floats: [0.5, 1, 2, 3], shape: [1, 4]))
    let floats = Fixtures.run([rt, "predict", ckpt, "\(dir)/floats.npy"])
    #expect(floats.status != 0 && floats.output.contains("needs integer ids"), "\(floats.output)")
    let sampled = Fixtures.run([rt, "generate", ckpt, "--prompt", "a", "--tokens", "30", "--temperature", "1", "--top-k", "2", "--seed", "3"])
    #expect(sampled.status == 0 && sampled.output.hasPrefix("a"), "\(sampled.output)")

    // eval: the checkpoint's metrics on a split; a learned table refuses a longer context.
    let ev = Fixtures.run([rt, "eval", ckpt, "--split", "train"])
    let loss = ev.output.split(separator: "\n").first { $0.hasPrefix("eval: ") }
        .flatMap { l in l.split(separator: " ").firstIndex(of: "train_loss").map { Double(l.split(separator: " ")[$0 + 1]) ?? 9 } }
    #expect(ev.status == 0 && (loss ?? 9) < 0.3 && ev.output.contains("bpb"), "\(ev.output)")
    let noTest = Fixtures.run([rt, "eval", ckpt])
    #expect(noTest.status != 0 && noTest.output.contains("the job has no test split"), "\(noTest.output)")
    let longer = Fixtures.run([rt, "eval", ckpt, "--split", "train", "--context", "32"])
    #expect(longer.status != 0 && longer.output.contains("learned positions have 16 rows, so it cannot run at context 32"), "\(longer.output)")

    let bad = Fixtures.run([rt, "generate", ckpt, "--prompt", "xyz"])
    #expect(bad.status != 0 && bad.output.contains("not in the model's vocabulary"), "\(bad.output)")
    try FileIO.makeDirectories("\(dir)/other")
    let other = try writeJob("\(dir)/other", epochs: 1)
    #expect(Fixtures.run([rt, "train", other, "--checkpoint-dir", "\(dir)/other-ckpt"]).status == 0)
    let otherCkpt = try #require(Checkpoint.list(in: "\(dir)/other-ckpt").last)
    let notLM = Fixtures.run([rt, "generate", otherCkpt])
    #expect(notLM.status != 0 && notLM.output.contains("not a language model"), "\(notLM.output)")

    // The same model on text with other characters (the same count): --init-from refuses.
    try FileIO.writeAtomically("\(dir)/other.txt", bytes: Array(String(repeating: "ijklmnop ", count: 300).utf8))
    let wrong = Fixtures.run([rt, "train", job, "--data", "\(dir)/other.txt", "--init-from", ckpt, "--checkpoint-dir", ""])
    #expect(wrong.status != 0 && wrong.output.contains("vocabulary"), "\(wrong.output)")
}
