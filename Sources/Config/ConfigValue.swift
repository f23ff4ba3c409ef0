/// A parsed configuration tree (from YAML job files or JSON checkpoint metadata).
/// Maps keep their key order so that what we write back reads like what the user wrote.
public indirect enum ConfigValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([ConfigValue])
    case map([ConfigEntry])

    /// A short description of the value's kind and content, for error messages.
    public var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .int(let i): return "integer \(i)"
        case .double(let d): return "number \(d)"
        case .string(let s): return "string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .list(let l): return "a list of \(l.count)"
        case .map: return "a mapping"
        }
    }

    /// The value as a number (integers included).
    public var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public subscript(key: String) -> ConfigValue? {
        if case .map(let entries) = self { return entries.first { $0.key == key }?.value }
        return nil
    }

    /// A map built from pairs, in order.
    public static func object(_ pairs: KeyValuePairs<String, ConfigValue>) -> ConfigValue {
        .map(pairs.map { ConfigEntry(key: $0.key, value: $0.value) })
    }
}

public struct ConfigEntry: Equatable, Sendable {
    public var key: String
    public var value: ConfigValue
    public init(key: String, value: ConfigValue) { self.key = key; self.value = value }
}

/// A configuration error: names the source (file), the path inside it and what was expected.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let path: String
    public let message: String

    public init(source: String, path: String, _ message: String) {
        self.source = source
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "\(source): \(message)" : "\(source): \(path): \(message)"
    }
}

extension ConfigValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: ConfigValue...) { self = .list(elements) }
}

extension ConfigValue: ExpressibleByDictionaryLiteral {
    /// A map in literal order: `["type": "linear", "out": 10]`.
    public init(dictionaryLiteral elements: (String, ConfigValue)...) {
        self = .map(elements.map { ConfigEntry(key: $0.0, value: $0.1) })
    }
}

extension ConfigValue {
    /// This tree with the value at a dotted path replaced (`train.max_steps`, `model.layers.2.out`):
    /// map keys are created as needed, list elements are addressed by index. The error names the
    /// part of the path that does not fit.
    public func setting(_ path: String, to value: ConfigValue, source: String) throws -> ConfigValue {
        let keys = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !keys.isEmpty, !keys.contains(where: \.isEmpty) else {
            throw ConfigError(source: source, path: path, "expected a dotted path such as train.max_steps")
        }
        func set(_ node: ConfigValue, _ i: Int) throws -> ConfigValue {
            if i == keys.count { return value }
            let key = keys[i], at = keys[0...i].joined(separator: ".")
            switch node {
            case .map(var entries):
                if let k = entries.firstIndex(where: { $0.key == key }) {
                    entries[k].value = try set(entries[k].value, i + 1)
                } else {
                    entries.append(ConfigEntry(key: key, value: try set(.null, i + 1)))
                }
                return .map(entries)
            case .null:
                return .map([ConfigEntry(key: key, value: try set(.null, i + 1))])
            case .list(var items):
                guard let k = Int(key), items.indices.contains(k) else {
                    throw ConfigError(source: source, path: at, "is a list of \(items.count); expected an index 0…\(items.count - 1)")
                }
                items[k] = try set(items[k], i + 1)
                return .list(items)
            default:
                throw ConfigError(source: source, path: keys[0..<i].joined(separator: "."), "is \(node.summary), not a mapping")
            }
        }
        return try set(self, 0)
    }
}
