import Glibc

/// Element types of numeric data files, by NumPy's names.
public enum ElementType: String, Sendable, CaseIterable {
    case f4, f8, i1, i2, i4, i8, u1, u2, u4, u8, bool = "b1"

    public var size: Int {
        switch self {
        case .i1, .u1, .bool: return 1
        case .i2, .u2: return 2
        case .f4, .i4, .u4: return 4
        case .f8, .i8, .u8: return 8
        }
    }

    public var isInteger: Bool { self != .f4 && self != .f8 }
}

/// NumPy's `.npy` format, versions 1.0, 2.0 and 3.0:
///
///     \x93NUMPY [major][minor] [header length: u16 LE (1.x) | u32 LE (2.x, 3.x)]
///     {'descr': '<f4', 'fortran_order': False, 'shape': (N, …), } padded with spaces to 64 bytes, '\n'
///     [data, C order]
///
/// Read through a memory map: the array is never copied whole into the process.
public enum NPY {
    public struct Header: Equatable, Sendable {
        public var type: ElementType
        public var bigEndian: Bool
        public var shape: [Int]
        /// Where the data starts in the file.
        public var offset: Int
    }

    /// A mapped array: its header and the file it lives in.
    public struct Array {
        public let header: Header
        public let file: MappedFile
        public var data: UnsafeRawPointer { file.base + header.offset }
    }

    public static func read(_ path: String) throws -> Array {
        let file = try MappedFile(path)
        let header = try parseHeader(file.bytes, source: path)
        return Array(header: header, file: file)
    }

    /// Parses and checks the header, including that the body holds every element.
    public static func parseHeader(_ b: UnsafeRawBufferPointer, source: String) throws -> Header {
        func bad(_ m: String) -> FileError { FileError(source, "not a valid .npy file: \(m)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard b.count >= 10, Swift.Array(b[0..<6]) == magic else {
            throw bad("bad magic (expected \\x93NUMPY, found \(b.prefix(6).map { String($0, radix: 16) }.joined(separator: " ")))")
        }
        let major = b[6]
        let (lenBytes, start): (Int, Int)
        switch major {
        case 1: (lenBytes, start) = (2, 10)
        case 2, 3: (lenBytes, start) = (4, 12)
        default: throw bad("format version \(major).\(b[7]) (supported: 1.0, 2.0, 3.0)")
        }
        guard b.count >= start else { throw bad("truncated header") }
        var len = 0
        for i in 0..<lenBytes { len |= Int(b[8 + i]) << (8 * i) }
        guard b.count >= start + len else { throw bad("header of \(len) bytes runs past the end of the file") }
        guard let text = String(validating: Swift.Array(b[start..<(start + len)]), as: UTF8.self) else {
            throw bad("header is not text")
        }
        guard let descr = value(text, "descr"), let fortran = value(text, "fortran_order"), let shapeText = value(text, "shape") else {
            throw bad("header \(text.trimmingSpaces) lacks descr, fortran_order or shape")
        }
        let d = descr.trimmingQuotes
        guard d.count >= 2, let order = d.first, "<>|=".contains(order) else { throw bad("descr \(descr) is not understood") }
        let code = String(d.dropFirst())
        guard let type = code == "?" ? .bool : ElementType(rawValue: code) else {
            throw FileError(source, "unsupported dtype \(descr) (supported: f4, f8, i1–i8, u1–u8, bool)")
        }
        if fortran == "True" {
            throw FileError(source, "array is in Fortran order; save it in C order (numpy.ascontiguousarray) first")
        }
        guard fortran == "False" else { throw bad("fortran_order is \(fortran)") }
        let inner = shapeText.trimming("()")
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = String(part).trimmingSpaces
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw bad("shape \(shapeText) is not a tuple of sizes") }
            shape.append(v)
        }
        let header = Header(type: type, bigEndian: order == ">" && type.size > 1, shape: shape, offset: start + len)
        let need = shape.reduce(1, *) * type.size
        guard b.count - header.offset >= need else {
            throw FileError(source, "truncated: shape \(shape) of \(type.rawValue) needs \(need) data bytes, the file has \(b.count - header.offset)")
        }
        return header
    }

    /// The text after `'key':` up to the next top-level comma (a tuple counts as one value).
    static func value(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)'") else { return nil }
        var rest = header[r.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop { $0 == " " }
        var depth = 0, out = ""
        for ch in rest {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1 }
            if (ch == "," && depth == 0) || ch == "}" { break }
            out.append(ch)
        }
        return out.trimmingSpaces
    }

    /// A version 1.0 file image of `values` (little-endian f4 or i4 etc., C order).
    public static func image(type: ElementType, shape: [Int], data: [UInt8]) -> [UInt8] {
        let code = type == .bool ? "|b1" : (type.size == 1 ? "|" : "<") + type.rawValue
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(code)', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Swift.Array(header.utf8) + data
    }

    /// A little-endian f4 array as a .npy file image.
    public static func image(floats: [Float], shape: [Int]) -> [UInt8] {
        image(type: .f4, shape: shape, data: floats.withUnsafeBytes { Swift.Array($0) })
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line breaks.
    public var trimmingSpaces: String { trimming(" \t\n\r") }
    var trimmingQuotes: String { trimming("'\"") }

    /// Without leading and trailing characters of `set`.
    public func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
