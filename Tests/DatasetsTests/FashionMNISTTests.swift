import Datasets
import Formats
import TensorCore
import TestSupport
import Testing

@Test func loadsSyntheticSplits() throws {
    let dir = Fixtures.tempDirectory("fm")
    try Fixtures.writeSyntheticFashionMNIST(dir, train: 50, test: 20)
    let train = try FashionMNIST.load(dir, split: .train)
    #expect(train.count == 50 && train.sampleShape == [1, 28, 28] && train.numClasses == 10)
    #expect(train.features.buffer.allSatisfy { $0 >= 0 && $0 <= 1 })
    let (m, s) = train.featureStatistics()
    train.normalize(mean: m, std: s)
    let (m2, s2) = train.featureStatistics()
    #expect(abs(m2) < 1e-4 && abs(s2 - 1) < 1e-3)
}

func loadError(_ dir: String) -> String {
    do { _ = try FashionMNIST.load(dir, split: .train); return "no error" } catch { return "\(error)" }
}

@Test func missingDatasetTellsWhatToDo() {
    let e = loadError("/nonexistent/fmnist")
    #expect(e.contains("/nonexistent/fmnist: dataset directory not found"))
    #expect(e.contains("scripts/bootstrap") && e.contains("--data DIR"))
    let empty = Fixtures.tempDirectory("fm-empty")
    #expect(loadError(empty).contains("train-images-idx3-ubyte.gz: dataset file not found"))
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
