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
            let known = used.sorted().joined(separator: ", ")
            throw error(extra.key, "unknown key (expected one of: \(known))")
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

    /// A nested mapping (an empty one when the key is absent).
    public func section(_ key: String) throws -> ConfigReader {
        try ConfigReader(value(key) ?? .null, source: source, path: join(key))
    }
}
