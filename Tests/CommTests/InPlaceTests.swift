import Comm
import TensorCore
import TestSupport
import Testing

/// Every rank's buffer of n floats from `allocateBuffer` (a collective call, so all at once).
func sharedBuffers(_ ring: [RingCommunicator], _ n: Int) throws -> [FloatStorage] {
    try concurrently(ring.count) { r in try ring[r].allocateBuffer(count: n) }.map { try $0.get() }
}

func slice(_ s: FloatStorage, _ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
    UnsafeMutableBufferPointer(start: s.data + range.lowerBound, count: range.count)
}

func plainSum(_ world: Int, _ n: Int, shift: Int = 0) -> [Float] {
    let inputs = (0..<world).map { rankData($0 + shift, n) }
    return (0..<n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } }
}

/// Ranks on one host all-reduce communicator buffers in place: exact plain sums for every
/// length (segments of 0 and 1 element included), whole buffers and slices of them.
@Test(arguments: [2, 3, 4, 5, 8])
func inPlaceAllReduceEqualsPlainSum(world: Int) throws {
    let ring = try localRing(world, options: .init(timeout: 10))
    #expect(ring.allSatisfy { $0.sharesBuffers })
    for n in [0, 1, world - 1, world, world + 1, 1009, 100_003] {
        let bufs = try sharedBuffers(ring, n + 37)
        for range in [0..<n, 37..<(n + 37)] {
            let results = concurrently(world) { r -> [Float] in
                let v = slice(bufs[r], range)
                _ = v.update(from: rankData(r, n))
                try ring[r].allReduceSum(v)
                return Array(v)
            }
            let expected = plainSum(world, n)
            for (r, res) in results.enumerated() {
                #expect(try res.get() == expected, "world \(world), n \(n), slice \(range), rank \(r)")
            }
        }
    }
}

/// Buckets (slices of one buffer) submitted back to back, means, and private buffers mixed in.
@Test func inPlaceBucketsInFlightAndMeans() throws {
    let world = 4, buckets = 5, n = 3_001
    let ring = try localRing(world, options: .init(timeout: 10, chunkBytes: 4096))
    let bufs = try sharedBuffers(ring, buckets * n)
    let results = concurrently(world) { r -> ([[Float]], [Float]) in
        for b in 0..<buckets { _ = slice(bufs[r], (b * n)..<((b + 1) * n)).update(from: rankData(r + b, n)) }
        var ownMemory = rankData(r, 777)
        for round in 0..<3 {
            let handles = (0..<buckets).map { b in
                ring[r].allReduceAsync(slice(bufs[r], (b * n)..<((b + 1) * n)), mean: true, bucket: b)
            }
            if round == 0 { try ownMemory.withUnsafeMutableBufferPointer { try ring[r].allReduceSum($0) } }
            for h in handles { try h.wait() }
        }
        return ((0..<buckets).map { b in Array(slice(bufs[r], (b * n)..<((b + 1) * n))) }, ownMemory)
    }
    for res in results {
        let (got, own) = try res.get()
        #expect(own == plainSum(world, 777))
        for b in 0..<buckets {
            let expected = plainSum(world, n, shift: b).map { $0 / Float(world) }
            #expect(zip(got[b], expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "bucket \(b)")
        }
    }
}

/// Ranks that pass different slices are told so, all naming the same rank.
@Test func mismatchedSlicesAreAnErrorNamingOneRank() throws {
    let ring = try localRing(3, options: .init(timeout: 5))
    let bufs = try sharedBuffers(ring, 100)
    let results = concurrently(3) { r -> [Float] in
        try ring[r].allReduceSum(slice(bufs[r], r == 1 ? 10..<60 : 0..<50))
        return []
    }
    for res in results {
        let e = try #require(commError(res.map { _ in [] }))
        #expect(e.peer == 1, "\(e)")
        #expect([.badFrame, .aborted].contains(e.reason), "\(e)")
    }
    #expect(ring[0].isBroken && ring[2].isBroken)
}

/// A rank that never arrives: the others fail within the timeout, naming it.
@Test func silentRankTimesOutInPlace() throws {
    let ring = try localRing(3, options: .init(timeout: 1))
    let bufs = try sharedBuffers(ring, 1000)
    let start = monotonicSeconds()
    let results = concurrently(2) { r -> [Float] in
        try ring[r].allReduceSum(slice(bufs[r], 0..<1000))
        return []
    }
    let elapsed = monotonicSeconds() - start
    for res in results {
        let e = try #require(commError(res.map { _ in [] }))
        #expect(e.peer == 2 && [.timeout, .aborted].contains(e.reason), "\(e)")
    }
    #expect(elapsed >= 0.9 && elapsed < 5, "took \(elapsed) s")   // the 1 s timeout plus scheduling delay
}
