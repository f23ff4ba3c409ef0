import TensorCore

/// An in-memory labelled dataset: `features[N, sampleShape…]` and one class per sample.
public final class Dataset {
    public let name: String
    public let features: Tensor
    public let labels: [Int32]
    public let sampleShape: [Int]
    public let numClasses: Int

    public init(name: String, features: Tensor, labels: [Int32], numClasses: Int) {
        precondition(features.rows == labels.count)
        self.name = name
        self.features = features
        self.labels = labels
        self.sampleShape = Array(features.shape.dropFirst())
        self.numClasses = numClasses
    }

    public var count: Int { labels.count }
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// Copies the samples at `indices` into `x` and their labels into `y` (both reused).
    public func gather(_ indices: ArraySlice<Int>, into x: Tensor, labels y: Labels) {
        let s = sampleSize
        x.resize([indices.count] + sampleShape)
        y.resize(indices.count)
        for (row, i) in indices.enumerated() {
            (x.data + row * s).update(from: features.data + i * s, count: s)
            y.data[row] = labels[i]
        }
    }
}
