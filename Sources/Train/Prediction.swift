import Datasets
import Formats
import Glibc
import NN
import TensorCore

/// A trained model applied to new inputs (`ringtrain predict`): the file is read as the job
/// read its training data (the checkpoint's normalisation, feature columns, categories and
/// vocabulary), run in eval mode in batches, and each sample's outputs are turned into what the
/// task predicts, in data units:
///
///     classification   class, p_<class>…   (softmax)
///     binary           class, p            (sigmoid, class at 0.5)
///     multilabel       p_<j>…              (sigmoid per label)
///     regression       <target>…           (target standardisation undone)
///     bounded          <target>…           low + (high − low)·σ(z)
///     counting         rate_<j>…           e^z or softplus(z)
///     other tasks      output_<j>…         the raw outputs
public final class Predictor {
    public let checkpoint: Checkpoint.Contents
    public let model: Model
    public let data: DataSource
    /// Column names, and each sample's values in that order (row-major, `count × columns.count`).
    public private(set) var columns: [String] = []
    public private(set) var values: [Float] = []
    /// Classification: the names of the classes (for a `class` column).
    public var classNames: [String]? { checkpoint.data?.classNames }

    public init(checkpoint c: Checkpoint.Contents, input path: String, format: DataConfig.Format? = nil) throws {
        checkpoint = c
        guard c.job.models.isEmpty else { throw FileError(c.path, "holds several models (\(c.job.models.map(\.name).joined(separator: ", "))); predict needs one") }
        guard let info = c.data, let trained = info.input else {
            throw FileError(c.path, "the checkpoint does not record its data (inputs, normalisation); predict needs a checkpoint written by this version")
        }
        model = try Model(spec: c.job.model, source: c.path)
        try Checkpoint.loadParameters(into: model, from: c.file, source: c.path)
        var d = c.job.data
        d.format = try format ?? Self.format(of: path)
        d.dataset = nil
        d.path = nil
        d.train = .init(inputs: [path])
        d.validation = nil
        d.test = nil
        d.validationFraction = 0
        d.testFraction = 0
        d.augment = .init()
        d.window = nil
        if d.format == .csv {
            // The columns the model was trained on, whatever else the file holds (e.g. the target).
            d.csv.features = info.featureColumns ?? d.csv.features
            d.csv.targets = []
        }
        guard d.format != .text || c.job.task.kind == .languageModel else {
            throw FileError(path, "text input: predict generates text for language models; this checkpoint's task is \(c.job.task.kind.rawValue) (give csv, npy or idx inputs)")
        }
        let req = DataLoading.Request(input: model.takesIndices ? .ids : .values, target: .none, seed: 0,
                                      context: c.job.model.input.first, known: info)
        let loaded = try DataLoading.load(d, req)
        data = loaded.train
        guard data.input.shape == trained.shape, data.input.isInteger == trained.isInteger else {
            throw FileError(path, "holds samples of \(data.input); the model was trained on \(trained)")
        }
    }

    /// The format a file's name implies (IDX for *-ubyte[.gz] and .idx, else by extension).
    public static func format(of path: String) throws -> DataConfig.Format {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let base = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        if base.hasSuffix("ubyte") || base.hasSuffix(".idx") || base.contains("-idx") { return .idx }
        if base.hasSuffix(".npy") { return .npy }
        if base.hasSuffix(".csv") || base.hasSuffix(".tsv") { return .csv }
        if base.hasSuffix(".txt") { return .text }
        throw FileError(path, "cannot tell the format from the name (.npy, .csv, .idx or *-ubyte[.gz], .txt): pass --format")
    }

    /// Runs every sample through the model, `batchSize` at a time.
    public func run(batchSize: Int = 256) {
        let batch = Batch()
        let n = data.count
        values = []
        var start = 0
        while start < n {
            let end = min(start + batchSize, n)
            data.gather(Array(start..<end)[...], into: batch)
            let out = batch.integerInput ? model.forward(indices: batch.ids, training: false) : model.forward(batch.inputs, training: false)
            let k = out.count / max(end - start, 1)
            if columns.isEmpty { columns = names(outputs: k) }
            for i in 0..<(end - start) { values += predict(out.data + i * k, k) }
            start = end
        }
        if columns.isEmpty { columns = names(outputs: model.outputShape.reduce(1, *)) }
    }

    private var kind: TaskKind { checkpoint.job.task.kind }

    private func names(outputs k: Int) -> [String] {
        switch kind {
        case .classification:
            return ["class"] + (0..<k).map { "p_" + (classNames?.count == k ? classNames![$0] : String($0)) }
        case .binary: return ["class", "p"]
        case .multilabel: return (0..<k).map { "p_" + label($0, k) }
        case .regression, .boundedRegression: return (0..<k).map { label($0, k) }
        case .counting: return (0..<k).map { "rate_" + label($0, k) }
        default: return (0..<k).map { "output_\($0)" }
        }
    }

    /// The target column's name where the job names one per output, else the output's index.
    private func label(_ j: Int, _ k: Int) -> String {
        let t = checkpoint.job.data.csv.targets
        return t.count == k ? t[j] : String(j)
    }

    private func predict(_ z: UnsafeMutablePointer<Float>, _ k: Int) -> [Float] {
        func sigmoid(_ v: Float) -> Float { 1 / (1 + expf(-v)) }
        switch kind {
        case .classification:
            var best = 0, m = -Float.infinity
            for j in 0..<k where z[j] > m { m = z[j]; best = j }
            var p = (0..<k).map { expf(z[$0] - m) }
            let s = p.reduce(0, +)
            for j in 0..<k { p[j] /= s }
            return [Float(best)] + p
        case .binary:
            let p = sigmoid(z[0])
            return [p >= 0.5 ? 1 : 0, p]
        case .multilabel: return (0..<k).map { sigmoid(z[$0]) }
        case .regression:
            guard let s = checkpoint.data?.targetScaling else { return Array(UnsafeBufferPointer(start: z, count: k)) }
            return (0..<k).map { Float(s.unscale(z[$0], $0)) }
        case .boundedRegression:
            let lo = Float(checkpoint.job.task.low), hi = Float(checkpoint.job.task.high)
            return (0..<k).map { lo + (hi - lo) * sigmoid(z[$0]) }
        case .counting:
            return (0..<k).map { checkpoint.job.task.rate == .exp ? expf(z[$0]) : (z[$0] > 20 ? z[$0] : log1pf(expf(z[$0]))) }
        default:
            return Array(UnsafeBufferPointer(start: z, count: k))
        }
    }

    /// The predictions as CSV (a header line; classes by name when the job has names).
    public func csv() -> String {
        var out = columns.joined(separator: ",") + "\n"
        let w = columns.count
        let named = kind == .classification ? classNames : nil
        for r in 0..<(w == 0 ? 0 : values.count / w) {
            var fields: [String] = []
            for j in 0..<w {
                let v = values[r * w + j]
                if j == 0, kind == .classification || kind == .binary {
                    let c = Int(v)
                    fields.append(named.map { c < $0.count ? CSV.field($0[c]) : String(c) } ?? String(c))
                } else {
                    fields.append("\(v)")
                }
            }
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }

}
