import Config
import Formats
import TestSupport
import Testing

func sampleFile() -> [UInt8] {
    var w = SafeTensors.Writer()
    let a: [Float] = [1, 2, 3, 4, 5, 6]
    let b: [Float] = [-0.5]
    a.withUnsafeBufferPointer { w.add("0.weight", shape: [2, 3], floats: $0.baseAddress!) }
    b.withUnsafeBufferPointer { w.add("0.bias", shape: [1], floats: $0.baseAddress!) }
    w.add("n", shape: [], int64s: [7])
    w.metadata = ["format": "x", "json": "{\"a\":1}"]
    return w.bytes()
}

/// Replaces the header of a file image with `header` (keeping its data).
func withHeader(_ header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * UInt64(k)))) }
    return out + h + data
}

@Test func safetensorsRoundTrip() throws {
    let bytes = sampleFile()
    let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    #expect((8 + headerLength) % 8 == 0)   // data section 8-byte aligned
    let f = try SafeTensors.parse(bytes, source: "mem")
    #expect(f.tensors.map(\.name) == ["0.weight", "0.bias", "n"])
    #expect(f.tensor("0.weight")!.floats() == [1, 2, 3, 4, 5, 6])
    #expect(f.tensor("0.weight")!.shape == [2, 3])
    #expect(f.tensor("0.bias")!.floats() == [-0.5])
    #expect(f.tensor("n")!.int64s() == [7])
    #expect(f.metadata == ["format": "x", "json": "{\"a\":1}"])
}

@Test func safetensorsWriteIsAtomicAndReadable() throws {
    let dir = Fixtures.tempDirectory("st")
    var w = SafeTensors.Writer()
    let x: [Float] = [3, 1, 4]
    x.withUnsafeBufferPointer { w.add("x", shape: [3], floats: $0.baseAddress!) }
    try w.write(to: "\(dir)/a.safetensors")
    #expect(FileIO.list(dir) == ["a.safetensors"])   // no temporary left behind
    #expect(try SafeTensors.read(path: "\(dir)/a.safetensors").tensor("x")!.floats() == x)
}

func parseError(_ bytes: [UInt8]) -> String {
    do { _ = try SafeTensors.parse(bytes, source: "bad.safetensors"); return "no error" } catch { return "\(error)" }
}

@Test func safetensorsRejectsBrokenFiles() {
    let good = sampleFile()
    let data = [UInt8](repeating: 0, count: 8)
    let cases: [(String, [UInt8])] = [
        ("shorter than the 8-byte header length", [1, 2, 3]),
        ("runs past the end of the file", Array(good.prefix(good.count / 3))),
        ("exceeds the", [0, 0, 0, 0, 0, 0, 0, 1] + data),
        ("data section has 40 bytes but the tensors cover 36", good + [0, 0, 0, 0]),
        ("run past the 32-byte data section", Array(good.dropLast(4))),
        ("does not start with '{'", withHeader("[1]", data: data)),
        ("header: invalid JSON", withHeader("{\"x\":", data: data)),
        ("overlaps", withHeader(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data)),
        ("run past the 8-byte data section", withHeader(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: data)),
        ("unknown dtype \"F31\"", withHeader(#"{"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}"#, data: data)),
        ("needs 3 × 4 bytes", withHeader(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: data)),
        ("gap in the data section", withHeader(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data)),
        ("begin ≤ end", withHeader(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: data)),
        ("expected non-negative integers", withHeader(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: data)),
        ("__metadata__.k is not a string", withHeader(#"{"__metadata__":{"k":1}}"#, data: [])),
        ("overflows", withHeader(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}}"#, data: data)),
    ]
    for (expected, bytes) in cases {
        let e = parseError(bytes)
        #expect(e.hasPrefix("bad.safetensors: not a valid safetensors file"), "\(e)")
        #expect(e.contains(expected), "expected “\(expected)” in: \(e)")
    }
}

/// Interoperability with Python's `safetensors` package (installed by `scripts/bootstrap --test`).
@Test(.enabled(if: Fixtures.python(with: "safetensors.numpy") != nil, "Python safetensors is not installed"))
func pythonSafetensorsReadsOursAndWritesOurs() throws {
    let py = Fixtures.python(with: "safetensors.numpy")!
    let dir = Fixtures.tempDirectory("py")
    let ours = "\(dir)/ours.safetensors", theirs = "\(dir)/theirs.safetensors"
    try FileIO.writeAtomically(ours, bytes: sampleFile())
    let script = """
        import sys, numpy as np
        from safetensors.numpy import load_file, save_file
        from safetensors import safe_open
        t = load_file(sys.argv[1])
        assert t["0.weight"].dtype == np.float32 and t["0.weight"].shape == (2, 3), t["0.weight"]
        assert t["0.weight"].tolist() == [[1, 2, 3], [4, 5, 6]]
        assert t["0.bias"].tolist() == [-0.5] and int(t["n"]) == 7
        with safe_open(sys.argv[1], "np") as f: assert f.metadata()["json"] == '{"a":1}'
        save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4) / 4, "z": np.zeros((0, 5), np.float32),
                   "b": np.array([1.5, -2], np.float32)}, sys.argv[2], metadata={"k": "v"})
        print("ok")
        """
    let r = Fixtures.run([py, "-c", script, ours, theirs])
    #expect(r.status == 0, "\(r.output)")
    let f = try SafeTensors.read(path: theirs)
    #expect(f.tensor("w")!.shape == [3, 4])
    #expect(f.tensor("w")!.floats() == (0..<12).map { Float($0) / 4 })
    #expect(f.tensor("b")!.floats() == [1.5, -2])
    #expect(f.tensor("z")!.shape == [0, 5])
    #expect(f.metadata == ["k": "v"])
}
