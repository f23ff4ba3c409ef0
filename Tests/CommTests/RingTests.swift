import Comm
import TensorCore
import TestSupport
import Testing

/// Rank r's input: integer-valued floats, so sums are exact.
func rankData(_ rank: Int, _ n: Int) -> [Float] { (0..<n).map { Float(($0 * 7 + rank * 13) % 101) - 50 } }

@Test(arguments: [2, 3, 4, 5, 8])
func allReduceEqualsPlainSum(world: Int) throws {
    let ring = try localRing(world, options: .init(timeout: 10, chunkBytes: 4096))
    for n in [0, 1, world - 1, world, world + 1, 1009, 100_003] {
        let results = concurrently(world) { r -> [Float] in
            var v = rankData(r, n)
            try v.withUnsafeMutableBufferPointer { try ring[r].allReduceSum($0) }
            return v
        }
        let inputs = (0..<world).map { rankData($0, n) }
        let expected = (0..<n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } }
        for (r, res) in results.enumerated() {
            let v = try res.get()
            #expect(v == expected, "world \(world), n \(n), rank \(r)")
        }
    }
}

@Test func allReduceMeanAndManyBucketsInFlight() throws {
    let world = 3
    let ring = try localRing(world, options: .init(timeout: 10, chunkBytes: 1000))
    let buckets = 6, n = 5_000
    let results = concurrently(world) { r -> [[Float]] in
        var bufs = (0..<buckets).map { b in rankData(r + b, n) }
        var ptrs: [UnsafeMutableBufferPointer<Float>] = []
        for b in 0..<buckets {
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            _ = p.initialize(from: bufs[b])
            ptrs.append(p)
        }
        // Several rounds of buckets submitted back to back before any wait.
        for _ in 0..<3 {
            let handles = ptrs.enumerated().map { ring[r].allReduceAsync($0.element, mean: true, bucket: $0.offset) }
            for h in handles { try h.wait() }
        }
        for b in 0..<buckets { bufs[b] = Array(ptrs[b]); ptrs[b].deallocate() }
        return bufs
    }
    for b in 0..<buckets {
        // mean of means is the mean: three rounds leave it unchanged after the first.
        let inputs = (0..<world).map { rankData($0 + b, n) }
        let expected = (0..<n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } / Float(world) }
        for res in results {
            let got = try res.get()[b]
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        }
    }
}

@Test(arguments: [1, 2, 3, 5])
func broadcastBarrierAllGather(world: Int) throws {
    let ring = world == 1 ? [] : try localRing(world, options: .init(timeout: 10, chunkBytes: 4096))
    let comms: [Communicator] = world == 1 ? [LocalCommunicator()] : ring
    for root in 0..<world {
        let results = concurrently(world) { r -> ([Float], [[UInt8]]) in
            var v = r == root ? rankData(99, 30_001) : [Float](repeating: -1, count: 30_001)
            try v.withUnsafeMutableBufferPointer { try comms[r].broadcast($0, root: root) }
            try comms[r].barrier()
            let g = try comms[r].allGather(Array(repeating: UInt8(r), count: r * 3))
            return (v, g)
        }
        for res in results {
            let (v, g) = try res.get()
            #expect(v == rankData(99, 30_001))
            #expect(g == (0..<world).map { Array(repeating: UInt8($0), count: $0 * 3) })
        }
    }
}

@Test func backToBackCollectives() throws {
    let world = 4
    let ring = try localRing(world, options: .init(timeout: 10, chunkBytes: 256))
    let results = concurrently(world) { r -> Float in
        var total: Float = 0
        for k in 0..<200 {
            var v: [Float] = [Float(r + k), 1]
            try v.withUnsafeMutableBufferPointer { try ring[r].allReduceSum($0) }
            total += v[0] - v[1] * Float(k)
        }
        return total
    }
    for res in results { #expect(try res.get() == 200 * 6) }   // Σ_r r = 6 each round
}
