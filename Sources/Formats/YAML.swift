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
