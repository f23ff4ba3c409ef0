import Config

/// The safetensors format (https://huggingface.co/docs/safetensors), written and read here:
///
///     [u64 LE: N][N bytes: JSON header][byte buffer]
///
/// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets
/// relative to the byte buffer) and may hold "__metadata__": {string: string}. The reader
/// checks everything a hostile file could get wrong: header length, JSON, dtypes, shapes,
/// offsets in range, sizes matching shapes, and offsets that tile the buffer exactly.
public enum SafeTensors {
    public enum DType: String, Sendable, CaseIterable {
        case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64
        public var size: Int {
            switch self {
            case .F64, .I64, .U64: return 8
            case .F32, .I32, .U32: return 4
            case .F16, .BF16, .I16, .U16: return 2
            case .I8, .U8, .BOOL: return 1
            }
        }
    }

    /// One tensor of a file: its raw little-endian bytes plus dtype and shape.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let bytes: ArraySlice<UInt8>

        public var count: Int { shape.reduce(1, *) }

        /// The values as Float32 (only for F32 tensors; callers check dtype first).
        public func floats() -> [Float] {
            precondition(dtype == .F32)
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { dst.copyMemory(from: $0) }
            }
            return out
        }

        /// Copies F32 values into `dst` (count elements).
        public func copyFloats(into dst: UnsafeMutablePointer<Float>) {
            precondition(dtype == .F32)
            bytes.withUnsafeBytes { UnsafeMutableRawPointer(dst).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }

        /// I64 values (for counters such as BatchNorm's num_batches_tracked).
        public func int64s() -> [Int64] {
            precondition(dtype == .I64)
            var out = [Int64](repeating: 0, count: count)
            out.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
            return out
        }
    }

    /// A parsed file: tensors in header order and the metadata map.
    public struct File: Sendable {
        public var tensors: [Entry]
        public var metadata: [String: String]

        public func tensor(_ name: String) -> Entry? { tensors.first { $0.name == name } }
    }

    public static let maxHeaderBytes = 100_000_000

    public static func read(path: String) throws -> File {
        let bytes = try FileIO.read(path)
        return try parse(bytes, source: path)
    }

    public static func parse(_ bytes: [UInt8], source: String) throws -> File {
        func bad(_ m: String) -> FileError { FileError(source, "not a valid safetensors file: \(m)") }
        guard bytes.count >= 8 else { throw bad("\(bytes.count) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for k in 0..<8 { n |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard n <= UInt64(maxHeaderBytes) else { throw bad("header length \(n) exceeds the \(maxHeaderBytes)-byte limit") }
        guard 8 + Int(n) <= bytes.count else {
            throw bad("header length \(n) runs past the end of the file (\(bytes.count) bytes): truncated?")
        }
        let headerBytes = bytes[8..<(8 + Int(n))]
        guard headerBytes.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let header: ConfigValue
        do { header = try JSON.parse(headerBytes) } catch { throw bad("header: \(error)") }
        guard case .map(let entries) = header else { throw bad("header is not a JSON object") }
        let dataStart = 8 + Int(n)
        let dataCount = bytes.count - dataStart

        var metadata: [String: String] = [:]
        var tensors: [Entry] = []
        var spans: [(begin: Int, end: Int, name: String)] = []
        for e in entries {
            if e.key == "__metadata__" {
                guard case .map(let m) = e.value else { throw bad("__metadata__ is not an object") }
                for kv in m {
                    guard case .string(let s) = kv.value else { throw bad("__metadata__.\(kv.key) is not a string") }
                    metadata[kv.key] = s
                }
                continue
            }
            let name = e.key
            guard case .map(let fields) = e.value else { throw bad("tensor \"\(name)\" is not an object") }
            var dtype: DType?
            var shape: [Int]?
            var offsets: [Int]?
            for f in fields {
                switch f.key {
                case "dtype":
                    guard case .string(let s) = f.value else { throw bad("tensor \"\(name)\": dtype is not a string") }
                    guard let d = DType(rawValue: s) else { throw bad("tensor \"\(name)\": unknown dtype \"\(s)\"") }
                    dtype = d
                case "shape", "data_offsets":
                    guard case .list(let l) = f.value else { throw bad("tensor \"\(name)\": \(f.key) is not a list") }
                    let ints: [Int] = try l.map {
                        guard case .int(let i) = $0, i >= 0 else {
                            throw bad("tensor \"\(name)\": \(f.key) holds \($0.summary), expected non-negative integers")
                        }
                        return i
                    }
                    if f.key == "shape" { shape = ints } else { offsets = ints }
                default:
                    throw bad("tensor \"\(name)\": unexpected field \"\(f.key)\"")
                }
            }
            guard let dtype, let shape, let offsets else {
                throw bad("tensor \"\(name)\" needs dtype, shape and data_offsets")
            }
            guard offsets.count == 2, offsets[0] <= offsets[1] else {
                throw bad("tensor \"\(name)\": data_offsets must be [begin, end] with begin ≤ end, found \(offsets)")
            }
            guard offsets[1] <= dataCount else {
                throw bad("tensor \"\(name)\": data_offsets \(offsets) run past the \(dataCount)-byte data section")
            }
            var elements = 1
            for d in shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("tensor \"\(name)\": shape \(shape) overflows") }
                elements = p
            }
            let (size, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, size == offsets[1] - offsets[0] else {
                throw bad("tensor \"\(name)\": shape \(shape) of \(dtype.rawValue) needs \(elements) × \(dtype.size) bytes, data_offsets span \(offsets[1] - offsets[0])")
            }
            spans.append((offsets[0], offsets[1], name))
            tensors.append(Entry(name: name, dtype: dtype, shape: shape,
                                 bytes: bytes[(dataStart + offsets[0])..<(dataStart + offsets[1])]))
        }
        // The tensors must tile the data section: no overlaps, no holes, nothing after.
        spans.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for s in spans {
            if s.begin < expected { throw bad("tensor \"\(s.name)\" overlaps the previous tensor (begins at \(s.begin), previous ends at \(expected))") }
            if s.begin > expected { throw bad("gap in the data section before tensor \"\(s.name)\" (bytes \(expected)..<\(s.begin) unused)") }
            expected = s.end
        }
        guard expected == dataCount else {
            throw bad("data section has \(dataCount) bytes but the tensors cover \(expected)")
        }
        return File(tensors: tensors, metadata: metadata)
    }

    /// Collects tensors and metadata, then writes one file atomically.
    public struct Writer {
        private var header: [ConfigEntry] = []
        private var chunks: [[UInt8]] = []
        private var offset = 0
        public var metadata: [String: String] = [:]

        public init() {}

        public mutating func add(_ name: String, shape: [Int], floats: UnsafePointer<Float>) {
            let n = shape.reduce(1, *)
            let raw = UnsafeRawBufferPointer(start: floats, count: n * 4)
            add(name, dtype: .F32, shape: shape, bytes: Array(raw))
        }

        public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) {
            add(name, dtype: .I64, shape: shape, bytes: int64s.withUnsafeBytes { Array($0) })
        }

        public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
            precondition(bytes.count == shape.reduce(1, *) * dtype.size)
            header.append(ConfigEntry(key: name, value: .object([
                "dtype": .string(dtype.rawValue),
                "shape": .list(shape.map { .int($0) }),
                "data_offsets": .list([.int(offset), .int(offset + bytes.count)]),
            ])))
            chunks.append(bytes)
            offset += bytes.count
        }

        /// The complete file image.
        public func bytes() -> [UInt8] {
            var entries = header
            if !metadata.isEmpty {
                let m = metadata.keys.sorted().map { ConfigEntry(key: $0, value: .string(metadata[$0]!)) }
                entries.insert(ConfigEntry(key: "__metadata__", value: .map(m)), at: 0)
            }
            var json = Array(JSON.string(.map(entries)).utf8)
            // Pad with spaces so the data section starts 8-byte aligned (as the spec suggests).
            while (8 + json.count) % 8 != 0 { json.append(0x20) }
            var out: [UInt8] = []
            out.reserveCapacity(8 + json.count + offset)
            let n = UInt64(json.count)
            for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
            out += json
            for c in chunks { out += c }
            return out
        }

        public func write(to path: String) throws {
            try FileIO.writeAtomically(path, bytes: bytes())
        }
    }
}
