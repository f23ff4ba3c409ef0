import Config
import Formats

/// Standardisation statistics of one field, taken from the training split only.
public struct Scaling: Equatable, Sendable {
    public var mode: DataConfig.Normalize
    /// One entry (global), one per channel, or one per element of a sample.
    public var mean: [Double]
    public var std: [Double]

    public init(mode: DataConfig.Normalize, mean: [Double], std: [Double]) {
        self.mode = mode
        self.mean = mean
        self.std = std
    }

    /// Per-element (scale, shift) for a sample of `shape`: x ↦ (x − mean)/std.
    public func affine(shape: [Int]) -> (scale: [Float], shift: [Float]) {
        let n = shape.reduce(1, *)
        let spatial = mode == .perChannel && !shape.isEmpty ? n / shape[0] : 1
        var scale = [Float](repeating: 1, count: n), shift = [Float](repeating: 0, count: n)
        for j in 0..<n {
            let k = mean.count == 1 ? 0 : mode == .perChannel ? j / spatial : j
            let s = std[k] > 1e-12 ? std[k] : 1
            scale[j] = Float(1 / s)
            shift[j] = Float(-mean[k] / s)
        }
        return (scale, shift)
    }

    /// Element j of a standardised value back in data units (x·std + mean; per-feature
    /// statistics repeat for forecasts of several steps: horizon × targets).
    @inline(__always) public func unscale(_ v: Float, _ j: Int) -> Double {
        let k = mean.count == 1 ? 0 : j % mean.count
        return Double(v) * (std[k] > 1e-12 ? std[k] : 1) + mean[k]
    }

    var configValue: ConfigValue {
        .object(["mode": .string(mode.rawValue), "mean": .list(mean.map { .double($0) }), "std": .list(std.map { .double($0) })])
    }

    init(_ v: ConfigValue, source: String, path: String) throws {
        let r = try ConfigReader(v, source: source, path: path)
        mode = try r.requiredChoice("mode", DataConfig.Normalize.self)
        func numbers(_ k: String) throws -> [Double] {
            guard let l = try r.optionalList(k), !l.isEmpty else { throw r.error(k, "required: a list of numbers") }
            return try l.enumerated().map { i, e in
                guard let d = e.number else { throw r.error("\(k)[\(i)]", "expected a number") }
                return d
            }
        }
        mean = try numbers("mean")
        std = try numbers("std")
        guard mean.count == std.count else { throw r.error("std", "has \(std.count) entries, mean has \(mean.count)") }
        try r.finish()
    }
}

/// Turns text into token ids and back: bytes (256 ids), or the characters of the training
/// corpus (its sorted set of Unicode scalars).
public struct Tokenizer: Equatable, Sendable {
    public let kind: DataConfig.TextOptions.Tokenizer
    /// char: the symbol of each id.
    public let symbols: [String]
    private let index: [Unicode.Scalar: Int32]

    public static let bytes = Tokenizer(kind: .byte, symbols: [])

    public init(kind: DataConfig.TextOptions.Tokenizer, symbols: [String]) {
        self.kind = kind
        self.symbols = symbols
        var d: [Unicode.Scalar: Int32] = [:]
        for (i, s) in symbols.enumerated() { if let u = s.unicodeScalars.first { d[u] = Int32(i) } }
        index = d
    }

    public static func == (a: Tokenizer, b: Tokenizer) -> Bool { a.kind == b.kind && a.symbols == b.symbols }

    /// Characters of `text`, sorted by code point.
    public static func characters(of texts: [String]) -> Tokenizer {
        var set = Set<Unicode.Scalar>()
        for t in texts { for u in t.unicodeScalars { set.insert(u) } }
        return Tokenizer(kind: .char, symbols: set.sorted { $0.value < $1.value }.map { String($0) })
    }

    public var size: Int { kind == .byte ? 256 : symbols.count }

    /// UTF-8 bytes each id stands for (for bits per byte).
    public var byteLengths: [Int] { kind == .byte ? [Int](repeating: 1, count: 256) : symbols.map { $0.utf8.count } }

    /// Ids of `text`; nil and the offending scalar if a character is not in the vocabulary.
    public func encode(_ bytes: [UInt8]) -> (ids: [Int32], unknown: (offset: Int, scalar: Unicode.Scalar)?) {
        if kind == .byte { return (bytes.map { Int32($0) }, nil) }
        var out: [Int32] = []
        out.reserveCapacity(bytes.count)
        var offset = 0
        for u in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            guard let id = index[u] else { return (out, (offset, u)) }
            out.append(id)
            offset += String(u).utf8.count
        }
        return (out, nil)
    }

    /// The UTF-8 bytes of ids (a byte id may be part of a character; printing bytes as they
    /// come lets the terminal join them).
    public func bytes(_ ids: [Int32]) -> [UInt8] {
        if kind == .byte { return ids.map { UInt8(truncatingIfNeeded: $0) } }
        return ids.flatMap { Int($0) < symbols.count && $0 >= 0 ? Array(symbols[Int($0)].utf8) : Array("\u{FFFD}".utf8) }
    }

    public func decode(_ ids: [Int32]) -> String {
        if kind == .byte { return String(decoding: ids.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self) }
        return ids.map { Int($0) < symbols.count && $0 >= 0 ? symbols[Int($0)] : "\u{FFFD}" }.joined()
    }

    var configValue: ConfigValue {
        .object(["kind": .string(kind.rawValue), "symbols": .list(symbols.map { .string($0) })])
    }

    init(_ v: ConfigValue, source: String, path: String) throws {
        let r = try ConfigReader(v, source: source, path: path)
        let kind = try r.requiredChoice("kind", DataConfig.TextOptions.Tokenizer.self)
        let symbols = try r.stringList("symbols") ?? []
        try r.finish()
        if kind == .char && symbols.isEmpty { throw r.error("symbols", "a char tokenizer needs its symbols") }
        self.init(kind: kind, symbols: symbols)
    }
}

/// What a trained model needs to see new data as it saw the training data: normalisation
/// statistics, class names, categorical vocabularies, the tokenizer. Saved in checkpoints.
public struct DataInfo: Equatable, Sendable {
    public var input: FieldSpec?
    public var target: FieldSpec?
    public var inputScaling: Scaling?
    public var targetScaling: Scaling?
    public var classNames: [String]?
    /// CSV: the feature columns in order, and the categories of each one-hot column.
    public var featureColumns: [String]?
    public var categories: [String: [String]] = [:]
    public var tokenizer: Tokenizer?

    public init() {}

    public var configValue: ConfigValue {
        func spec(_ f: FieldSpec?) -> ConfigValue {
            guard let f else { return .null }
            return .object(["kind": .string(f.kind.rawValue), "shape": .list(f.shape.map { .int($0) }),
                            "count": f.count.map { .int($0) } ?? .null])
        }
        return .object([
            "input": spec(input), "target": spec(target),
            "input_scaling": inputScaling?.configValue ?? .null,
            "target_scaling": targetScaling?.configValue ?? .null,
            "class_names": classNames.map { .list($0.map { .string($0) }) } ?? .null,
            "feature_columns": featureColumns.map { .list($0.map { .string($0) }) } ?? .null,
            "categories": .map(categories.keys.sorted().map { ConfigEntry(key: $0, value: .list(categories[$0]!.map { .string($0) })) }),
            "tokenizer": tokenizer?.configValue ?? .null,
        ])
    }

    public init(_ v: ConfigValue, source: String) throws {
        let r = try ConfigReader(v, source: source, path: "data")
        func spec(_ k: String) throws -> FieldSpec? {
            guard let s = r.value(k) else { return nil }
            let f = try ConfigReader(s, source: source, path: r.join(k))
            guard let kind = FieldSpec.Kind(rawValue: try f.requiredString("kind")) else { throw f.error("kind", "unknown field kind") }
            let spec = FieldSpec(kind, shape: try f.intList("shape", min: 0) ?? [], count: try f.optionalInt("count", min: 1))
            try f.finish()
            return spec
        }
        input = try spec("input")
        target = try spec("target")
        inputScaling = try r.value("input_scaling").map { try Scaling($0, source: source, path: r.join("input_scaling")) }
        targetScaling = try r.value("target_scaling").map { try Scaling($0, source: source, path: r.join("target_scaling")) }
        classNames = try r.stringList("class_names")
        featureColumns = try r.stringList("feature_columns")
        let cats = try r.section("categories")
        for e in cats.entries { categories[e.key] = try cats.stringList(e.key) ?? [] }
        try cats.finish()
        tokenizer = try r.value("tokenizer").map { try Tokenizer($0, source: source, path: r.join("tokenizer")) }
        try r.finish()
    }
}
