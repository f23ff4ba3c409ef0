/// A dense, row-major Float32 array.
///
/// Storage is either owned (allocated and freed here) or a view into memory owned by
/// something else (a parameter arena), which must outlive the view. Owned tensors can be
/// resized in place, so layers keep one activation buffer and reuse it every step
/// instead of allocating in the training loop.
public final class Tensor {
    public private(set) var shape: [Int]
    public private(set) var count: Int
    public private(set) var data: UnsafeMutablePointer<Float>
    private var capacity: Int
    private let owned: Bool

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.count = n
        self.capacity = max(n, 1)
        self.owned = true
        self.data = .allocate(capacity: max(n, 1))
        data.initialize(repeating: 0, count: max(n, 1))
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "Tensor(shape:values:): \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A view of `count(shape)` floats at `pointer`; the caller keeps that memory alive.
    public init(viewing pointer: UnsafeMutablePointer<Float>, shape: [Int]) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.capacity = count
        self.owned = false
        self.data = pointer
    }

    /// An empty owned buffer, to be sized by `resize` on first use.
    public static func workspace() -> Tensor { Tensor(shape: [0]) }

    deinit { if owned { data.deallocate() } }

    /// Gives an owned tensor a new shape, reusing its memory when it is large enough.
    /// Contents are unspecified afterwards (zero when newly allocated).
    public func resize(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        precondition(owned || n == count, "resize of a view must keep its element count")
        if owned && n > capacity {
            data.deallocate()
            data = .allocate(capacity: n)
            data.initialize(repeating: 0, count: n)
            capacity = n
        }
        shape = newShape
        count = n
    }

    /// Changes the shape without touching data (element count must match).
    public func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) -> \(newShape) changes the element count")
        shape = newShape
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public func fill(_ v: Float) { data.update(repeating: v, count: count) }
    public func zero() { fill(0) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// An owned deep copy.
    public func clone() -> Tensor {
        let t = Tensor(shape: shape)
        t.copy(from: self)
        return t
    }

    /// Rows of a 2-D (or higher, flattened after the first axis) tensor.
    public var rows: Int { shape.first ?? 1 }
    /// Elements per row.
    public var rowSize: Int { rows == 0 ? 0 : count / rows }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = buffer.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape): [\(head)\(count > 8 ? ", …" : "")])"
    }
}
