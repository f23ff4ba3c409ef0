import Formats
import TensorCore

/// A dataset the loop can sample from: `count` samples, each an input and (for supervised
/// tasks) a target, gathered by index into a reused `Batch`. Every format implements this,
/// so the sampler shards every format the same way for every world size. `gather` keeps no
/// scratch state: a loader thread and an evaluation (or several in-process ranks) may call it
/// at once.
public protocol DataSource: AnyObject {
    var name: String { get }
    var count: Int { get }
    var input: FieldSpec { get }
    var target: FieldSpec? { get }
    /// Copies the samples at `indices` into `batch`.
    func gather(_ indices: ArraySlice<Int>, into batch: Batch)
}

/// Inputs and targets as two columns of the same rows (IDX, CSV, .npy).
public final class ArrayDataset: DataSource {
    public let name: String
    public let inputs: Column
    public let targets: Column?
    public let input: FieldSpec
    public let target: FieldSpec?

    public init(name: String, inputs: Column, input: FieldSpec, targets: Column?, target: FieldSpec?) {
        precondition(targets == nil || targets!.rows == inputs.rows)
        self.name = name
        self.inputs = inputs
        self.targets = targets
        self.input = input
        self.target = target
    }

    public var count: Int { inputs.rows }

    public func gather(_ indices: ArraySlice<Int>, into batch: Batch) {
        batch.prepare(indices.count, input: input, target: target)
        if input.isInteger { inputs.gatherInts(indices, into: batch.ids.data) } else { inputs.gatherFloats(indices, into: batch.x.data) }
        if let t = targets, let spec = target {
            if spec.isInteger { t.gatherInts(indices, into: batch.labels.data) } else { t.gatherFloats(indices, into: batch.y.data) }
        }
    }
}

/// Some samples of another dataset (a seeded train/validation/test split).
public final class Subset: DataSource {
    public let base: DataSource
    public let indices: [Int]
    public let name: String

    public init(_ base: DataSource, indices: [Int], name: String) {
        self.base = base
        self.indices = indices
        self.name = name
    }

    public var count: Int { indices.count }
    public var input: FieldSpec { base.input }
    public var target: FieldSpec? { base.target }

    public func gather(_ idx: ArraySlice<Int>, into batch: Batch) {
        base.gather(idx.map { indices[$0] }[...], into: batch)
    }
}

/// Language-model samples from one token stream: sample i is the window of `context` tokens
/// starting at range.lowerBound + i·stride and its targets the same window shifted by one. With
/// stride = context these are nanoGPT's blocks; stride 1 gives every offset (its random windows,
/// without replacement within an epoch). Inputs and targets stay inside `range`.
public final class TokenBlocks: DataSource {
    public let name: String
    public let tokens: Column
    public let context: Int
    public let vocabulary: Int
    public let range: Range<Int>
    public let stride: Int
    public let count: Int

    public init(name: String, tokens: Column, context: Int, vocabulary: Int, range: Range<Int>? = nil, stride: Int? = nil) {
        self.name = name
        self.tokens = tokens
        self.context = context
        self.vocabulary = vocabulary
        self.range = range ?? 0..<tokens.rows
        self.stride = stride ?? context
        count = self.range.count > context ? (self.range.count - 1 - context) / self.stride + 1 : 0
    }

    public var input: FieldSpec { FieldSpec(.ids, shape: [context], count: vocabulary) }
    public var target: FieldSpec? { FieldSpec(.classes, shape: [context], count: vocabulary) }

    public func gather(_ indices: ArraySlice<Int>, into batch: Batch) {
        batch.prepare(indices.count, input: input, target: target)
        let t = context
        for (k, i) in indices.enumerated() {
            let start = range.lowerBound + i * stride
            tokens.copyInts(from: start, count: t, into: batch.ids.data + k * t)
            tokens.copyInts(from: start + 1, count: t, into: batch.labels.data + k * t)
        }
    }
}

/// Seeded splits of 0..<n: the first `validation` and `test` counts of a permutation
/// (independent of the training shuffle), the rest for training, each kept in index order.
/// Classification samples from a token stream: sample i is the block of `context` tokens at
/// starts[i], its class labels[i] (for text, the file it comes from).
public final class LabelledBlocks: DataSource {
    public let name: String
    public let tokens: Column
    public let context: Int
    public let vocabulary: Int
    public let starts: [Int]
    public let labels: [Int32]
    public let classes: Int

    public init(name: String, tokens: Column, context: Int, vocabulary: Int, starts: [Int], labels: [Int32], classes: Int) {
        self.name = name
        self.tokens = tokens
        self.context = context
        self.vocabulary = vocabulary
        self.starts = starts
        self.labels = labels
        self.classes = classes
    }

    public var count: Int { starts.count }
    public var input: FieldSpec { FieldSpec(.ids, shape: [context], count: vocabulary) }
    public var target: FieldSpec? { FieldSpec(.classes, shape: [], count: classes) }

    public func gather(_ indices: ArraySlice<Int>, into batch: Batch) {
        batch.prepare(indices.count, input: input, target: target)
        for (k, i) in indices.enumerated() {
            tokens.copyInts(from: starts[i], count: context, into: batch.ids.data + k * context)
            batch.labels.data[k] = labels[i]
        }
    }
}

public func splitIndices(_ n: Int, validation: Int, test: Int, seed: UInt64) -> (train: [Int], validation: [Int], test: [Int]) {
    var rng = RNG(seed: seed, stream: "split")
    let perm = rng.permutation(n)
    let v = Array(perm[0..<validation]).sorted()
    let t = Array(perm[validation..<(validation + test)]).sorted()
    let rest = Array(perm[(validation + test)...]).sorted()
    return (rest, v, t)
}

/// Forecasting samples from a time series of rows: sample i is `length` consecutive rows of
/// features `[length, F]` and its target the target columns of the `horizon` rows after them
/// `[horizon · K]`. Only windows whose targets fall in `targetRows` are samples (inputs may reach
/// back before it: a held-out period is forecast from what precedes it).
public final class TimeWindows: DataSource {
    public let name: String
    public let rows: ArrayDataset
    public let length: Int
    public let horizon: Int
    public let first: Int
    public let count: Int

    public init(name: String, rows: ArrayDataset, length: Int, horizon: Int, targetRows: Range<Int>) {
        self.name = name
        self.rows = rows
        self.length = length
        self.horizon = horizon
        first = max(targetRows.lowerBound, length)
        count = max(0, targetRows.upperBound - horizon + 1 - first)
    }

    var features: Int { rows.input.shape.reduce(1, *) }
    var targetWidth: Int { rows.target?.shape.reduce(1, *) ?? 0 }
    public var input: FieldSpec { FieldSpec(.values, shape: [length, features]) }
    public var target: FieldSpec? { FieldSpec(.values, shape: [horizon * targetWidth]) }
    public var inputColumn: Column? { rows.inputs }
    public var targetColumn: Column? { rows.targets }

    public func gather(_ indices: ArraySlice<Int>, into batch: Batch) {
        batch.prepare(indices.count, input: input, target: target)
        let xw = length * features, yw = horizon * targetWidth
        for (k, i) in indices.enumerated() {
            let t0 = first + i
            rows.inputs.gatherFloats(Array((t0 - length)..<t0)[...], into: batch.x.data + k * xw)
            rows.targets?.gatherFloats(Array(t0..<(t0 + horizon))[...], into: batch.y.data + k * yw)
        }
    }
}
