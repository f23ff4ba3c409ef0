/// The 40-byte header in front of every data-plane frame (little-endian):
///
///     0  magic  "RTC1"        4  kind u8   5  reserved u8   6  step u16
///     8  run id u64          16  sequence u64 (collective number since the ring formed)
///    24  bucket u32          28  chunk u32   32  bytes u32 (size of the payload frame)
///    36  reserved u32
///
/// A frame travels as a two-part message [header][payload]. The receiver knows exactly which
/// frame must come next and checks every field, so a stray, stale or corrupt frame is an
/// error naming the peer, never silently added into a gradient.
public struct FrameHeader: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case data = 1
        /// The sender's job is failing; `bucket` carries the rank at fault, the payload a reason.
        case abort = 2
        /// First frame on a new ring edge; the payload names the sender (see RingCommunicator).
        case hello = 3
    }

    public static let size = 40
    static let magic: [UInt8] = Array("RTC1".utf8)

    public var kind: Kind
    public var step: UInt16
    public var runID: UInt64
    public var sequence: UInt64
    public var bucket: UInt32
    public var chunk: UInt32
    public var bytes: UInt32

    public init(kind: Kind = .data, step: Int, runID: UInt64, sequence: UInt64, bucket: Int, chunk: Int, bytes: Int) {
        self.kind = kind
        self.step = UInt16(truncatingIfNeeded: step)
        self.runID = runID
        self.sequence = sequence
        self.bucket = UInt32(truncatingIfNeeded: bucket)
        self.chunk = UInt32(truncatingIfNeeded: chunk)
        self.bytes = UInt32(truncatingIfNeeded: bytes)
    }

    /// Writes the header into `p` (at least `size` bytes).
    public func encode(into p: UnsafeMutableRawPointer) {
        for (i, b) in Self.magic.enumerated() { p.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
        p.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: UInt8(0), toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: step.littleEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: runID.littleEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: sequence.littleEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: bucket.littleEndian, toByteOffset: 24, as: UInt32.self)
        p.storeBytes(of: chunk.littleEndian, toByteOffset: 28, as: UInt32.self)
        p.storeBytes(of: self.bytes.littleEndian, toByteOffset: 32, as: UInt32.self)
        p.storeBytes(of: UInt32(0), toByteOffset: 36, as: UInt32.self)
    }

    public var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out.withUnsafeMutableBytes { encode(into: $0.baseAddress!) }
        return out
    }

    /// Parses a header, or says why the bytes are not one.
    public static func decode(_ raw: UnsafeRawBufferPointer) -> Result<FrameHeader, FrameError> {
        guard raw.count == size else { return .failure(.malformed("header of \(raw.count) bytes, expected \(size)")) }
        guard Array(raw[0..<4]) == magic else { return .failure(.malformed("bad magic \(Array(raw[0..<4]))")) }
        guard let kind = Kind(rawValue: raw[4]) else { return .failure(.malformed("unknown frame kind \(raw[4])")) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        let step = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        var h = FrameHeader(kind: kind, step: Int(step), runID: u64(8), sequence: u64(16),
                            bucket: 0, chunk: 0, bytes: 0)
        h.bucket = u32(24)
        h.chunk = u32(28)
        h.bytes = u32(32)
        return .success(h)
    }

    public var summary: String {
        "run \(String(runID, radix: 16)) seq \(sequence) bucket \(bucket) step \(step) chunk \(chunk) (\(bytes) bytes)"
    }
}

public enum FrameError: Error, Equatable {
    case malformed(String)
}
