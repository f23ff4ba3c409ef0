import Comm
import Formats
import Glibc

/// CURVE key files, in the spirit of ZeroMQ's zcert files:
///
///     NAME.key   public-key = "…" and secret-key = "…"   (mode 0600: keep it secret)
///     NAME.pub   public-key = "…"                         (give it to the other side)
public enum KeyFiles {
    /// Writes a fresh key pair to `base`.key and `base`.pub; returns the pair.
    @discardableResult
    public static func generate(_ base: String) throws -> CurveKeyPair {
        let pair = try CurveKeyPair.generate()
        for p in [base + ".key", base + ".pub"] where FileIO.exists(p) {
            throw FileError(p, "already exists; remove it first (keys are never overwritten)")
        }
        try FileIO.makeDirectories(FileIO.directory(of: base + ".key"))
        try FileIO.writeAtomically(base + ".key", bytes: Array("""
            # RingTrain CURVE key pair. Keep this file secret.
            public-key = "\(pair.publicKey)"
            secret-key = "\(pair.secretKey)"

            """.utf8))
        chmod(base + ".key", 0o600)
        try FileIO.writeAtomically(base + ".pub", bytes: Array("""
            # RingTrain CURVE public key.
            public-key = "\(pair.publicKey)"

            """.utf8))
        return pair
    }

    /// Reads a key pair (a .key file).
    public static func loadPair(_ path: String) throws -> CurveKeyPair {
        let fields = try parse(path)
        guard let pub = fields["public-key"], let sec = fields["secret-key"] else {
            throw FileError(path, "expected public-key and secret-key (a .key file written by ringtrain keygen)")
        }
        do { return try CurveKeyPair(publicKey: pub, secretKey: sec) } catch { throw FileError(path, "\(error)") }
    }

    /// Reads a public key (a .pub or .key file).
    public static func loadPublic(_ path: String) throws -> String {
        guard let pub = try parse(path)["public-key"] else { throw FileError(path, "no public-key line") }
        guard CurveKeyPair.isKey(pub) else { throw FileError(path, "public-key is not 40 Z85 characters") }
        return pub
    }

    /// Public keys from files and directories (every *.pub file in a directory).
    public static func loadAuthorized(_ paths: [String]) throws -> [String] {
        var keys: [String] = []
        for p in paths {
            if FileIO.isDirectory(p) {
                let files = FileIO.list(p).filter { $0.hasSuffix(".pub") }
                if files.isEmpty { throw FileError(p, "no .pub files in this directory") }
                keys += try files.map { try loadPublic("\(p)/\($0)") }
            } else {
                keys.append(try loadPublic(p))
            }
        }
        return keys
    }

    private static func parse(_ path: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for (n, raw) in try FileIO.readText(path).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else { throw FileError(path, "line \(n + 1): expected name = \"value\"") }
            let key = String(line[..<eq]).trimmingCharacters(in: " \t")
            var value = String(line[line.index(after: eq)...]).trimmingCharacters(in: " \t")
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            out[key] = value
        }
        return out
    }
}

private extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
