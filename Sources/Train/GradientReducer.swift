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

    init(model: Model, comm: Communicator, bucketBytes: Int) {
        self.comm = comm
        grads = model.grads
        var buckets: [Bucket] = []
        var start = 0
        let limit = max(bucketBytes / 4, 1)
        let trainable = model.layerRanges.enumerated().compactMap { i, r in r.map { (i, $0) } }
        for (k, (i, r)) in trainable.reversed().enumerated() {
            let last = k == trainable.count - 1
            if last || r.upperBound - start >= limit {
                let end = last ? grads.count + grads.reserve : r.upperBound
                buckets.append(Bucket(range: start..<end, readyAfterLayer: i))
                start = end
            }
        }
        if buckets.isEmpty { buckets.append(Bucket(range: 0..<(grads.count + grads.reserve), readyAfterLayer: 0)) }
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
        while next < buckets.count { submit(next); next += 1 }
        for h in handles { try h.wait() }
        return grads.reserved[0]
    }

    private func submit(_ b: Int) {
        let r = buckets[b].range
        handles.append(comm.allReduceAsync(UnsafeMutableBufferPointer(start: grads.data + r.lowerBound, count: r.count),
                                           mean: true, bucket: b))
    }
}
