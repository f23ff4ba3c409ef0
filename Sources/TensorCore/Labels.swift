/// Integer class labels for a batch, in a reusable buffer.
public final class Labels {
    public private(set) var data: UnsafeMutablePointer<Int32>
    public private(set) var count: Int
    private var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        count = 0
        data = .allocate(capacity: self.capacity)
    }

    public convenience init(_ values: [Int32]) {
        self.init(capacity: values.count)
        resize(values.count)
        for (i, v) in values.enumerated() { data[i] = v }
    }

    deinit { data.deallocate() }

    public func resize(_ n: Int) {
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
