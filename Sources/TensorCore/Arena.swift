/// Where one named tensor lives inside an arena.
public struct ArenaEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The layout shared by a model's parameter, gradient and optimizer-slot arenas.
///
/// Entries are placed in the order given (the model passes them in reverse backward order,
/// so the gradients of the last layers, which backward produces first, sit at the front and
/// an all-reduce bucket is just a slice). Each entry starts on a 16-float (64-byte) boundary;
/// the padding between entries is always zero, so it can be reduced along with the rest.
public struct ArenaLayout: Sendable, Equatable {
    public static let alignment = 16
    public let entries: [ArenaEntry]
    public let count: Int

    public init(_ tensors: [(name: String, shape: [Int])]) {
        var offset = 0
        var entries: [ArenaEntry] = []
        for t in tensors {
            entries.append(ArenaEntry(name: t.name, shape: t.shape, offset: offset))
            let n = t.shape.reduce(1, *)
            offset += (n + Self.alignment - 1) / Self.alignment * Self.alignment
        }
        self.entries = entries
        self.count = offset
    }

    public func entry(named name: String) -> ArenaEntry? { entries.first { $0.name == name } }
}

/// Float memory for an arena: a private heap allocation, or memory that something else owns and
/// keeps alive through `owner` (a communicator's buffer that co-located ranks reduce in place).
public final class FloatStorage {
    public let data: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: AnyObject?

    /// `count` zeroed floats on the heap.
    public init(count: Int) {
        data = .allocate(capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
    }

    public init(external data: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.data = data
        self.count = count
        self.owner = owner
    }

    /// Whether the memory belongs to someone else (e.g. a communicator's shared buffer).
    public var isExternal: Bool { owner != nil }

    deinit { if owner == nil { data.deallocate() } }
}

/// One contiguous, zero-initialised Float buffer laid out by an `ArenaLayout`, optionally
/// followed by `reserve` spare floats that travel with the last all-reduce bucket (the trainer
/// puts per-step metrics there) but belong to no entry.
public final class Arena {
    public let layout: ArenaLayout
    public let data: UnsafeMutablePointer<Float>
    public let reserve: Int
    public let storage: FloatStorage
    public var count: Int { layout.count }

    /// Floats an arena of this layout and reserve needs.
    public static func capacity(_ layout: ArenaLayout, reserve: Int) -> Int { layout.count + reserve }

    /// A zeroed arena in `storage` (by default a fresh heap allocation).
    public init(_ layout: ArenaLayout, reserve: Int = 0, storage: FloatStorage? = nil) {
        self.layout = layout
        self.reserve = reserve
        let n = Self.capacity(layout, reserve: reserve)
        let s = storage ?? FloatStorage(count: n)
        precondition(s.count >= n, "arena storage of \(s.count) floats is smaller than \(n)")
        self.storage = s
        data = s.data
        data.update(repeating: 0, count: n)
    }

    /// The spare floats after the last entry.
    public var reserved: UnsafeMutableBufferPointer<Float> { .init(start: data + count, count: reserve) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }

    /// A tensor view of one entry.
    public func view(_ e: ArenaEntry) -> Tensor { Tensor(viewing: data + e.offset, shape: e.shape) }

    public func zero() { data.update(repeating: 0, count: count) }

    public func copy(from other: Arena) {
        precondition(other.layout == layout, "arena copy between different layouts")
        data.update(from: other.data, count: count)
    }

    /// Order-sensitive 64-bit checksum of the raw bits (FNV-1a over words), used to check
    /// that replicas hold bit-identical parameters.
    public func checksum() -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        let words = UnsafeRawPointer(data).assumingMemoryBound(to: UInt32.self)
        for i in 0..<count { h = (h ^ UInt64(words[i])) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
