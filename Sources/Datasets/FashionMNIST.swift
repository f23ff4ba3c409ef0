import Formats
import TensorCore

/// Fashion-MNIST (or MNIST) from a directory of IDX files, as shipped by Debian's
/// `dataset-fashion-mnist` under /usr/share/datasets/fashion-mnist.
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let classes = 10

    public enum Split: String, Sendable { case train, test = "t10k" }

    /// Finds `<split>-images-idx3-ubyte[.gz]` in `dir`.
    static func file(_ dir: String, _ split: Split, _ kind: String) throws -> String {
        let base = "\(dir)/\(split.rawValue)-\(kind)"
        for p in [base + ".gz", base] where FileIO.exists(p) { return p }
        if !FileIO.isDirectory(dir) {
            throw FileError(dir, "dataset directory not found. Install Fashion-MNIST with scripts/bootstrap (Debian package dataset-fashion-mnist), or pass the directory holding the IDX files with --data DIR or data.path in the job file")
        }
        throw FileError(base + ".gz", "dataset file not found in \(dir) (expected \(split.rawValue)-\(kind) or \(split.rawValue)-\(kind).gz)")
    }

    /// Loads one split as raw pixels scaled to [0, 1], shape [N, 1, 28, 28].
    public static func load(_ dir: String, split: Split) throws -> Dataset {
        let imagePath = try file(dir, split, "images-idx3-ubyte")
        let labelPath = try file(dir, split, "labels-idx1-ubyte")
        let images = try IDX.read(imagePath)
        let labels = try IDX.read(labelPath)
        guard images.dims.count == 3 else {
            throw FileError(imagePath, "expected 3 dimensions [count, rows, cols], found \(images.dims)")
        }
        guard labels.dims.count == 1 else {
            throw FileError(labelPath, "expected 1 dimension [count], found \(labels.dims)")
        }
        guard images.dims[0] == labels.dims[0] else {
            throw FileError(labelPath, "holds \(labels.dims[0]) labels but \(imagePath) holds \(images.dims[0]) images")
        }
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw FileError(labelPath, "label \(labels.bytes[bad]) at index \(bad) is outside 0..<\(classes)")
        }
        let n = images.dims[0], h = images.dims[1], w = images.dims[2]
        let x = Tensor(shape: [n, 1, h, w])
        images.bytes.withUnsafeBufferPointer { src in
            for i in 0..<src.count { x.data[i] = Float(src[i]) * (1 / 255.0) }
        }
        return Dataset(name: "fashion-mnist/\(split == .train ? "train" : "test")",
                       features: x, labels: labels.bytes.map { Int32($0) }, numClasses: classes)
    }
}

extension Dataset {
    /// Mean and standard deviation over every feature value (the global scalar
    /// normalisation the PyTorch reference scripts use).
    public func featureStatistics() -> (mean: Float, std: Float) {
        var sum: Double = 0, sq: Double = 0
        let p = features.data
        for i in 0..<features.count { let v = Double(p[i]); sum += v; sq += v * v }
        let n = Double(max(features.count, 1))
        let mean = sum / n
        return (Float(mean), Float((max(sq / n - mean * mean, 0)).squareRoot()))
    }

    /// x ← (x − mean) / std in place.
    public func normalize(mean: Float, std: Float) {
        let p = features.data, inv = 1 / max(std, 1e-12)
        for i in 0..<features.count { p[i] = (p[i] - mean) * inv }
    }
}
