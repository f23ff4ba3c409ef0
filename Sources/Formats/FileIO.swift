import Glibc

/// A file-level error that names the file and what was wrong with it.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

public enum FileIO {
    private static func errnoText() -> String { String(cString: strerror(errno)) }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// A regular file (after following symbolic links).
    public static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The whole file as bytes.
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path, "cannot stat: \(errnoText())") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FileError(path, "is a directory, expected a file") }
        // st_size is a hint only: files under /proc report 0, and a file may grow.
        var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 4096))
        var done = 0
        while true {
            if done == out.count { out += [UInt8](repeating: 0, count: out.count) }
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "read failed: \(errnoText())")
            }
            if n == 0 { break }
            done += n
        }
        out.removeSubrange(done...)
        return out
    }

    public static func readText(_ path: String) throws -> String {
        let b = try read(path)
        guard let s = String(validating: b, as: UTF8.self) else { throw FileError(path, "is not UTF-8 text") }
        return s
    }

    /// Writes `chunks` to `path` atomically: a temporary file in the same directory, fsync,
    /// rename over the target, fsync of the directory. A crash leaves either the old file
    /// or the new one, never a torn one.
    public static func writeAtomically(_ path: String, _ chunks: [UnsafeRawBufferPointer]) throws {
        let dir = directory(of: path)
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(path, "cannot write: \(errnoText()) (creating \(tmp))") }
        var ok = false
        defer { if !ok { close(fd); unlink(tmp) } }
        for chunk in chunks {
            var done = 0
            while done < chunk.count {
                let n = write(fd, chunk.baseAddress! + done, chunk.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError(path, "cannot write: \(errnoText()) (the previous file, if any, is untouched)")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw FileError(path, "cannot write: fsync failed: \(errnoText()) (the previous file, if any, is untouched)") }
        ok = true
        close(fd)
        guard rename(tmp, path) == 0 else {
            let m = errnoText()
            unlink(tmp)
            throw FileError(path, "rename from \(tmp) failed: \(m)")
        }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    public static func writeAtomically(_ path: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAtomically(path, [$0]) }
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    /// mkdir -p
    public static func makeDirectories(_ path: String) throws {
        if path.isEmpty || isDirectory(path) { return }
        let parent = directory(of: path)
        if parent != path && parent != "." { try makeDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw FileError(path, "cannot create directory: \(errnoText())")
        }
    }

    /// Names of the entries in a directory (no . and ..).
    public static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out.sorted()
    }

    public static func remove(_ path: String) { unlink(path) }
}
