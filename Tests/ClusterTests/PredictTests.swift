import Formats
import Glibc
import TensorCore
import Testing
import TestSupport
import Train

/// `ringtrain predict` on images (IDX) gives the classes `eval` scores, as CSV and .npy; on a
/// CSV it reads the trained feature columns whatever else the file holds and answers in data
/// units; inputs of another shape, dtype or kind are refused with the reason.
@Test(.timeLimit(.minutes(10)))
func predictAnswersInTheTasksTerms() throws {
    let dir = Fixtures.tempDirectory("predict")
    let job = try writeJob(dir, epochs: 2)
    let rt = Fixtures.ringtrain
    let run = "\(dir)/run"
    let trained = Fixtures.run([rt, "train", job, "--run-dir", run, "--checkpoint-dir", "checkpoints"])
    try #require(trained.status == 0, "\(trained.output)")
    let acc = try #require(doneFields(trained.output)["test_acc"].flatMap(Double.init))

    // The test images, by run directory: classes and probabilities.
    let images = "\(dir)/t10k-images-idx3-ubyte"
    let p = Fixtures.run([rt, "predict", run, images])
    #expect(p.status == 0, "\(p.output)")
    let lines = p.output.split(separator: "\n")
    #expect(lines.first == "class,p_0,p_1,p_2,p_3,p_4,p_5,p_6,p_7,p_8,p_9" && lines.count == 257, "\(lines.prefix(3))")
    let labels = try FileIO.read("\(dir)/t10k-labels-idx1-ubyte").dropFirst(8)
    let rows = lines.dropFirst().map { $0.split(separator: ",").map { Double($0)! } }
    let correct = zip(rows, labels).filter { Int($0.0[0]) == Int($0.1) }.count
    #expect(fmt(Double(correct) / 256, 4) == fmt(acc, 4), "predict \(correct)/256 vs eval \(acc)")
    #expect(rows.allSatisfy { abs($0.dropFirst().reduce(0, +) - 1) < 1e-5 && $0[Int($0[0]) + 1] == $0.dropFirst().max() })

    // The same as a float32 [samples, columns] array.
    let n = Fixtures.run([rt, "predict", run, images, "--out", "\(dir)/p.npy"])
    #expect(n.status == 0 && n.output.contains("predict: 256 samples → \(dir)/p.npy"), "\(n.output)")
    let a = try NPY.read("\(dir)/p.npy")
    #expect(a.header.shape == [256, 11])

    // Wrong inputs: another shape, a text file for a classifier, a name that tells nothing.
    try FileIO.writeAtomically("\(dir)/small.npy", bytes: NPY.image(floats: [Float](repeating: 0.5, count: 10), shape: [2, 5]))
    let shape = Fixtures.run([rt, "predict", run, "\(dir)/small.npy"])
    #expect(shape.status != 0 && shape.output.contains("\(dir)/small.npy: holds samples of") && shape.output.contains("the model was trained on"),
            "\(shape.output)")
    try FileIO.writeAtomically("\(dir)/notes.txt", bytes: Array("hello\n".utf8))
    let text = Fixtures.run([rt, "predict", run, "\(dir)/notes.txt"])
    #expect(text.status != 0 && text.output.contains("predict generates text for language models"), "\(text.output)")
    let unknown = Fixtures.run([rt, "predict", run, "\(dir)/job.yaml"])
    #expect(unknown.status != 0 && unknown.output.contains("cannot tell the format from the name"), "\(unknown.output)")
    let missing = Fixtures.run([rt, "predict", run, "\(dir)/none.npy"])
    #expect(missing.status != 0 && missing.output.contains("\(dir)/none.npy"), "\(missing.output)")

    // A regression on a CSV: y = 3a − 2b + 1 in data units, with targets standardised in training.
    var csv = "a,b,y\n", rng = RNG(seed: 5)
    for _ in 0..<400 {
        let x = rng.uniform(-1, 1), z = rng.uniform(-1, 1)
        csv += "\(x),\(z),\(3 * x - 2 * z + 1)\n"
    }
    try FileIO.writeAtomically("\(dir)/lin.csv", bytes: Array(csv.utf8))
    try FileIO.writeAtomically("\(dir)/lin.yaml", bytes: Array("""
        name: lin
        task: regression
        model: {input: [2], layers: [{type: linear, out: 1}]}
        data: {format: csv, train: \(dir)/lin.csv, csv: {targets: [y]}, normalize_targets: true}
        train: {epochs: 60, batch_size: 32, log_every: 0}
        optimizer: {type: adam, lr: 0.05}
        scaling: {base_batch: 32}
        """.utf8))
    let lin = Fixtures.run([rt, "train", "\(dir)/lin.yaml", "--run-dir", "\(dir)/lin-run"])
    try #require(lin.status == 0, "\(lin.output)")
    // The file to predict has its columns in another order, and no target.
    try FileIO.writeAtomically("\(dir)/new.csv", bytes: Array("b,a\n0,0\n1,1\n-1,0.5\n".utf8))
    let r = Fixtures.run([rt, "predict", "\(dir)/lin-run", "\(dir)/new.csv"])
    let ys = r.output.split(separator: "\n").dropFirst().compactMap { Double($0) }
    #expect(r.status == 0 && r.output.hasPrefix("y\n") && ys.count == 3, "\(r.output)")
    for (y, want) in zip(ys, [1.0, 2.0, 4.5]) { #expect(abs(y - want) < 0.05, "\(ys)") }
}

/// eval on other data reads it with the checkpoint's classes: a file with a class the model
/// was not trained on is an error naming it, and fewer classes are fine.
@Test(.timeLimit(.minutes(10)))
func evalOnDataWithOtherClassesIsAClearError() throws {
    let dir = Fixtures.tempDirectory("eval-classes")
    var rng = RNG(seed: 3)
    func table(_ classes: [String], rows: Int) -> String {
        var s = "x,y,kind\n"
        for i in 0..<rows {
            let c = i % classes.count
            s += "\(Float(c) + rng.uniform(-0.3, 0.3)),\(rng.uniform(-1, 1)),\(classes[c])\n"
        }
        return s
    }
    try FileIO.writeAtomically("\(dir)/train.csv", bytes: Array(table(["ant", "bee", "cat"], rows: 300).utf8))
    try FileIO.writeAtomically("\(dir)/more.csv", bytes: Array(table(["ant", "bee", "dog"], rows: 30).utf8))
    try FileIO.writeAtomically("\(dir)/fewer.csv", bytes: Array(table(["bee", "cat"], rows: 30).utf8))
    try FileIO.writeAtomically("\(dir)/job.yaml", bytes: Array("""
        name: kinds
        model: {input: [2], layers: [{type: linear, out: 16}, relu, {type: linear, out: 3}]}
        data: {format: csv, train: \(dir)/train.csv, csv: {targets: [kind]}, test_fraction: 0.2}
        train: {epochs: 20, batch_size: 16, log_every: 0}
        optimizer: {type: adam, lr: 0.01}
        scaling: {base_batch: 16}
        """.utf8))
    let rt = Fixtures.ringtrain
    let t = Fixtures.run([rt, "train", "\(dir)/job.yaml", "--run-dir", "\(dir)/run"])
    try #require(t.status == 0, "\(t.output)")
    let bad = Fixtures.run([rt, "eval", "\(dir)/run", "--data", "\(dir)/more.csv", "--split", "train"])
    #expect(bad.status != 0 && bad.output.contains("dog") && bad.output.contains("more.csv"), "\(bad.output)")
    let fewer = Fixtures.run([rt, "eval", "\(dir)/run", "--data", "\(dir)/fewer.csv", "--split", "train"])
    #expect(fewer.status == 0 && fewer.output.contains("eval: train_loss"), "\(fewer.output)")
}
