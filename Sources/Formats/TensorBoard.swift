import Glibc

/// TensorBoard event files (`events.out.tfevents.<time>.<host>`), written by hand: the few
/// protobuf messages a scalar log needs, in TFRecord framing. Written by hand because
/// swift-protobuf (with generated code committed) adds 18 s to a fresh debug build and 39 s to
/// a release build on this machine, and CI builds both from scratch every run.
///
/// TFRecord: `u64 length | u32 masked crc32c(length) | data | u32 masked crc32c(data)`, little
/// endian. Messages (field numbers as in tensorflow/core/util/event.proto and summary.proto):
///
///     Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///     Summary { repeated Value value = 1; }
///     Value   { string tag = 1; float simple_value = 2; }
public enum TensorBoard {
    /// One scalar of one event.
    public struct Scalar: Equatable, Sendable {
        public var tag: String
        public var value: Float
        public init(_ tag: String, _ value: Float) { self.tag = tag; self.value = value }
    }

    /// One decoded event (for tests and `ringtrain plot`).
    public struct Event: Equatable, Sendable {
        public var wallTime: Double
        public var step: Int64
        public var fileVersion: String?
        public var scalars: [Scalar]
        public init(wallTime: Double, step: Int64, fileVersion: String?, scalars: [Scalar]) {
            self.wallTime = wallTime; self.step = step; self.fileVersion = fileVersion; self.scalars = scalars
        }
    }

    // MARK: CRC32C (Castagnoli), as TFRecord masks it

    static let crcTable: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func crc32c(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    public static func maskedCRC(_ bytes: some Sequence<UInt8>) -> UInt32 {
        let c = crc32c(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }

    /// One record in TFRecord framing.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        let len = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        var out = len
        out += withUnsafeBytes(of: maskedCRC(len).littleEndian) { Array($0) }
        out += data
        out += withUnsafeBytes(of: maskedCRC(data).littleEndian) { Array($0) }
        return out
    }

    // MARK: protobuf wire format (varint = 0, 64-bit = 1, length-delimited = 2, 32-bit = 5)

    static func varint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    static func key(_ field: Int, _ wire: Int, _ out: inout [UInt8]) { varint(UInt64(field << 3 | wire), &out) }

    static func bytesField(_ field: Int, _ bytes: [UInt8], _ out: inout [UInt8]) {
        key(field, 2, &out)
        varint(UInt64(bytes.count), &out)
        out += bytes
    }

    /// An `Event` message holding either the file version or a summary of scalars.
    public static func encode(wallTime: Double, step: Int64, fileVersion: String? = nil, scalars: [Scalar] = []) -> [UInt8] {
        var out: [UInt8] = []
        key(1, 1, &out)
        out += withUnsafeBytes(of: wallTime.bitPattern.littleEndian) { Array($0) }
        if step != 0 { key(2, 0, &out); varint(UInt64(bitPattern: step), &out) }
        if let v = fileVersion { bytesField(3, Array(v.utf8), &out) }
        if !scalars.isEmpty {
            var summary: [UInt8] = []
            for s in scalars {
                var value: [UInt8] = []
                bytesField(1, Array(s.tag.utf8), &value)
                key(2, 5, &value)
                value += withUnsafeBytes(of: s.value.bitPattern.littleEndian) { Array($0) }
                bytesField(1, value, &summary)
            }
            bytesField(5, summary, &out)
        }
        return out
    }

    // MARK: reading back

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every event of an event file's bytes; checks both CRCs of every record.
    public static func decode(file bytes: [UInt8], source: String) throws -> [Event] {
        var events: [Event] = []
        var i = 0
        func fail(_ m: String) -> FormatError { FormatError(description: "\(source): record at byte \(i): \(m)") }
        func u32(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        while i < bytes.count {
            guard bytes.count - i >= 12 else { throw fail("truncated header") }
            let len = Int(bytes[i..<i + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            guard u32(i + 8) == maskedCRC(bytes[i..<i + 8]) else { throw fail("length CRC mismatch") }
            guard len >= 0, bytes.count - i - 12 >= len + 4 else { throw fail("truncated data (\(len) bytes announced)") }
            let data = Array(bytes[(i + 12)..<(i + 12 + len)])
            guard u32(i + 12 + len) == maskedCRC(data) else { throw fail("data CRC mismatch") }
            events.append(try decodeEvent(data, fail))
            i += 16 + len
        }
        return events
    }

    private struct Reader {
        let b: [UInt8]
        var i = 0
        mutating func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw FormatError(description: "bad varint") }
                let x = b[i]; i += 1
                v |= UInt64(x & 0x7F) << shift
                if x < 0x80 { return v }
                shift += 7
            }
        }
        mutating func fixed(_ n: Int) throws -> UInt64 {
            guard b.count - i >= n else { throw FormatError(description: "truncated field") }
            defer { i += n }
            return b[i..<i + n].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        mutating func bytes() throws -> [UInt8] {
            let n = Int(try varint())
            guard n >= 0, b.count - i >= n else { throw FormatError(description: "truncated field") }
            defer { i += n }
            return Array(b[i..<i + n])
        }
        /// Skips a field of another number.
        mutating func skip(_ wire: Int) throws {
            switch wire {
            case 0: _ = try varint()
            case 1: _ = try fixed(8)
            case 2: _ = try bytes()
            case 5: _ = try fixed(4)
            default: throw FormatError(description: "unsupported wire type \(wire)")
            }
        }
        /// (field, wire type) pairs until the end.
        mutating func fields(_ body: (inout Reader, Int, Int) throws -> Void) throws {
            while i < b.count {
                let k = try varint()
                try body(&self, Int(k >> 3), Int(k & 7))
            }
        }
    }

    private static func decodeEvent(_ data: [UInt8], _ fail: (String) -> FormatError) throws -> Event {
        var e = Event(wallTime: 0, step: 0, fileVersion: nil, scalars: [])
        var r = Reader(b: data)
        do {
            try r.fields { r, field, wire in
                switch (field, wire) {
                case (1, 1): e.wallTime = Double(bitPattern: try r.fixed(8))
                case (2, 0): e.step = Int64(bitPattern: try r.varint())
                case (3, 2): e.fileVersion = String(decoding: try r.bytes(), as: UTF8.self)
                case (5, 2):
                    var s = Reader(b: try r.bytes())
                    try s.fields { s, f, w in
                        guard f == 1, w == 2 else { return try s.skip(w) }
                        var v = Reader(b: try s.bytes())
                        var scalar = Scalar("", .nan)
                        try v.fields { v, f, w in
                            switch (f, w) {
                            case (1, 2): scalar.tag = String(decoding: try v.bytes(), as: UTF8.self)
                            case (2, 5): scalar.value = Float(bitPattern: UInt32(try v.fixed(4)))
                            default: try v.skip(w)
                            }
                        }
                        e.scalars.append(scalar)
                    }
                default: try r.skip(wire)
                }
            }
        } catch let f as FormatError {
            throw fail(f.description)
        }
        return e
    }
}

/// Appends events to one event file (buffered; `flush()` pushes them out, which the run recorder
/// does at least once a second, so a killed run keeps what it logged).
public final class EventFileWriter {
    public let path: String
    private let file: UnsafeMutablePointer<FILE>

    /// Creates `<dir>/events.out.tfevents.<seconds>.<host>` (a new file: TensorBoard reads every
    /// file of a directory, so a resumed run adds one instead of touching the old).
    public init(directory dir: String, host: String, wallTime: Double) throws {
        try FileIO.makeDirectories(dir)
        var p = "\(dir)/events.out.tfevents.\(Int(wallTime)).\(host)"
        var k = 1
        while FileIO.exists(p) { p = "\(dir)/events.out.tfevents.\(Int(wallTime)).\(host).\(k)"; k += 1 }
        guard let f = fopen(p, "wx") else { throw FileError(p, "cannot create: \(String(cString: strerror(errno)))") }
        path = p
        file = f
        try write(TensorBoard.encode(wallTime: wallTime, step: 0, fileVersion: "brain.Event:2"))
    }

    public func add(step: Int, wallTime: Double, _ scalars: [TensorBoard.Scalar]) throws {
        guard !scalars.isEmpty else { return }
        try write(TensorBoard.encode(wallTime: wallTime, step: Int64(step), scalars: scalars))
    }

    private func write(_ event: [UInt8]) throws {
        let r = TensorBoard.record(event)
        guard fwrite(r, 1, r.count, file) == r.count else {
            throw FileError(path, "write failed: \(String(cString: strerror(errno)))")
        }
    }

    public func flush() { fflush(file) }

    deinit { fclose(file) }
}
