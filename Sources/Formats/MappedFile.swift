import CZlib
import Glibc

extension FileIO {
    /// Reads a whole file, transparently decompressing gzip (zlib's gz* functions read
    /// uncompressed files as they are).
    public static func readDecompressed(_ path: String) throws -> [UInt8] {
        guard FileIO.exists(path) else { throw FileError(path, "no such file") }
        guard let gz = gzopen(path, "rb") else { throw FileError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 17)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let msg = String(cString: gzerror(gz, &code))
                throw FileError(path, "cannot decompress: \(msg)")
            }
            if n == 0 { break }
            out += chunk[0..<Int(n)]
        }
        // gzread stops quietly at a truncated stream; gzerror tells.
        var code: Int32 = 0
        let msg = String(cString: gzerror(gz, &code))
        if code != Z_OK { throw FileError(path, "cannot decompress: \(msg) (file truncated?)") }
        return out
    }

}

/// A file mapped read-only into memory. Pages come from the page cache on demand and can be
/// dropped again under memory pressure, so a dataset larger than RAM can be read as if it
/// were an array (and several processes on a host share one copy).
public final class MappedFile {
    public let path: String
    public let count: Int
    public let base: UnsafeRawPointer

    public init(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(path, "is not a regular file") }
        guard st.st_size > 0 else { throw FileError(path, "is empty") }
        let n = Int(st.st_size)
        guard let p = mmap(nil, n, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw FileError(path, "cannot map \(n) bytes: \(String(cString: strerror(errno)))")
        }
        self.path = path
        count = n
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), count) }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
