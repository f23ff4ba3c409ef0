import Dispatch
import Glibc
import TensorCore

/// Prepares the batches of one epoch on a background thread, one step ahead of training,
/// into two buffers used in turn (the copy of the next batch overlaps the current step).
///
///     let loader = BatchLoader(dataset, sampler: s, epoch: e, from: step)
///     while let batch = loader.next() { … }   // valid until the following next()
public final class BatchLoader {
    private let dataset: DataSource
    private let sampler: DistributedSampler
    private let perm: [Int]
    private let end: Int
    private var consumed: Int
    private let buffers = [Batch(), Batch()]
    private let augmentation: Augmentation
    private let epoch: Int
    private let filled = DispatchSemaphore(value: 0)
    // Created at 0 and signalled up: libdispatch traps when a semaphore is destroyed with a
    // value below the one it was created with.
    private let free = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var cancelled = false   // read by the producer after each `free.wait()`
    private var handedOut = false

    public init(_ dataset: DataSource, sampler: DistributedSampler, epoch: Int, from step: Int,
                augmentation: Augmentation = Augmentation()) {
        self.dataset = dataset
        self.sampler = sampler
        self.augmentation = augmentation
        self.epoch = epoch
        perm = sampler.permutation(epoch: epoch)
        end = sampler.stepsPerEpoch
        consumed = step
        let start = step
        free.signal(); free.signal()
        Threads.detach { [self] in produce(from: start) }
    }

    private func produce(from start: Int) {
        for step in start..<end {
            free.wait()
            if cancelled { break }
            let batch = buffers[step % 2]
            dataset.gather(sampler.indices(perm, step: step), into: batch)
            if !augmentation.isIdentity {
                var rng = RNG(seed: sampler.seed ^ UInt64(sampler.rank) &* 0x9E37_79B9, stream: "augment",
                              UInt64(epoch) &* 1_000_003 &+ UInt64(step))
                augmentation.apply(batch.x, labels: batch.labels, classes: dataset.target?.count ?? 0, soft: batch.soft, rng: &rng)
                batch.hasSoft = augmentation.mixes
            }
            filled.signal()
        }
        done.signal()
    }

    /// The next batch, or nil at the end of the epoch. With MixUp/CutMix, its soft targets
    /// hold the mixed labels [B, classes].
    public func next() -> Batch? {
        if handedOut { free.signal() }   // the previous batch's buffer may be refilled
        guard consumed < end else { handedOut = false; return nil }
        filled.wait()
        handedOut = true
        defer { consumed += 1 }
        return buffers[consumed % 2]
    }

    /// Stops the producer and waits for it (call before dropping a loader mid-epoch).
    public func cancel() {
        cancelled = true
        free.signal(); free.signal()
        done.wait()
    }
}
