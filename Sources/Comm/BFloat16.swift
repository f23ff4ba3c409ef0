/// bfloat16 on the wire: the top 16 bits of a Float (same exponent range, 8 significant bits),
/// rounded to nearest even. Halves the bytes a ring all-reduce moves between hosts, like
/// PyTorch DDP's bf16 compression hook.
enum BFloat16 {
    // Plain loops over bit patterns: LLVM vectorizes these (the generic SIMD conversions between
    // lane widths are not reliably vectorized). Payloads are at least 2-byte aligned.

    /// The bf16 bits of x: round to nearest even; NaN stays a (quiet) NaN.
    @inline(__always)
    static func bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
        let nan = (b & 0x7FFF_FFFF) > 0x7F80_0000
        return UInt16(truncatingIfNeeded: nan ? (b &>> 16) | 0x40 : rounded)
    }

    @inline(__always)
    static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) &<< 16) }

    /// Shape: src[count] Float → dst[count] bf16.
    static func encode(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        let d = dst.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { d[i] = bits(src[i]) }
    }

    /// Shape: src[count] bf16 → dst[count] += Float(src).
    static func add(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let h = src.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { dst[i] += float(h[i]) }
    }

    /// Shape: src[count] bf16 → dst[count] = Float(src).
    static func decode(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let h = src.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { dst[i] = float(h[i]) }
    }

    /// Shape: x[count] → x[count] rounded to bf16 precision (what a receiver of it would hold).
    static func round(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = float(bits(x[i])) }
    }
}

/// Scratch memory owned by the communication thread, grown on demand and reused (no
/// allocation per collective once it has reached the largest size).
final class Staging {
    private(set) var base: UnsafeMutableRawPointer?
    private var capacity = 0

    func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity || base == nil {
            base?.deallocate()
            capacity = max(bytes, 64)
            base = .allocate(byteCount: capacity, alignment: 64)
        }
        return base!
    }

    deinit { base?.deallocate() }
}
