import Testing
import TensorCore

@Test func arenaLayoutAlignsEntriesAndKeepsOrder() {
    let layout = ArenaLayout([("b", [3]), ("a", [4, 5]), ("c", [16])])
    #expect(layout.entries.map(\.name) == ["b", "a", "c"])
    #expect(layout.entries.map(\.offset) == [0, 16, 48])   // 3 → 16, 20 → 32
    #expect(layout.count == 64)
    let arena = Arena(layout)
    #expect(arena.buffer.allSatisfy { $0 == 0 })
    let v = arena.view(layout.entry(named: "a")!)
    v.fill(2)
    #expect(arena.data[16] == 2 && arena.data[35] == 2 && arena.data[36] == 0 && arena.data[15] == 0)
}

@Test func arenaChecksumSeesEveryBit() {
    let a = Arena(ArenaLayout([("w", [100])]))
    let b = Arena(ArenaLayout([("w", [100])]))
    #expect(a.checksum() == b.checksum())
    b.data[57] = Float(bitPattern: 1)   // smallest subnormal
    #expect(a.checksum() != b.checksum())
    a.copy(from: b)
    #expect(a.checksum() == b.checksum())
}

@Test func tensorResizeReusesCapacity() {
    let t = Tensor.workspace()
    t.resize([4, 8])
    let p = t.data
    t.resize([2, 8])
    #expect(t.data == p && t.count == 16 && t.shape == [2, 8])
    t.resize([10, 8])
    #expect(t.count == 80)
}
