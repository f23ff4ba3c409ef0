import Comm
import NN
import TensorCore

/// Averages gradients across ranks while backward is still running.
///
/// The gradient arena is laid out last layer first, so backward fills it from offset 0 upward.
/// Buckets are slices of at least `bucketBytes`, cut at layer boundaries; each is handed to the
/// communicator the moment backward has finished the layers it covers (PyTorch DDP's
/// gradient-as-bucket-view), in the same order on every rank. The last bucket also carries
/// the arena's reserve, where the step's loss travels, so averaging it costs no extra collective.
final class GradientReducer {
    struct Bucket {
        let range: Range<Int>
        /// The bucket is complete once backward has finished this layer (the lowest index in it).
        let readyAfterLayer: Int
    }

    let buckets: [Bucket]
    private let comm: Communicator
    private let grads: Arena
    private var handles: [CommHandle] = []
    private var next = 0
    private var firstSubmit = 0.0

    /// Communication timing summed over steps: wall time with a bucket in flight, and the part
    /// of it the training thread spent waiting after backward (not hidden behind compute).
    private(set) var communicationSeconds = 0.0
    private(set) var exposedSeconds = 0.0
    private(set) var steps = 0

    /// Share of communication time that overlapped backward, and per-step communication time.
    func takeTiming() -> (hidden: Double, perStep: Double)? {
        defer { communicationSeconds = 0; exposedSeconds = 0; steps = 0 }
        guard steps > 0, communicationSeconds > 0 else { return nil }
        return (1 - exposedSeconds / communicationSeconds, communicationSeconds / Double(steps))
    }

    /// Buckets hold whole layers, at most `bucketBytes` unless one layer alone is larger; the
    /// first is capped at `firstBucketBytes` so that communication starts early in backward.
    init(model: Model, comm: Communicator, bucketBytes: Int, firstBucketBytes: Int = 256 << 10) {
        self.comm = comm
        grads = model.grads
        var buckets: [Bucket] = []
        let trainable = model.layerRanges.enumerated().compactMap { i, r in r.map { (layer: i, range: $0) } }.reversed()
        var start = 0, end = 0, lowest = -1
        for (i, r) in trainable {
            let cap = (buckets.isEmpty ? min(firstBucketBytes, bucketBytes) : bucketBytes) / 4
            if lowest >= 0 && r.upperBound - start > cap {
                buckets.append(Bucket(range: start..<end, readyAfterLayer: lowest))
                start = end
            }
            end = r.upperBound
            lowest = i
        }
        buckets.append(Bucket(range: start..<(grads.count + grads.reserve), readyAfterLayer: max(lowest, 0)))
        self.buckets = buckets
    }

    /// Starts a step: `loss` rides in the reserve of the last bucket.
    func begin(loss: Float) {
        handles.removeAll(keepingCapacity: true)
        next = 0
        grads.reserved[0] = loss
    }

    /// Called by backward after layer `i` is done (layers arrive in decreasing order).
    func layerDone(_ i: Int) {
        while next < buckets.count && buckets[next].readyAfterLayer >= i {
            submit(next)
            next += 1
        }
    }

    /// Submits whatever backward did not, waits for every bucket, returns the mean loss.
    func finish() throws -> Float {
        let backwardDone = monotonicSeconds()
        while next < buckets.count { submit(next); next += 1 }
        do { for h in handles { try h.wait() } } catch {
            // The ring failed: later buckets end at once; none may still touch the arena after this.
            for h in handles { try? h.wait() }
            throw error
        }
        let end = handles.last?.completedAt ?? backwardDone
        communicationSeconds += end - firstSubmit
        exposedSeconds += max(0, end - backwardDone)
        steps += 1
        return grads.reserved[0]
    }

    private func submit(_ b: Int) {
        if b == 0 { firstSubmit = monotonicSeconds() }
        let r = buckets[b].range
        handles.append(comm.allReduceAsync(UnsafeMutableBufferPointer(start: grads.data + r.lowerBound, count: r.count),
                                           mean: true, bucket: b))
    }
}
