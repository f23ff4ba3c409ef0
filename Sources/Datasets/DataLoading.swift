import Formats
import TensorCore

/// What the model reads: float features, or integer ids (a model that starts with an embedding).
public enum InputEncoding: Sendable { case values, ids }

/// What the task needs as targets.
public enum TargetEncoding: Sendable {
    /// One class index per sample (or per token for language modelling).
    case classes
    /// Float values (regression, counts, multilabel 0/1 columns).
    case values
    /// None (reconstruction: the input is the target).
    case none
}

/// The splits of a job's data and what a checkpoint must remember about them.
public struct LoadedData {
    public var train: DataSource
    public var validation: DataSource?
    public var test: DataSource?
    public var info: DataInfo
}

/// Loads a `DataConfig` into splits, whatever the format: each format reads its files into
/// sources (`IDXData`, `CSVData`, `NPYData`, `TextData`); then fractions are split off the
/// training data (seeded), and the normalisation statistics are taken from the training split
/// and applied to every split — or, given `known` (a checkpoint's), reused as they are.
public enum DataLoading {
    public struct Request {
        public var input: InputEncoding
        public var target: TargetEncoding
        public var seed: UInt64
        /// Tokens per sample for text (the model's input length).
        public var context: Int?
        public var known: DataInfo?
        public init(input: InputEncoding, target: TargetEncoding, seed: UInt64, context: Int? = nil, known: DataInfo? = nil) {
            self.input = input
            self.target = target
            self.seed = seed
            self.context = context
            self.known = known
        }
    }

    /// A format's splits before fractions and scaling.
    struct Raw {
        var train: DataSource
        var validation: DataSource?
        var test: DataSource?
        var info = DataInfo()
    }

    public static func load(_ c: DataConfig, _ req: Request) throws -> LoadedData {
        var raw: Raw
        switch c.format ?? .idx {
        case .idx: raw = try IDXData.load(c, req)
        case .csv: raw = try CSVData.load(c, req)
        case .npy: raw = try NPYData.load(c, req)
        case .text: raw = try TextData.load(c, req)
        }
        if let w = c.window { return try windowed(raw, c, req, w) }
        var train = raw.train, validation = raw.validation, test = raw.test
        let n = train.count
        let nv = Int((Double(n) * c.validationFraction).rounded()), nt = Int((Double(n) * c.testFraction).rounded())
        // (Text held out as the stream's tail is split by TextData, around its windows.)
        if (nv > 0 || nt > 0) && !(c.format == .text && c.text.holdout == .tail && c.text.labels == .none) {
            let s = splitIndices(n, validation: nv, test: nt, seed: req.seed)
            let base = train
            train = Subset(base, indices: s.train, name: base.name + "[train]")
            if nv > 0 { validation = Subset(base, indices: s.validation, name: base.name + "[validation]") }
            if nt > 0 { test = Subset(base, indices: s.test, name: base.name + "[test]") }
        }
        guard train.count > 0 else { throw FileError(train.name, "the training split has no samples") }
        var info = raw.info
        info.input = train.input
        info.target = train.target
        let splits = [train, validation, test].compactMap { $0 }
        if !train.input.isInteger {
            let mode = c.normalize == .auto ? (c.format == .idx ? .global : (c.format == .text ? .none : .perFeature)) : c.normalize
            if let s = req.known?.inputScaling {
                info.inputScaling = s
            } else if mode != .none {
                info.inputScaling = statistics(train, mode: mode, target: false)
            }
            if let s = info.inputScaling {
                guard s.mean.count == 1 || s.mean.count == expectedCount(s.mode, train.input.shape) else {
                    throw FileError(train.name, "normalisation statistics of \(s.mean.count) values do not fit samples of shape \(train.input.shape)")
                }
                let a = s.affine(shape: train.input.shape)
                for d in splits { d.inputColumn?.setAffine(scale: a.scale, shift: a.shift) }
            }
        }
        if let t = train.target, t.kind == .values, c.normalizeTargets || req.known?.targetScaling != nil {
            info.targetScaling = req.known?.targetScaling ?? statistics(train, mode: .perFeature, target: true)
            let a = info.targetScaling!.affine(shape: t.shape)
            for d in splits { d.targetColumn?.setAffine(scale: a.scale, shift: a.shift) }
        }
        return LoadedData(train: train, validation: validation, test: test, info: info)
    }

    /// Time series: the rows stay in file order; held-out fractions are the last rows (the
    /// validation period, then the test period), scaling statistics come from the training rows
    /// only, and every split becomes windows whose targets lie in its rows.
    static func windowed(_ raw: Raw, _ c: DataConfig, _ req: Request, _ w: DataConfig.Window) throws -> LoadedData {
        func series(_ d: DataSource?) throws -> ArrayDataset? {
            guard let d else { return nil }
            guard let a = d as? ArrayDataset, !a.input.isInteger, a.target?.kind == .values, a.input.shape.count == 1 else {
                throw FileError(d.name, "data.window: forecasting needs rows of float features and float targets (a csv or npy table with a regression task)")
            }
            return a
        }
        let rows = try series(raw.train)!
        let extra = try [series(raw.validation), series(raw.test)]
        let n = rows.count
        let nv = Int((Double(n) * c.validationFraction).rounded()), nt = Int((Double(n) * c.testFraction).rounded())
        let nTrain = n - nv - nt
        guard nTrain > w.length + w.horizon - 1 else {
            throw FileError(rows.name, "data.window: \(nTrain) training rows hold no window of \(w.length) rows and \(w.horizon) to forecast")
        }
        var info = raw.info
        let trainRows = Subset(rows, indices: Array(0..<nTrain), name: rows.name + "[train]")
        let mode = c.normalize == .auto ? .perFeature : c.normalize
        if let s = req.known?.inputScaling ?? (mode == .none ? nil : statistics(trainRows, mode: mode, target: false)) {
            info.inputScaling = s
            let a = s.affine(shape: rows.input.shape)
            for d in [rows] + extra.compactMap({ $0 }) { d.inputs.setAffine(scale: a.scale, shift: a.shift) }
        }
        if c.normalizeTargets || req.known?.targetScaling != nil {
            let s = req.known?.targetScaling ?? statistics(trainRows, mode: .perFeature, target: true)
            info.targetScaling = s
            let a = s.affine(shape: rows.target!.shape)
            for d in [rows] + extra.compactMap({ $0 }) { d.targets?.setAffine(scale: a.scale, shift: a.shift) }
        }
        func windows(_ r: ArrayDataset, _ span: Range<Int>, _ part: String) throws -> TimeWindows {
            let t = TimeWindows(name: r.name + part, rows: r, length: w.length, horizon: w.horizon, targetRows: span)
            guard t.count > 0 else {
                throw FileError(r.name, "data.window: the \(part) rows \(span.lowerBound)..<\(span.upperBound) hold no forecast of \(w.horizon) rows after \(w.length)")
            }
            return t
        }
        let train = try windows(rows, 0..<nTrain, "[train]")
        let validation = try extra[0].map { try windows($0, 0..<$0.count, "") } ?? (nv > 0 ? windows(rows, nTrain..<(nTrain + nv), "[validation]") : nil)
        let test = try extra[1].map { try windows($0, 0..<$0.count, "") } ?? (nt > 0 ? windows(rows, (nTrain + nv)..<n, "[test]") : nil)
        info.input = train.input
        info.target = train.target
        return LoadedData(train: train, validation: validation, test: test, info: info)
    }

    static func expectedCount(_ mode: DataConfig.Normalize, _ shape: [Int]) -> Int {
        switch mode {
        case .perChannel: return shape.first ?? 1
        case .perFeature: return shape.reduce(1, *)
        default: return 1
        }
    }

    /// Mean and standard deviation (population) of a field over a split, in Double.
    static func statistics(_ d: DataSource, mode: DataConfig.Normalize, target: Bool) -> Scaling {
        let spec = target ? d.target! : d.input
        let size = spec.shape.reduce(1, *)
        let groups = expectedCount(mode, spec.shape)
        let per = mode == .perChannel ? size / max(groups, 1) : 1
        var sum = [Double](repeating: 0, count: groups), sq = sum
        let batch = Batch()
        var start = 0
        while start < d.count {
            let end = min(start + 512, d.count)
            d.gather(Array(start..<end)[...], into: batch)
            let t = target ? batch.y : batch.x
            let p = t.data
            for k in 0..<(end - start) {
                for j in 0..<size {
                    let v = Double(p[k * size + j])
                    let g = mode == .global ? 0 : mode == .perChannel ? j / per : j
                    sum[g] += v
                    sq[g] += v * v
                }
            }
            start = end
        }
        let count = Double(d.count) * Double(mode == .global ? size : per)
        let mean = sum.map { $0 / count }
        let std = zip(sq, mean).map { (max($0 / count - $1 * $1, 0)).squareRoot() }
        return Scaling(mode: mode, mean: mean, std: std)
    }
}

extension DataSource {
    /// The column holding this source's float inputs, if it has one (normalisation is set on it).
    public var inputColumn: Column? {
        if let a = self as? ArrayDataset { return a.inputs }
        if let s = self as? Subset { return s.base.inputColumn }
        return nil
    }

    public var targetColumn: Column? {
        if let a = self as? ArrayDataset { return a.targets }
        if let s = self as? Subset { return s.base.targetColumn }
        return nil
    }
}
