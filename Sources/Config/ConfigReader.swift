/// Reads one mapping of a configuration tree with validation: every accessor checks the
/// type, and `finish()` rejects keys nobody asked for. Errors carry the full key path.
///
///     let r = try ConfigReader(value, source: "job.yaml")
///     let epochs = try r.int("epochs", default: 10, min: 1)
///     try r.finish()
public final class ConfigReader {
    public let source: String
    public let path: String
    public let entries: [ConfigEntry]
    private var used: Set<String> = []

    public init(_ value: ConfigValue, source: String, path: String = "") throws {
        self.source = source
        self.path = path
        switch value {
        case .map(let e): entries = e
        case .null: entries = []
        default: throw ConfigError(source: source, path: path, "expected a mapping, found \(value.summary)")
        }
        var seen = Set<String>()
        for e in entries where !seen.insert(e.key).inserted {
            throw ConfigError(source: source, path: join(e.key), "key appears twice")
        }
    }

    public func join(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(source: source, path: key.isEmpty ? path : join(key), message)
    }

    public func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

    /// The raw value of `key`, marking it as used.
    public func value(_ key: String) -> ConfigValue? {
        used.insert(key)
        guard let v = entries.first(where: { $0.key == key })?.value else { return nil }
        if case .null = v { return nil }
        return v
    }

    /// Rejects any key that no accessor read.
    public func finish() throws {
        if let extra = entries.first(where: { !used.contains($0.key) }) {
            let known = used.sorted()
            let hint = closest(extra.key, among: known).map { "did you mean \"\($0)\"? " } ?? ""
            throw error(extra.key, "unknown key (\(hint)expected one of: \(known.joined(separator: ", ")))")
        }
    }

    // MARK: typed accessors

    public func optionalInt(_ key: String, min: Int? = nil, max: Int? = nil) throws -> Int? {
        guard let v = value(key) else { return nil }
        let i: Int
        switch v {
        case .int(let x): i = x
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: i = Int(d)
        default: throw error(key, "expected an integer, found \(v.summary)")
        }
        if let lo = min, i < lo { throw error(key, "expected an integer ≥ \(lo), found \(i)") }
        if let hi = max, i > hi { throw error(key, "expected an integer ≤ \(hi), found \(i)") }
        return i
    }

    public func int(_ key: String, default d: Int, min: Int? = nil, max: Int? = nil) throws -> Int {
        try optionalInt(key, min: min, max: max) ?? d
    }

    public func requiredInt(_ key: String, min: Int? = nil, max: Int? = nil) throws -> Int {
        guard let i = try optionalInt(key, min: min, max: max) else { throw error(key, "required integer is missing") }
        return i
    }

    public func optionalDouble(_ key: String, min: Double? = nil, max: Double? = nil) throws -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        switch v {
        case .int(let x): d = Double(x)
        case .double(let x): d = x
        default: throw error(key, "expected a number, found \(v.summary)")
        }
        if !d.isFinite { throw error(key, "expected a finite number, found \(d)") }
        if let lo = min, d < lo { throw error(key, "expected a number ≥ \(lo), found \(d)") }
        if let hi = max, d > hi { throw error(key, "expected a number ≤ \(hi), found \(d)") }
        return d
    }

    public func double(_ key: String, default dflt: Double, min: Double? = nil, max: Double? = nil) throws -> Double {
        try optionalDouble(key, min: min, max: max) ?? dflt
    }

    public func requiredDouble(_ key: String, min: Double? = nil, max: Double? = nil) throws -> Double {
        guard let d = try optionalDouble(key, min: min, max: max) else { throw error(key, "required number is missing") }
        return d
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw error(key, "expected true or false, found \(v.summary)") }
        return b
    }

    public func bool(_ key: String, default d: Bool) throws -> Bool { try optionalBool(key) ?? d }

    public func optionalString(_ key: String, oneOf choices: [String]? = nil) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw error(key, "expected a string, found \(v.summary)") }
        if let c = choices, !c.contains(s) {
            throw error(key, "expected one of \(c.joined(separator: ", ")), found \"\(s)\"")
        }
        return s
    }

    public func string(_ key: String, default d: String, oneOf choices: [String]? = nil) throws -> String {
        try optionalString(key, oneOf: choices) ?? d
    }

    public func requiredString(_ key: String, oneOf choices: [String]? = nil) throws -> String {
        guard let s = try optionalString(key, oneOf: choices) else { throw error(key, "required string is missing") }
        return s
    }

    /// A string naming one case of `E` (its raw value), e.g. `try r.choice("loss", default: LossKind.crossEntropy)`.
    public func optionalChoice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type = E.self) throws -> E?
    where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        guard let s = try optionalString(key) else { return nil }
        guard let e = E(rawValue: s) else {
            let hint = closest(s, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw error(key, "expected one of \(names.joined(separator: ", ")), found \"\(s)\"" + hint)
        }
        return e
    }

    public func choice<E: RawRepresentable & CaseIterable>(_ key: String, default d: E) throws -> E where E.RawValue == String {
        try optionalChoice(key, E.self) ?? d
    }

    public func requiredChoice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type = E.self) throws -> E
    where E.RawValue == String {
        guard let e = try optionalChoice(key, type) else {
            throw error(key, "required: one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return e
    }

    public func optionalList(_ key: String) throws -> [ConfigValue]? {
        guard let v = value(key) else { return nil }
        guard case .list(let l) = v else { throw error(key, "expected a list, found \(v.summary)") }
        return l
    }

    public func intList(_ key: String, min: Int? = nil) throws -> [Int]? {
        guard let l = try optionalList(key) else { return nil }
        return try l.enumerated().map { i, v in
            guard case .int(let x) = v else { throw error("\(key)[\(i)]", "expected an integer, found \(v.summary)") }
            if let lo = min, x < lo { throw error("\(key)[\(i)]", "expected an integer ≥ \(lo), found \(x)") }
            return x
        }
    }

    /// One string or a list of them (integers are taken as their text, e.g. CSV column indices).
    public func stringList(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        func one(_ v: ConfigValue, _ at: String) throws -> String {
            switch v {
            case .string(let s): return s
            case .int(let i): return String(i)
            default: throw error(at, "expected a string, found \(v.summary)")
            }
        }
        if case .list(let l) = v { return try l.enumerated().map { try one($0.element, "\(key)[\($0.offset)]") } }
        return [try one(v, key)]
    }

    /// A nested mapping (an empty one when the key is absent).
    public func section(_ key: String) throws -> ConfigReader {
        try ConfigReader(value(key) ?? .null, source: source, path: join(key))
    }
}

/// The candidate nearest to `word` by edit distance, if it is close enough to be a likely typo
/// (at most a third of the word's length, and at least 1, apart).
public func closest(_ word: String, among candidates: [String]) -> String? {
    let limit = max(1, word.count / 3)
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(word, c)
        if d <= limit && d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    return best?.0
}

/// Levenshtein distance (insertions, deletions, substitutions).
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    var prev = Array(0...y.count), cur = prev
    for i in 1...x.count {
        cur[0] = i
        for j in stride(from: 1, through: y.count, by: 1) {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[y.count]
}
