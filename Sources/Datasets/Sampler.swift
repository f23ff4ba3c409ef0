import TensorCore

/// Splits each epoch into global batches and hands each rank its share, like PyTorch's
/// `DistributedSampler` with drop_last: the permutation depends only on (seed, epoch), so
/// every rank, and a resumed run, sees the same order without talking to the others.
///
/// Global batch i of an epoch covers permutation[i·G ..< (i+1)·G] with G = world · batch;
/// rank r takes the r-th slice of `batch` indices. Every rank steps the same number of times.
public struct DistributedSampler: Sendable {
    public let count: Int
    public let batchSize: Int
    public let world: Int
    public let rank: Int
    public let seed: UInt64

    public init(count: Int, batchSize: Int, world: Int = 1, rank: Int = 0, seed: UInt64) {
        self.count = count
        self.batchSize = batchSize
        self.world = world
        self.rank = rank
        self.seed = seed
    }

    public var globalBatch: Int { batchSize * world }
    public var stepsPerEpoch: Int { count / globalBatch }

    public func permutation(epoch: Int) -> [Int] {
        var rng = RNG(seed: seed, stream: "shuffle", UInt64(epoch))
        return rng.permutation(count)
    }

    /// This rank's indices for step `step` of an epoch, given that epoch's permutation.
    public func indices(_ perm: [Int], step: Int) -> ArraySlice<Int> {
        let start = step * globalBatch + rank * batchSize
        return perm[start..<(start + batchSize)]
    }
}
