import Config
import Formats
import Testing
import TestSupport

@Test func crc32cMatchesTheCastagnoliCheckValue() {
    // The standard check value of CRC-32C (RFC 3720, appendix B.4).
    #expect(TensorBoard.crc32c(Array("123456789".utf8)) == 0xE306_9283)
    #expect(TensorBoard.crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
}

@Test func eventsRoundTripThroughTheRecordFraming() throws {
    let dir = Fixtures.tempDirectory("tb")
    let w = try EventFileWriter(directory: dir, host: "h", wallTime: 1_700_000_000.25)
    try w.add(step: 1, wallTime: 1_700_000_001.5, [.init("train/loss", 2.25), .init("train/lr", 0.1)])
    try w.add(step: 300_000, wallTime: 1_700_000_002, [.init("val/acc", 0.875)])
    w.flush()
    #expect(w.path == "\(dir)/events.out.tfevents.1700000000.h")
    // A second writer in the same second gets its own file.
    let w2 = try EventFileWriter(directory: dir, host: "h", wallTime: 1_700_000_000.75)
    #expect(w2.path != w.path)

    let bytes = try FileIO.read(w.path)
    let events = try TensorBoard.decode(file: bytes, source: w.path)
    #expect(events.count == 3)
    #expect(events[0] == .init(wallTime: 1_700_000_000.25, step: 0, fileVersion: "brain.Event:2", scalars: []))
    #expect(events[1] == .init(wallTime: 1_700_000_001.5, step: 1, fileVersion: nil,
                               scalars: [.init("train/loss", 2.25), .init("train/lr", 0.1)]))
    #expect(events[2].step == 300_000 && events[2].scalars == [.init("val/acc", 0.875)])

    // A flipped bit anywhere is caught by one of the two CRCs; a cut file by the framing.
    for at in [3, 9, 20, bytes.count - 2] {
        var bad = bytes
        bad[at] ^= 0x10
        #expect(throws: TensorBoard.FormatError.self) { try TensorBoard.decode(file: bad, source: "bad") }
    }
    #expect(throws: TensorBoard.FormatError.self) { try TensorBoard.decode(file: Array(bytes.dropLast(3)), source: "cut") }
}

@Test func yamlWrittenFromATreeReadsBackTheSame() throws {
    let tree = ConfigValue.object([
        "name": .string("a run"), "seed": .int(3), "lr": .double(0.1), "big": .double(1e-8), "whole": .double(2),
        "flags": .list([.bool(true), .null, .string("8"), .string("true"), .string(""), .string("a: b"), .string("-x"), .string("#c")]),
        "layers": .list([.string("flatten"), .object(["type": .string("linear"), "out": .int(10)]),
                         .object(["type": .string("repeat"), "layer": .object(["type": .string("relu")])])]),
        "empty": .map([]), "none": .list([]),
        "nested": .object(["path": .string("/usr/share/x y"), "list": .list([.list([.int(1), .int(2)]), .list([])])]),
    ])
    let text = YAML.string(tree)
    #expect(try YAML.parse(text, source: "t") == tree, "\(text)")
    #expect(text.contains("name: a run\n") && text.contains("  - type: linear\n    out: 10\n"), "\(text)")
}
