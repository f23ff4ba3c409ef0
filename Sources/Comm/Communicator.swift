import TensorCore

/// Collective operations among the `worldSize` ranks of a job. Every rank calls the same
/// collectives in the same order; buffers are raw Float slices (usually of the gradient arena).
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }

    /// In place: every rank ends with the element-wise sum over ranks.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// In place: every rank ends with rank `root`'s values.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    /// Returns once every rank has entered.
    func barrier() throws
    /// Every rank's payload, indexed by rank.
    func allGather(_ payload: [UInt8]) throws -> [[UInt8]]
    /// Starts an all-reduce of `buffer` (one bucket); the buffer must not be touched until the
    /// handle's `wait()` returns. Every rank submits the same buckets in the same order.
    func allReduceAsync(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int) -> CommHandle
    /// `count` zeroed floats for collectives (a collective call itself).
    func allocateBuffer(count: Int) throws -> FloatStorage
}

extension Communicator {
    /// `count` zeroed floats for collectives; every rank calls it in the same order. A
    /// communicator may hand out memory it reduces faster (see `RingCommunicator.allocateBuffer`).
    public func allocateBuffer(count: Int) throws -> FloatStorage { FloatStorage(count: count) }

    /// In place: every rank ends with the element-wise mean over ranks.
    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try allReduceSum(buffer)
        if worldSize > 1 {
            let s = 1 / Float(worldSize)
            for i in 0..<buffer.count { buffer[i] *= s }
        }
    }
}

/// World size 1: the single-node fallback. Every collective is the identity.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func barrier() throws {}
    public func allGather(_ payload: [UInt8]) throws -> [[UInt8]] { [payload] }
    public func allReduceAsync(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int) -> CommHandle {
        CommHandle.completed
    }
}
