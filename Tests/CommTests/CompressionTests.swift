@testable import Comm
import TensorCore
import TestSupport
import Testing

@Test func bfloat16RoundsToNearestEvenAndKeepsSpecials() {
    func roundTrip(_ x: Float) -> Float { BFloat16.float(BFloat16.bits(x)) }
    #expect(roundTrip(1) == 1)
    // bf16 steps near 1 are 2⁻⁷ = 0.0078125; halfway cases go to the even neighbour.
    #expect(roundTrip(1.00390625) == 1)                 // 1 + 2⁻⁸: tie → 1.0 (even)
    #expect(roundTrip(1.01171875) == 1.015625)          // 1 + 3·2⁻⁸: tie → 1 + 2·2⁻⁷ (even)
    #expect(roundTrip(1.0040283203125) == 1.0078125)    // just above the tie → up
    #expect(roundTrip(1.0038) == 1)                     // just below → down
    #expect(roundTrip(-3.14159) == -3.140625)
    #expect(roundTrip(.infinity) == .infinity && roundTrip(-.infinity) == -.infinity)
    #expect(roundTrip(.greatestFiniteMagnitude) == .infinity)     // beyond bf16's largest finite
    #expect(roundTrip(.nan).isNaN && roundTrip(-.nan).isNaN)
    #expect(roundTrip(Float(bitPattern: 0x7F80_0001)).isNaN)     // a NaN whose payload sits in the low bits
    #expect(BFloat16.bits(1) == 0x3F80 && BFloat16.bits(-2) == 0xC000)
    // The kernels agree with the scalar definition, including their tails.
    var rng = RNG(seed: 3)
    let x = (0..<1003).map { _ in Float(rng.normal()) * 100 }
    var encoded = [UInt16](repeating: 0, count: x.count)
    encoded.withUnsafeMutableBytes { BFloat16.encode(x, $0.baseAddress!, count: x.count) }
    #expect(encoded == x.map(BFloat16.bits))
    var acc = [Float](repeating: 1, count: x.count)
    encoded.withUnsafeBytes { BFloat16.add($0.baseAddress!, into: &acc, count: x.count) }
    #expect(acc == x.map { 1 + roundTrip($0) })
    var r = x
    BFloat16.round(&r, count: r.count)
    #expect(r == x.map(roundTrip))
}

/// Buckets on the ring with bf16 on the wire: every rank ends with the same bits; small integers
/// (partial sums below 256) are exact, other values within the rounding of N hops.
@Test(arguments: [2, 3, 5], [false, true])
func compressedRingAllReduce(world: Int, sharedMemory: Bool) throws {
    let ring = try localRing(world, options: .init(timeout: 10, chunkBytes: 4096, sharedMemory: sharedMemory,
                                                  sharedBuffers: false, compression: .bf16))
    var rng = RNG(seed: 11)
    let noise = (0..<(world * 100_003)).map { _ in Float(rng.normal()) }
    for n in [0, 1, world - 1, world, world + 1, 1009, 100_003] {
        for integers in [true, false] {
            let input = { (r: Int) -> [Float] in integers ? rankData(r, n) : Array(noise[(r * n)..<(r * n + n)]) }
            let results = concurrently(world) { r -> [Float] in
                var v = input(r)
                try v.withUnsafeMutableBufferPointer { try ring[r].allReduceAsync($0, mean: false, bucket: 0).wait() }
                return v
            }
            let got = try results.map { try $0.get() }
            let inputs = (0..<world).map(input)
            let sum = (0..<n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } }
            let magnitude = (0..<n).map { i in inputs.reduce(Float(0)) { $0 + abs($1[i]) } }
            for other in got.dropFirst() { #expect(other.map(\.bitPattern) == got[0].map(\.bitPattern), "n \(n)") }
            if integers {
                #expect(got[0] == sum, "n \(n)")
            } else {
                let worst = zip(zip(got[0], sum), magnitude).map { abs($0.0 - $0.1) / $1 }.max() ?? 0
                #expect(worst <= Float(world) / 256, "n \(n): worst error \(worst) of the magnitude")
            }
        }
    }
    // Synchronous all-reduces stay exact.
    let exact = concurrently(world) { r -> [Float] in
        var v = [Float(r) + 1 / 1024]
        try v.withUnsafeMutableBufferPointer { try ring[r].allReduceSum($0) }
        return v
    }
    for res in exact { #expect(try res.get() == [Float((0..<world).reduce(0, +)) + Float(world) / 1024]) }
}
