/// Integer class labels for a batch, in a reusable buffer.
public final class Labels {
    public private(set) var data: UnsafeMutablePointer<Int32>
    public private(set) var count: Int
    private var capacity: Int
    private var owned = true

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        count = 0
        data = .allocate(capacity: self.capacity)
    }

    /// Turns this into a view of memory owned elsewhere.
    public func rebind(_ pointer: UnsafeMutablePointer<Int32>, count: Int) {
        if owned { data.deallocate(); owned = false }
        data = pointer
        self.count = count
        capacity = count
    }

    public convenience init(_ values: [Int32]) {
        self.init(capacity: values.count)
        resize(values.count)
        for (i, v) in values.enumerated() { data[i] = v }
    }

    deinit { if owned { data.deallocate() } }

    public func resize(_ n: Int) {
        precondition(owned || n <= capacity, "resize of a label view")
        if n > capacity {
            data.deallocate()
            data = .allocate(capacity: n)
            capacity = n
        }
        count = n
    }

    public subscript(i: Int) -> Int32 {
        get { data[i] }
        set { data[i] = newValue }
    }
}

extension Labels {
    /// A view of `count` labels owned by someone else (who keeps them alive).
    public convenience init(viewing pointer: UnsafeMutablePointer<Int32>, count: Int) {
        self.init(capacity: 0)
        rebind(pointer, count: count)
    }
}
