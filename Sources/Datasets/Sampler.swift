import TensorCore

/// Splits each epoch into global batches and hands each rank its share, like PyTorch's
/// `DistributedSampler` with drop_last: the permutation depends only on (seed, epoch), so
/// every rank, and a resumed run, sees the same order without talking to the others.
///
/// Global batch i of an epoch covers permutation[i·G ..< (i+1)·G] with G = world · batch ·
/// accumulation; micro-batch k of rank r is the (k·world + r)-th slice of `batch` indices in it.
/// Every rank steps the same number of times, and the union over ranks and micro-batches is the
/// single-node batch of size G.
public struct DistributedSampler: Sendable {
    public let count: Int
    public let batchSize: Int
    public let world: Int
    public let rank: Int
    public let seed: UInt64
    public let accumulation: Int

    public init(count: Int, batchSize: Int, world: Int = 1, rank: Int = 0, seed: UInt64, accumulation: Int = 1) {
        self.count = count
        self.batchSize = batchSize
        self.world = world
        self.rank = rank
        self.seed = seed
        self.accumulation = accumulation
    }

    public var globalBatch: Int { batchSize * world * accumulation }
    public var stepsPerEpoch: Int { count / globalBatch }

    public func permutation(epoch: Int) -> [Int] {
        var rng = RNG(seed: seed, stream: "shuffle", UInt64(epoch))
        return rng.permutation(count)
    }

    /// This rank's indices for step `step` of an epoch (its micro-batches one after another).
    public func indices(_ perm: [Int], step: Int) -> ArraySlice<Int> {
        if accumulation == 1 {
            let start = step * globalBatch + rank * batchSize
            return perm[start..<(start + batchSize)]
        }
        var out: [Int] = []
        out.reserveCapacity(batchSize * accumulation)
        for k in 0..<accumulation {
            let start = step * globalBatch + (k * world + rank) * batchSize
            out += perm[start..<(start + batchSize)]
        }
        return out[...]
    }
}
