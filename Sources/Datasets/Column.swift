import Formats
import TensorCore

/// One field of N samples (the inputs, or the targets) with any per-sample shape, stored as
/// the file stores it — bytes of an IDX file, a memory-mapped .npy array, parsed CSV values —
/// and converted only for the rows a batch gathers. Nothing here is copied whole, so an array
/// larger than memory can be trained on.
public final class Column {
    public let rows: Int
    public let sampleShape: [Int]
    public let type: ElementType
    public let bigEndian: Bool
    /// Raw values are multiplied by this before anything else (1/255 for IDX pixels).
    public let rawScale: Float
    /// For integer fields read as ids or classes: how many distinct values (ids are 0..<n).
    public var classes: Int?
    /// Applied after `rawScale`: value·scale[j] + shift[j] for element j of a sample (set
    /// from the training split's normalisation statistics).
    public private(set) var affine: (scale: [Float], shift: [Float])?

    private let base: UnsafeRawPointer
    private let keeper: AnyObject

    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// A column over memory that `keeper` keeps alive (a `MappedFile`, or an array box).
    public init(base: UnsafeRawPointer, keeper: AnyObject, rows: Int, sampleShape: [Int], type: ElementType,
                bigEndian: Bool = false, rawScale: Float = 1) {
        self.base = base
        self.keeper = keeper
        self.rows = rows
        self.sampleShape = sampleShape
        self.type = type
        self.bigEndian = bigEndian && type.size > 1
        self.rawScale = rawScale
    }

    /// An in-memory column of floats.
    public convenience init(floats: [Float], sampleShape: [Int]) {
        let box = Storage(floats.withUnsafeBytes { Array($0) })
        let n = sampleShape.reduce(1, *)
        self.init(base: box.pointer, keeper: box, rows: n == 0 ? 0 : floats.count / n, sampleShape: sampleShape, type: .f4)
    }

    /// An in-memory column of integers.
    public convenience init(ints: [Int32], sampleShape: [Int], classes: Int? = nil) {
        let box = Storage(ints.withUnsafeBytes { Array($0) })
        let n = sampleShape.reduce(1, *)
        self.init(base: box.pointer, keeper: box, rows: n == 0 ? 0 : ints.count / n, sampleShape: sampleShape, type: .i4)
        self.classes = classes
    }

    /// An in-memory column of raw bytes as a file holds them (IDX pixels and labels).
    public convenience init(bytes: [UInt8], rows: Int, sampleShape: [Int], type: ElementType, rawScale: Float = 1) {
        let box = Storage(bytes)
        self.init(base: box.pointer, keeper: box, rows: rows, sampleShape: sampleShape, type: type, rawScale: rawScale)
    }

    /// Heap bytes owned by a column (16-byte aligned, so typed fast paths may read them).
    final class Storage {
        let pointer: UnsafeRawPointer
        init(_ b: [UInt8]) {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(b.count, 1), alignment: 16)
            b.withUnsafeBytes { if let src = $0.baseAddress { p.copyMemory(from: src, byteCount: b.count) } }
            pointer = UnsafeRawPointer(p)
        }
        deinit { UnsafeMutableRawPointer(mutating: pointer).deallocate() }
    }

    /// The same storage with another per-sample shape of the same size (e.g. [] → [1]).
    public func reshaped(_ shape: [Int]) -> Column {
        precondition(shape.reduce(1, *) == sampleSize)
        let c = Column(base: base, keeper: keeper, rows: rows, sampleShape: shape, type: type, bigEndian: bigEndian, rawScale: rawScale)
        c.classes = classes
        return c
    }

    /// Sets the per-element affine map (nil: none).
    public func setAffine(scale: [Float], shift: [Float]) {
        precondition(scale.count == sampleSize && shift.count == sampleSize)
        affine = (scale, shift)
    }

    public func clearAffine() { affine = nil }

    // MARK: reading

    @inline(__always) private func raw<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
        let v = base.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)
        return bigEndian ? v.byteSwapped : v
    }

    /// Element `i` (flat over rows × sampleSize) as a Double, before `rawScale` and the affine map.
    @inline(__always) public func rawValue(_ i: Int) -> Double {
        switch type {
        case .f4: return Double(Float(bitPattern: raw(i, UInt32.self)))
        case .f8: return Double(bitPattern: raw(i, UInt64.self))
        case .i1: return Double(raw(i, Int8.self))
        case .i2: return Double(raw(i, Int16.self))
        case .i4: return Double(raw(i, Int32.self))
        case .i8: return Double(raw(i, Int64.self))
        case .u1, .bool: return Double(raw(i, UInt8.self))
        case .u2: return Double(raw(i, UInt16.self))
        case .u4: return Double(raw(i, UInt32.self))
        case .u8: return Double(raw(i, UInt64.self))
        }
    }

    /// Element `i` as an integer (integer columns).
    @inline(__always) public func intValue(_ i: Int) -> Int64 {
        switch type {
        case .i1: return Int64(raw(i, Int8.self))
        case .i2: return Int64(raw(i, Int16.self))
        case .i4: return Int64(raw(i, Int32.self))
        case .i8: return raw(i, Int64.self)
        case .u1, .bool: return Int64(raw(i, UInt8.self))
        case .u2: return Int64(raw(i, UInt16.self))
        case .u4: return Int64(raw(i, UInt32.self))
        case .u8: return Int64(truncatingIfNeeded: raw(i, UInt64.self))
        case .f4, .f8: return Int64(rawValue(i))
        }
    }

    /// Copies rows `indices` into `dst` as Float32, applying `rawScale` and the affine map.
    ///
    /// dst[k·S + j] = (raw[indices[k]·S + j] · rawScale) · scale[j] + shift[j]      S = sampleSize
    public func gatherFloats(_ indices: ArraySlice<Int>, into dst: UnsafeMutablePointer<Float>) {
        let s = sampleSize, rs = rawScale
        for (k, row) in indices.enumerated() {
            let out = dst + k * s, first = row * s
            switch type {
            case .f4 where !bigEndian:
                out.update(from: (base + first * 4).assumingMemoryBound(to: Float.self), count: s)
                if rs != 1 { for j in 0..<s { out[j] *= rs } }
            case .u1:
                let p = (base + first).assumingMemoryBound(to: UInt8.self)
                for j in 0..<s { out[j] = Float(p[j]) * rs }
            default:
                for j in 0..<s { out[j] = Float(rawValue(first + j)) * rs }
            }
            if let a = affine {
                a.scale.withUnsafeBufferPointer { sc in
                    a.shift.withUnsafeBufferPointer { sh in
                        for j in 0..<s { out[j] = out[j] * sc[j] + sh[j] }
                    }
                }
            }
        }
    }

    /// Copies rows `indices` into `dst` as Int32 (ids and class indices, checked when loaded).
    public func gatherInts(_ indices: ArraySlice<Int>, into dst: UnsafeMutablePointer<Int32>) {
        let s = sampleSize
        for (k, row) in indices.enumerated() {
            let out = dst + k * s, first = row * s
            if type == .i4 && !bigEndian {
                out.update(from: (base + first * 4).assumingMemoryBound(to: Int32.self), count: s)
            } else {
                for j in 0..<s { out[j] = Int32(truncatingIfNeeded: intValue(first + j)) }
            }
        }
    }

    /// Copies `n` consecutive elements from flat position `start` as Int32 (a token stream's window).
    public func copyInts(from start: Int, count n: Int, into dst: UnsafeMutablePointer<Int32>) {
        switch type {
        case .u2 where !bigEndian:
            for j in 0..<n { dst[j] = Int32(base.loadUnaligned(fromByteOffset: (start + j) * 2, as: UInt16.self)) }
        case .i4 where !bigEndian:
            dst.update(from: (base + start * 4).assumingMemoryBound(to: Int32.self), count: n)
        default:
            for j in 0..<n { dst[j] = Int32(truncatingIfNeeded: intValue(start + j)) }
        }
    }

    /// The first element outside 0..<n, if any (flat index and value), for validating ids and classes.
    public func firstOutside(_ n: Int) -> (index: Int, value: Int64)? {
        let total = rows * sampleSize
        for i in 0..<total {
            let v = intValue(i)
            if v < 0 || v >= Int64(n) { return (i, v) }
        }
        return nil
    }

    /// The first element that is not an integer (for float columns used as classes).
    public func firstNonIntegral() -> (index: Int, value: Double)? {
        guard !type.isInteger else { return nil }
        for i in 0..<(rows * sampleSize) {
            let v = rawValue(i)
            if v.rounded() != v || !v.isFinite { return (i, v) }
        }
        return nil
    }

    /// The first element that is not finite (NaN or infinity), for float data.
    public func firstNonFinite() -> (index: Int, value: Double)? {
        guard !type.isInteger else { return nil }
        for i in 0..<(rows * sampleSize) where !rawValue(i).isFinite { return (i, rawValue(i)) }
        return nil
    }

    /// Largest value + 1 (the class or id count an integer column implies).
    public func maxPlusOne() -> Int {
        var m: Int64 = -1
        for i in 0..<(rows * sampleSize) { m = max(m, intValue(i)) }
        return Int(m + 1)
    }
}
