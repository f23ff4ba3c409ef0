import Config
import Yams

/// YAML text → `ConfigValue`, keeping key order and the scalar types YAML resolved
/// (quoted "8" stays a string, 8 an integer, 8.0 a number).
public enum YAML {
    public static func parse(_ text: String, source: String) throws -> ConfigValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(source: source, path: "", "not valid YAML: \(error)")
        }
        guard let node else { return .null }
        return try convert(node, source: source, path: "")
    }

    private static func convert(_ node: Node, source: String, path: String) throws -> ConfigValue {
        switch node {
        case .scalar(let s):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map { .bool($0) } ?? .string(s.string)
            case .int: return node.int.map { .int($0) } ?? .string(s.string)
            case .float:
                guard let d = node.float, d.isFinite else {
                    throw ConfigError(source: source, path: path, "\(s.string) is not a finite number")
                }
                return .double(d)
            default: return .string(s.string)
            }
        case .sequence(let seq):
            return .list(try seq.enumerated().map { try convert($1, source: source, path: "\(path)[\($0)]") })
        case .mapping(let m):
            var entries: [ConfigEntry] = []
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    throw ConfigError(source: source, path: path, "mapping keys must be plain strings")
                }
                let key = ks.string
                let sub = path.isEmpty ? key : "\(path).\(key)"
                if entries.contains(where: { $0.key == key }) {
                    throw ConfigError(source: source, path: sub, "key appears twice")
                }
                entries.append(ConfigEntry(key: key, value: try convert(v, source: source, path: sub)))
            }
            return .map(entries)
        case .alias:
            throw ConfigError(source: source, path: path, "YAML aliases are not supported in job files")
        }
    }
}

extension YAML {
    /// `ConfigValue` → block-style YAML that `parse` reads back to the same value: maps and
    /// lists of maps in block style, lists of scalars in flow style, strings quoted only where
    /// YAML would read them as something else ("8", "true", "", "a: b").
    public static func string(_ v: ConfigValue) -> String {
        var out = ""
        switch v {
        case .map(let entries) where !entries.isEmpty: writeMap(entries, indent: 0, to: &out)
        case .list(let items) where !items.isEmpty && !items.allSatisfy(isScalar): writeList(items, indent: 0, to: &out)
        default: out = inline(v) + "\n"
        }
        return out
    }

    private static func isScalar(_ v: ConfigValue) -> Bool {
        switch v {
        case .list(let l): return l.allSatisfy(isScalar)
        case .map(let m): return m.isEmpty
        default: return true
        }
    }

    private static func writeMap(_ entries: [ConfigEntry], indent: Int, to out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for e in entries {
            out += pad + scalar(e.key) + ":"
            switch e.value {
            case .map(let m) where !m.isEmpty:
                out += "\n"
                writeMap(m, indent: indent + 2, to: &out)
            case .list(let l) where !l.isEmpty && !l.allSatisfy(isScalar):
                out += "\n"
                writeList(l, indent: indent + 2, to: &out)
            default:
                out += " " + inline(e.value) + "\n"
            }
        }
    }

    private static func writeList(_ items: [ConfigValue], indent: Int, to out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            switch item {
            case .map(let m) where !m.isEmpty:
                // "- key: value" then the other keys aligned under the first.
                var body = ""
                writeMap(m, indent: indent + 2, to: &body)
                out += pad + "- " + body.dropFirst(indent + 2)
            case .list(let l) where !l.isEmpty && !l.allSatisfy(isScalar):
                out += pad + "-\n"
                writeList(l, indent: indent + 2, to: &out)
            default:
                out += pad + "- " + inline(item) + "\n"
            }
        }
    }

    private static func inline(_ v: ConfigValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            let s = String(d)
            return s.contains(".") || s.contains("e") || !d.isFinite ? s : s + ".0"
        case .string(let s): return scalar(s)
        case .list(let l): return "[" + l.map(inline).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.map { scalar($0.key) + ": " + inline($0.value) }.joined(separator: ", ") + "}"
        }
    }

    /// A string plain when YAML reads it back as that same string, double-quoted otherwise.
    private static func scalar(_ s: String) -> String {
        let plain = !s.isEmpty && !s.contains(where: { ",[]{}#&*!|>'\"%@`:\n\t\\".contains($0) })
            && s.first != " " && s.last != " " && s.first != "-" && s.first != "?"
        if plain, (try? parse(s, source: "")) == .string(s) { return s }
        return JSON.string(.string(s))
    }
}
