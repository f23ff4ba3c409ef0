import Formats
import Glibc
import Testing
import TestSupport
import Train

private let torchPython = Fixtures.python(with: "torch, safetensors.torch")

/// Both directions through safetensors with PyTorch itself (where an interpreter with torch is
/// found: RINGTRAIN_PYTHON, ./.venv or the anchors' /opt/anchor-venv):
/// the Python snippet of docs/checkpoints.md, as written, loads a checkpoint of the default
/// job into its torch.nn model, which then predicts what `ringtrain predict` does; and weights
/// saved from a torch.nn model start a run with --init-from unchanged.
@Test(.enabled(if: torchPython != nil, "no Python with torch and safetensors"), .timeLimit(.minutes(10)))
func checkpointsGoToPyTorchAndBack() throws {
    let py = torchPython!
    let dir = Fixtures.tempDirectory("torch-interop")
    let rt = Fixtures.ringtrain
    let run = "\(dir)/run"
    // The default job (its model is the snippet's) on a small Fashion-MNIST-shaped set.
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 512, test: 64)
    let t = Fixtures.run([rt, "train", "--data", dir, "--set", "train.max_steps=10", "--run-dir", run])
    try #require(t.status == 0, "\(t.output)")
    let ckpt = try #require(Checkpoint.list(in: "\(run)/checkpoints").last)

    // The snippet, exactly as docs/checkpoints.md has it, on our file.
    let doc = try FileIO.readText(Fixtures.packageRoot + "/docs/checkpoints.md")
    let start = try #require(doc.range(of: "```python\n"))
    let end = try #require(doc.range(of: "\n```", range: start.upperBound..<doc.endIndex))
    let snippet = String(doc[start.upperBound..<end.lowerBound])
    #expect(snippet.contains("load_state_dict(state)"))
    let images = "\(dir)/t10k-images-idx3-ubyte"
    let script = """
        import os, gzip, numpy as np, torch
        os.chdir(\(JSON.string(.string(FileIO.directory(of: ckpt)))))
        \(snippet.replacingOccurrences(of: "step-00004680.safetensors", with: (ckpt.split(separator: "/").last.map(String.init) ?? "")))
        model.eval()
        raw = open(\(JSON.string(.string(images))), "rb").read()
        x = np.frombuffer(raw, dtype=np.uint8, offset=16)[:16 * 784].reshape(16, 1, 28, 28).astype(np.float32)
        from safetensors import safe_open
        import json
        with safe_open(\(JSON.string(.string(ckpt))), "np") as f:
            s = json.loads(f.metadata()["data"])["input_scaling"]   # the normalisation the run used
        x = (x / 255 - s["mean"][0]) / s["std"][0]
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
        for row in p: print(" ".join("%.6f" % v for v in row))
        """
    try FileIO.writeAtomically("\(dir)/load.py", bytes: Array(script.utf8))
    // One thread: the test suite keeps both cores busy.
    let torchOut = Fixtures.run(["env", "OMP_NUM_THREADS=1", py, "\(dir)/load.py"])
    try #require(torchOut.status == 0, "\(torchOut.output)")
    let ours = Fixtures.run([rt, "predict", ckpt, images])
    try #require(ours.status == 0, "\(ours.output)")
    let mine = ours.output.split(separator: "\n").dropFirst().prefix(16).map { $0.split(separator: ",").dropFirst().map { Double($0)! } }
    let theirs = torchOut.output.split(separator: "\n").map { $0.split(separator: " ").map { Double($0)! } }
    #expect(theirs.count == 16 && mine.count == 16)
    let worst = zip(mine, theirs).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? 1
    #expect(worst < 1e-4, "probabilities differ by \(worst)")

    // And back: a torch.nn model's state_dict starts a run; at lr 0 its first checkpoint holds
    // those very weights.
    let save = """
        import torch, torch.nn as nn, safetensors.torch
        torch.manual_seed(7)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
        safetensors.torch.save_file(model.state_dict(), \(JSON.string(.string("\(dir)/torch.safetensors"))))
        """
    try FileIO.writeAtomically("\(dir)/save.py", bytes: Array(save.utf8))
    let saved = Fixtures.run(["env", "OMP_NUM_THREADS=1", py, "\(dir)/save.py"])
    try #require(saved.status == 0, "\(saved.output)")
    let warm = Fixtures.run([rt, "train", "--data", dir, "--init-from", "\(dir)/torch.safetensors", "--set", "train.max_steps=1", "--lr", "0",
                             "--run-dir", "\(dir)/warm"])
    #expect(warm.status == 0 && warm.output.contains("initialised weights from \(dir)/torch.safetensors"), "\(warm.output)")
    let theirsFile = try SafeTensors.read(path: "\(dir)/torch.safetensors")
    let oursFile = try SafeTensors.read(path: try #require(Checkpoint.list(in: "\(dir)/warm/checkpoints").last))
    for name in ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"] {
        let a = try #require(theirsFile.tensor(name)), b = try #require(oursFile.tensor(name))
        #expect(a.shape == b.shape && a.floats() == b.floats(), "\(name) changed on the way in")
    }
}
