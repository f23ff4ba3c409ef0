import Testing
import TensorCore

@Test func rngIsDeterministicAndRestorable() {
    var a = RNG(seed: 42)
    var b = RNG(seed: 42)
    for _ in 0..<10 { #expect(a.next() == b.next()) }
    let saved = a.stateWords
    let expected = (0..<5).map { _ in a.next() }
    var c = RNG(stateWords: saved)!
    #expect((0..<5).map { _ in c.next() } == expected)
    #expect(RNG(stateWords: [0, 0, 0, 0]) == nil)
    #expect(RNG(stateWords: [1, 2]) == nil)
}

@Test func rngStreamsDiffer() {
    var a = RNG(seed: 1, stream: "shuffle", 0)
    var b = RNG(seed: 1, stream: "shuffle", 1)
    var c = RNG(seed: 1, stream: "init")
    let x = a.next(), y = b.next(), z = c.next()
    #expect(x != y && y != z && x != z)
}

@Test func rngDistributions() {
    var r = RNG(seed: 9)
    let n = 200_000
    var sum = 0.0, sq = 0.0, umin: Float = 1, umax: Float = 0
    for _ in 0..<n {
        let v = Double(r.normal()); sum += v; sq += v * v
        let u = r.uniform(); umin = min(umin, u); umax = max(umax, u)
    }
    #expect(abs(sum / Double(n)) < 0.01)
    #expect(abs(sq / Double(n) - 1) < 0.02)
    #expect(umin >= 0 && umax < 1)
    var counts = [Int](repeating: 0, count: 7)
    for _ in 0..<70_000 { counts[r.below(7)] += 1 }
    #expect(counts.allSatisfy { abs($0 - 10_000) < 500 })
    let p = r.permutation(100)
    #expect(p.sorted() == Array(0..<100) && p != Array(0..<100))
}
