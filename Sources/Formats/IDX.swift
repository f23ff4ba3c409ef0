import Glibc

/// The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed:
///
///     [0x00 0x00][type][ndims][ndims × u32 BE sizes][data, big-endian]
///
/// Only unsigned bytes (type 0x08) are used by these datasets, and only they are accepted.
public enum IDX {
    public struct Array: Sendable {
        public let dims: [Int]
        public let bytes: [UInt8]
    }

    public static func read(_ path: String) throws -> Array {
        try parse(try FileIO.readDecompressed(path), source: path)
    }

    public static func parse(_ b: [UInt8], source: String) throws -> Array {
        func bad(_ m: String) -> FileError { FileError(source, "not a valid IDX file: \(m)") }
        guard b.count >= 4 else { throw bad("only \(b.count) bytes") }
        guard b[0] == 0, b[1] == 0 else {
            throw bad("magic starts with \(hex(b[0])) \(hex(b[1])), expected 00 00")
        }
        guard b[2] == 0x08 else { throw bad("element type 0x\(hex(b[2])) is not unsigned byte (0x08)") }
        let nd = Int(b[3])
        guard nd >= 1 && nd <= 4 else { throw bad("\(nd) dimensions (expected 1 to 4)") }
        guard b.count >= 4 + 4 * nd else { throw bad("truncated in the dimension list") }
        var dims: [Int] = []
        for d in 0..<nd {
            let o = 4 + 4 * d
            dims.append(Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]))
        }
        let count = dims.reduce(1, *)
        let have = b.count - 4 - 4 * nd
        guard have == count else {
            throw bad(have < count ? "truncated: dimensions \(dims) need \(count) data bytes, file has \(have)"
                                   : "\(have - count) unexpected bytes after the \(count) data bytes of dimensions \(dims)")
        }
        return Array(dims: dims, bytes: Swift.Array(b[(4 + 4 * nd)...]))
    }
}

private func hex(_ x: UInt8) -> String { x < 16 ? "0" + String(x, radix: 16) : String(x, radix: 16) }
