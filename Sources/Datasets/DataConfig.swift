import Config

/// The `data:` section of a job: which files, in which format, split how, scaled how.
///
///     data:
///       format: csv                      # idx | csv | npy | text (default: from the dataset or the file extension)
///       train: data/wine.csv             # a file; {inputs: x.npy, targets: y.npy}; a list or directory (text)
///       validation_fraction: 0.1         # or validation: FILE
///       test_fraction: 0.2               # or test: FILE
///       normalize: per_feature           # none | global | per_feature | per_channel | auto
///       csv: {header: false, skip_rows: 1, targets: [13]}
public struct DataConfig: Equatable, Sendable {
    public enum Format: String, CaseIterable, Sendable { case idx, csv, npy, text }

    /// How input features are standardised (statistics of the training split only).
    public enum Normalize: String, CaseIterable, Sendable {
        /// global for idx images, per_feature for csv and npy, none for text.
        case auto
        case none
        /// One mean and deviation over every value (what the PyTorch image scripts use).
        case global
        /// One per feature (standard scaling of tabular data).
        case perFeature = "per_feature"
        /// One per channel of [C, …] samples.
        case perChannel = "per_channel"
    }

    /// A split's files.
    public struct Files: Equatable, Sendable {
        /// The input file(s): one for csv/npy/idx; for text, files or directories.
        public var inputs: [String]
        /// A separate targets file (npy, idx; csv: a second table with the same rows).
        public var targets: String?
        public init(inputs: [String], targets: String? = nil) {
            self.inputs = inputs
            self.targets = targets
        }
    }

    public struct CSVOptions: Equatable, Sendable {
        public var header = true
        public var skipRows = 0
        /// A single character, or "whitespace" for runs of spaces and tabs.
        public var delimiter = ","
        /// Feature columns by name (or index without a header); nil: every column not a target or ignored.
        public var features: [String]?
        /// Target columns (one for classification; several for multi-output regression or multilabel).
        public var targets: [String] = []
        public var ignore: [String] = []
        /// String-valued feature columns, one-hot encoded (vocabulary from the training file).
        public var categorical: [String] = []
        /// Class names in index order, when the target column holds indices.
        public var classNames: [String]?
        /// Missing cells (empty, NA, NaN, ?): an error unless a fill is given, per column or for all ("*").
        public var fill: [String: FillValue] = [:]
    }

    public enum FillValue: Equatable, Sendable {
        case value(Double)
        /// The training file's mean of that column.
        case mean
    }

    public struct TextOptions: Equatable, Sendable {
        public enum Tokenizer: String, CaseIterable, Sendable { case byte, char }
        public enum Encoding: String, CaseIterable, Sendable { case utf8, bytes }
        public enum Holdout: String, CaseIterable, Sendable { case tail, blocks }
        /// none: language-model blocks; file: classification, each block labelled by the file it
        /// comes from (blocks never cross files; classes are the training files' names).
        public enum Labels: String, CaseIterable, Sendable { case none, file }
        public var tokenizer = Tokenizer.byte
        /// utf8: the text must be valid UTF-8 (checked, with the file and offset of any bad byte).
        public var encoding = Encoding.utf8
        /// Tokens per sample (default: the model's input length).
        public var context: Int?
        /// In directories: file-name patterns to take and to leave out (* and ? wildcards).
        public var include = ["*"]
        public var exclude: [String] = []
        /// Where the tokenized corpus is cached (content-addressed, shared by runs).
        public var cacheDir: String?
        /// validation/test_fraction for text: the last blocks of the stream, contiguous (tail, as
        /// nanoGPT's split: no held-out block borders a training block on both sides), or blocks
        /// drawn at random (blocks).
        public var holdout = Holdout.tail
        /// Tokens between the starts of training windows (default: the context, non-overlapping
        /// blocks; 1: every offset, as nanoGPT's random windows). Held-out text is always blocks.
        public var stride: Int?
        public var labels = Labels.none
    }

    public var format: Format?
    /// A named dataset: fashion-mnist or mnist (IDX files in their Debian directory).
    public var dataset: String?
    /// Directory of a named dataset's IDX files (default: its Debian location).
    public var path: String?
    public var train: Files?
    public var validation: Files?
    public var test: Files?
    public var validationFraction = 0.0
    public var testFraction = 0.0
    public var normalize = Normalize.auto
    /// Regression: standardise the targets for training (metrics and predictions stay in their units).
    public var normalizeTargets = false
    public var augment = Augmentation()
    /// Time series: samples are windows of `length` consecutive rows (in file order) and their
    /// targets the next `horizon` rows' target columns; held-out fractions are the last rows.
    public struct Window: Equatable, Sendable {
        public var length: Int
        public var horizon = 1
    }
    public var window: Window?
    public var csv = CSVOptions()
    public var text = TextOptions()

    /// The default job's data: Fashion-MNIST from its Debian package.
    public init() {
        dataset = "fashion-mnist"
        format = .idx
    }

    public static let namedDatasets = ["fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"]

    public init(_ d: ConfigReader) throws {
        format = try d.optionalChoice("format", Format.self)
        dataset = try d.optionalString("dataset", oneOf: Self.namedDatasets.keys.sorted())
        path = try d.optionalString("path")
        train = try Self.files(d, "train")
        validation = try Self.files(d, "validation")
        test = try Self.files(d, "test")
        if train == nil && dataset == nil {
            if let f = format, f != .idx { throw d.error("train", "required: the training file(s) of the \(f.rawValue) data") }
            dataset = "fashion-mnist"
        }
        if dataset != nil && train != nil {
            throw d.error("train", "give either a named dataset (data.dataset) or your own files (data.train), not both")
        }
        if dataset != nil, let f = format, f != .idx { throw d.error("format", "the named dataset \(dataset!) is idx") }
        validationFraction = try d.double("validation_fraction", default: 0, min: 0, max: 0.9)
        testFraction = try d.double("test_fraction", default: 0, min: 0, max: 0.9)
        if validationFraction > 0 && validation != nil { throw d.error("validation_fraction", "give validation files or validation_fraction, not both") }
        if testFraction > 0 && test != nil { throw d.error("test_fraction", "give test files or test_fraction, not both") }
        if validationFraction + testFraction >= 0.95 { throw d.error("test_fraction", "validation and test fractions leave too little to train on") }
        if case .bool(let n)? = d.value("normalize") {
            normalize = n ? .auto : .none
        } else {
            normalize = try d.choice("normalize", default: Normalize.auto)
        }
        normalizeTargets = try d.bool("normalize_targets", default: false)
        if let v = d.value("window"), v != .null {
            let w = try d.section("window")
            window = Window(length: try w.requiredInt("length", min: 1), horizon: try w.int("horizon", default: 1, min: 1))
            try w.finish()
        }

        let a = try d.section("augment")
        augment.cropPadding = try a.int("crop_padding", default: 0, min: 0, max: 16)
        augment.flip = try a.bool("flip", default: false)
        augment.cutout = try a.int("cutout", default: 0, min: 0)
        augment.mixupAlpha = try a.double("mixup", default: 0, min: 0)
        augment.cutmixAlpha = try a.double("cutmix", default: 0, min: 0)
        try a.finish()

        let c = try d.section("csv")
        csv.header = try c.bool("header", default: true)
        csv.skipRows = try c.int("skip_rows", default: 0, min: 0)
        csv.delimiter = try c.string("delimiter", default: ",")
        if csv.delimiter != "whitespace" && csv.delimiter.utf8.count != 1 {
            throw c.error("delimiter", "expected one character or \"whitespace\", found \"\(csv.delimiter)\"")
        }
        csv.features = try c.stringList("features")
        csv.targets = try c.stringList("targets") ?? []
        csv.ignore = try c.stringList("ignore") ?? []
        csv.categorical = try c.stringList("categorical") ?? []
        csv.classNames = try c.stringList("class_names")
        if let f = c.value("fill") {
            switch f {
            case .int, .double: csv.fill["*"] = .value(f.number!)
            case .string("mean"): csv.fill["*"] = .mean
            case .map(let entries):
                for e in entries {
                    switch e.value {
                    case .int, .double: csv.fill[e.key] = .value(e.value.number!)
                    case .string("mean"): csv.fill[e.key] = .mean
                    default: throw c.error("fill.\(e.key)", "expected a number or \"mean\", found \(e.value.summary)")
                    }
                }
            default: throw c.error("fill", "expected a number, \"mean\", or a mapping of column to either")
            }
        }
        try c.finish()

        let t = try d.section("text")
        text.tokenizer = try t.choice("tokenizer", default: TextOptions.Tokenizer.byte)
        text.encoding = try t.choice("encoding", default: TextOptions.Encoding.utf8)
        if text.tokenizer == .char && text.encoding == .bytes {
            throw t.error("encoding", "the char tokenizer reads UTF-8 characters; use encoding: utf8 (or the byte tokenizer)")
        }
        text.context = try t.optionalInt("context", min: 1)
        text.include = try t.stringList("include") ?? ["*"]
        text.exclude = try t.stringList("exclude") ?? []
        text.cacheDir = try t.optionalString("cache_dir")
        text.holdout = try t.choice("holdout", default: text.holdout)
        text.stride = try t.optionalInt("stride", min: 1)
        text.labels = try t.choice("labels", default: text.labels)
        if text.stride != nil && text.holdout == .blocks && (validationFraction > 0 || testFraction > 0) {
            throw t.error("stride", "overlapping training windows need holdout: tail (random held-out blocks would overlap training windows)")
        }
        try t.finish()
        try d.finish()
        if format == nil { format = try detectFormat(d) }
    }

    static func files(_ d: ConfigReader, _ key: String) throws -> Files? {
        guard let v = d.value(key) else { return nil }
        switch v {
        case .string(let s): return Files(inputs: [s])
        case .list(let l):
            return Files(inputs: try l.enumerated().map { i, e in
                guard case .string(let s) = e else { throw d.error("\(key)[\(i)]", "expected a file name, found \(e.summary)") }
                return s
            })
        case .map:
            let r = try ConfigReader(v, source: d.source, path: d.join(key))
            guard let inputs = try r.stringList("inputs"), !inputs.isEmpty else { throw r.error("inputs", "required: the input file") }
            let f = Files(inputs: inputs, targets: try r.optionalString("targets"))
            try r.finish()
            return f
        default: throw d.error(key, "expected a file, a list of files, or {inputs: FILE, targets: FILE}")
        }
    }

    /// The format the files' names imply.
    func detectFormat(_ d: ConfigReader) throws -> Format {
        if dataset != nil { return .idx }
        let name = train!.inputs[0]
        let base = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        if base.hasSuffix(".csv") || base.hasSuffix(".tsv") { return .csv }
        if base.hasSuffix(".npy") { return .npy }
        if base.hasSuffix(".idx") || base.hasSuffix("-ubyte") { return .idx }
        if base.hasSuffix(".txt") || !base.contains(".") { return .text }
        throw d.error("format", "cannot tell the format of \(name) from its name; set data.format (idx, csv, npy or text)")
    }

    /// The section as a tree (every field), for checkpoints and hashing.
    public var configValue: ConfigValue {
        func files(_ f: Files?) -> ConfigValue {
            guard let f else { return .null }
            return .object(["inputs": .list(f.inputs.map { .string($0) }), "targets": f.targets.map { .string($0) } ?? .null])
        }
        func strings(_ l: [String]?) -> ConfigValue { l.map { .list($0.map { .string($0) }) } ?? .null }
        var fill: [ConfigEntry] = []
        for k in csv.fill.keys.sorted() {
            switch csv.fill[k]! {
            case .value(let v): fill.append(ConfigEntry(key: k, value: .double(v)))
            case .mean: fill.append(ConfigEntry(key: k, value: .string("mean")))
            }
        }
        return .object([
            "format": format.map { .string($0.rawValue) } ?? .null,
            "dataset": dataset.map { .string($0) } ?? .null,
            "path": path.map { .string($0) } ?? .null,
            "train": files(train), "validation": files(validation), "test": files(test),
            "validation_fraction": .double(validationFraction), "test_fraction": .double(testFraction),
            "normalize": .string(normalize.rawValue), "normalize_targets": .bool(normalizeTargets),
            "augment": .object(["crop_padding": .int(augment.cropPadding), "flip": .bool(augment.flip),
                                "cutout": .int(augment.cutout), "mixup": .double(augment.mixupAlpha),
                                "cutmix": .double(augment.cutmixAlpha)]),
            "csv": .object(["header": .bool(csv.header), "skip_rows": .int(csv.skipRows), "delimiter": .string(csv.delimiter),
                            "features": strings(csv.features), "targets": strings(csv.targets), "ignore": strings(csv.ignore),
                            "categorical": strings(csv.categorical), "class_names": strings(csv.classNames),
                            "fill": .map(fill)]),
            "text": .object(["tokenizer": .string(text.tokenizer.rawValue), "encoding": .string(text.encoding.rawValue),
                             "context": text.context.map { .int($0) } ?? .null, "include": strings(text.include),
                             "exclude": strings(text.exclude), "cache_dir": text.cacheDir.map { .string($0) } ?? .null,
                             "holdout": .string(text.holdout.rawValue), "stride": text.stride.map { .int($0) } ?? .null,
                             "labels": .string(text.labels.rawValue)]),
            "window": window.map { .object(["length": .int($0.length), "horizon": .int($0.horizon)]) } ?? .null,
        ])
    }
}
