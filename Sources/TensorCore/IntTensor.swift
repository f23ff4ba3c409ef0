/// A dense, row-major Int32 array: class labels `[B]`, token ids `[B, T]`, node ids.
///
/// Integer inputs and targets travel as these, never through Float (a token id above 2²⁴
/// would not survive the round trip). Like `Tensor`, storage is owned and resized in place,
/// or a view of memory someone else keeps alive.
public final class IntTensor {
    public private(set) var shape: [Int]
    public private(set) var count: Int
    public private(set) var data: UnsafeMutablePointer<Int32>
    private var capacity: Int
    private var owned = true

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        let n = shape.reduce(1, *)
        self.shape = shape
        count = n
        capacity = max(n, 1)
        data = .allocate(capacity: capacity)
        data.initialize(repeating: 0, count: capacity)
    }

    /// An empty owned buffer, sized by `resize` on first use.
    public convenience init() { self.init(shape: [0]) }

    /// A 1-D tensor of `values` (or shaped `shape`).
    public convenience init(_ values: [Int32], shape: [Int]? = nil) {
        self.init(shape: shape ?? [values.count])
        precondition(values.count == count, "IntTensor: \(values.count) values for shape \(self.shape)")
        for (i, v) in values.enumerated() { data[i] = v }
    }

    /// A view of `count(shape)` integers at `pointer`; the caller keeps that memory alive.
    public init(viewing pointer: UnsafeMutablePointer<Int32>, shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        capacity = count
        owned = false
        data = pointer
    }

    deinit { if owned { data.deallocate() } }

    /// Gives an owned tensor a new shape, reusing its memory when large enough (contents unspecified).
    public func resize(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        precondition(owned || n <= capacity, "resize of an IntTensor view beyond its memory")
        if n > capacity {
            data.deallocate()
            data = .allocate(capacity: n)
            data.initialize(repeating: 0, count: n)
            capacity = n
        }
        shape = newShape
        count = n
    }

    /// Points this tensor at memory owned elsewhere (a row range of a bigger batch).
    public func rebind(_ pointer: UnsafeMutablePointer<Int32>, shape: [Int]) {
        if owned { data.deallocate(); owned = false }
        data = pointer
        self.shape = shape
        count = shape.reduce(1, *)
        capacity = count
    }

    public var rows: Int { shape.first ?? 1 }
    public var rowSize: Int { rows == 0 ? 0 : count / rows }
    public var array: [Int32] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public subscript(i: Int) -> Int32 {
        get { data[i] }
        set { data[i] = newValue }
    }
}
