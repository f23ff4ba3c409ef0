import Datasets
import Formats
import TensorCore
import TestSupport
import Testing

/// Fashion-MNIST-named IDX files in `dir`, loaded as the default job does.
func loadIDX(_ dir: String, normalize: DataConfig.Normalize = .auto, known: DataInfo? = nil) throws -> LoadedData {
    var c = DataConfig()
    c.path = dir
    c.normalize = normalize
    return try DataLoading.load(c, .init(input: .values, target: .classes, seed: 0, known: known))
}

@Test func loadsSyntheticSplitsNormalisedByTrainingStatistics() throws {
    let dir = Fixtures.tempDirectory("fm")
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 50, test: 20)
    let raw = try loadIDX(dir, normalize: .none)
    #expect(raw.train.count == 50 && raw.test?.count == 20)
    #expect(raw.train.input == FieldSpec(.values, shape: [1, 28, 28]))
    #expect(raw.train.target == FieldSpec(.classes, shape: [], count: 10))
    let b = Batch()
    raw.train.gather(Array(0..<50)[...], into: b)
    #expect(b.x.buffer.allSatisfy { $0 >= 0 && $0 <= 1 } && b.x.buffer.contains { $0 > 0.5 })
    // Pixels / 255, exactly as the IDX bytes say.
    let bytes = try IDX.read("\(dir)/train-images-idx3-ubyte").bytes
    #expect((0..<784).allSatisfy { b.x[$0] == Float(bytes[$0]) * (1 / 255) })

    let d = try loadIDX(dir)
    let s = try #require(d.info.inputScaling)
    #expect(s.mode == .global && s.mean.count == 1)
    d.train.gather(Array(0..<50)[...], into: b)
    let v = b.x.buffer.map(Double.init)
    let mean = v.reduce(0, +) / Double(v.count)
    let std = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot()
    #expect(abs(mean) < 1e-4 && abs(std - 1) < 1e-3)
    // The test split uses the training split's statistics, not its own.
    let t = Batch()
    d.test!.gather(Array(0..<20)[...], into: t)
    raw.test!.gather(Array(0..<20)[...], into: b)
    let k = Float(1 / s.std[0]), o = Float(-s.mean[0] / s.std[0])
    #expect((0..<t.x.count).allSatisfy { abs(t.x[$0] - (b.x[$0] * k + o)) < 1e-5 })
    // Statistics from a checkpoint are reused as they are.
    var known = DataInfo()
    known.inputScaling = Scaling(mode: .global, mean: [0.5], std: [0.25])
    let k2 = try loadIDX(dir, known: known)
    k2.train.gather([0], into: t)
    raw.train.gather([0], into: b)
    #expect((0..<784).allSatisfy { abs(t.x[$0] - (b.x[$0] - 0.5) / 0.25) < 1e-5 })
}

func loadError(_ dir: String, dataset: String = "fashion-mnist") -> String {
    var c = DataConfig()
    c.dataset = dataset
    c.path = dir
    do { _ = try DataLoading.load(c, .init(input: .values, target: .classes, seed: 0)); return "no error" } catch { return "\(error)" }
}

@Test func missingDatasetTellsWhatToDo() {
    let e = loadError("/nonexistent/fmnist")
    #expect(e.contains("/nonexistent/fmnist: fashion-mnist not found: no such directory"), "\(e)")
    #expect(e.contains("scripts/bootstrap") && e.contains("--data DIR"))
    let empty = Fixtures.tempDirectory("fm-empty")
    #expect(loadError(empty).contains("train-images-idx3-ubyte.gz: fashion-mnist file not found in \(empty)"))
}

/// `data.dataset: mnist` loads MNIST or says where it looked — never Fashion-MNIST's files.
@Test func mnistIsLookedForInItsOwnDirectory() throws {
    var c = DataConfig()
    c.dataset = "mnist"
    let dir = "/usr/share/datasets/mnist"
    if FileIO.isDirectory(dir) {
        _ = try DataLoading.load(c, .init(input: .values, target: .classes, seed: 0))
    } else {
        do {
            _ = try DataLoading.load(c, .init(input: .values, target: .classes, seed: 0))
            Issue.record("loaded something for mnist although \(dir) does not exist")
        } catch {
            #expect("\(error)".hasPrefix("\(dir): mnist not found"), "\(error)")
        }
    }
}

/// With its files in a directory, `dataset: mnist` loads them (and names them MNIST's).
@Test func mnistLoadsFromItsDirectory() throws {
    let dir = Fixtures.tempDirectory("mnist")
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 30, test: 10)
    var c = DataConfig()
    c.dataset = "mnist"
    c.path = dir
    let d = try DataLoading.load(c, .init(input: .values, target: .classes, seed: 0))
    #expect(d.train.name == "mnist/train" && d.train.count == 30 && d.test?.name == "mnist/test" && d.test?.count == 10)
}

@Test func countMismatchAndBadLabels() throws {
    let dir = Fixtures.tempDirectory("fm-bad")
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 5, test: 5)
    try FileIO.writeAtomically("\(dir)/train-labels-idx1-ubyte", bytes: Fixtures.idx(dims: [4], bytes: [1, 2, 3, 4]))
    #expect(loadError(dir).contains("train-labels-idx1-ubyte: holds 4 labels but \(dir)/train-images-idx3-ubyte holds 5 images"))
    try FileIO.writeAtomically("\(dir)/train-labels-idx1-ubyte", bytes: Fixtures.idx(dims: [5], bytes: [1, 2, 3, 4, 12]))
    #expect(loadError(dir).contains("label 12 at index 4 is outside 0..<10"))
    try FileIO.writeAtomically("\(dir)/train-images-idx3-ubyte", bytes: Fixtures.idx(dims: [5, 28, 28], bytes: [1, 2]))
    #expect(loadError(dir).contains("train-images-idx3-ubyte: not a valid IDX file: truncated"))
}

@Test func samplerPartitionsEachGlobalBatch() {
    let world = 3, b = 4
    let samplers = (0..<world).map { DistributedSampler(count: 50, batchSize: b, world: world, rank: $0, seed: 7) }
    #expect(samplers[0].stepsPerEpoch == 4)
    let perm = samplers[0].permutation(epoch: 2)
    #expect(perm == samplers[2].permutation(epoch: 2))
    #expect(perm != samplers[0].permutation(epoch: 3))
    var seen: [Int] = []
    for step in 0..<4 { for s in samplers { seen += s.indices(perm, step: step) } }
    #expect(Set(seen).count == 48 && seen == Array(perm.prefix(48)))
    // The single-node batch of 12 is the union of the three ranks' batches.
    let single = DistributedSampler(count: 50, batchSize: 12, seed: 7)
    #expect(Array(single.indices(perm, step: 1)) == samplers.flatMap { $0.indices(perm, step: 1) })
}
