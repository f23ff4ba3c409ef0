import Config
import Datasets
import Formats
import Glibc
import TestSupport
import Testing

func npyFile(_ name: String, _ bytes: [UInt8]) throws -> String {
    let path = Fixtures.tempDirectory("npy") + "/" + name
    try FileIO.writeAtomically(path, bytes: bytes)
    return path
}

/// A version-`major` file with a hand-written header (any dtype string, order, shape).
func npyImage(descr: String, fortran: Bool = false, shape: String, major: UInt8 = 1, body: [UInt8]) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let pre = major == 1 ? 10 : 12
    while (pre + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let n = header.utf8.count
    let len: [UInt8] = major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), 0, 0]
    return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0] + len + Array(header.utf8) + body
}

@Test func npyReadsEveryDtypeEndiannessAndVersion() throws {
    // The same values 0…5 as [3, 2] in each supported type.
    let values: [Double] = [0, 1, 2, 3, 4, 5]
    func le<T: FixedWidthInteger>(_: T.Type) -> [UInt8] { values.flatMap { withUnsafeBytes(of: T(Int($0)).littleEndian) { Array($0) } } }
    func be<T: FixedWidthInteger>(_: T.Type) -> [UInt8] { values.flatMap { withUnsafeBytes(of: T(Int($0)).bigEndian) { Array($0) } } }
    let cases: [(String, [UInt8])] = [
        ("<f4", values.flatMap { withUnsafeBytes(of: Float($0)) { Array($0) } }),
        (">f4", values.flatMap { withUnsafeBytes(of: Float($0).bitPattern.bigEndian) { Array($0) } }),
        ("<f8", values.flatMap { withUnsafeBytes(of: $0) { Array($0) } }),
        (">f8", values.flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian) { Array($0) } }),
        ("|i1", le(Int8.self)), ("<i2", le(Int16.self)), (">i2", be(Int16.self)), ("<i4", le(Int32.self)),
        (">i8", be(Int64.self)), ("<i8", le(Int64.self)), ("|u1", le(UInt8.self)), ("<u2", le(UInt16.self)),
        ("<u4", le(UInt32.self)), (">u8", be(UInt64.self)), ("|b1", [0, 1, 1, 0, 1, 1]),
    ]
    for major: UInt8 in [1, 2, 3] {
        for (descr, body) in cases {
            let x = try npyFile("x.npy", npyImage(descr: descr, shape: "(3, 2)", major: major, body: body))
            let y = try npyFile("y.npy", NPY.image(type: .i8, shape: [3], data: [Int64](arrayLiteral: 2, 0, 1).withUnsafeBytes { Array($0) }))
            let d = try load(["train": ["inputs": .string(x), "targets": .string(y)], "normalize": "none"])
            let r = rows(d.train)
            let want: [[Float]] = descr == "|b1" ? [[0, 1], [1, 0], [1, 1]] : [[0, 1], [2, 3], [4, 5]]
            #expect(r.x == want, "\(descr) v\(major)")
            #expect(r.labels == [2, 0, 1] && d.train.target?.count == 3, "\(descr) v\(major)")
        }
    }
}

@Test func npyIdsAndValueTargets() throws {
    let x = try npyFile("ids.npy", NPY.image(type: .i4, shape: [2, 3], data: [Int32](arrayLiteral: 4, 0, 2, 1, 1, 3).withUnsafeBytes { Array($0) }))
    let y = try npyFile("y.npy", NPY.image(floats: [0.5, -1], shape: [2]))
    let d = try load(["train": ["inputs": .string(x), "targets": .string(y)]], target: .values, input: .ids)
    #expect(d.train.input == FieldSpec(.ids, shape: [3], count: 5))
    #expect(d.train.target == FieldSpec(.values, shape: [1]))
    let b = Batch()
    d.train.gather([1, 0], into: b)
    #expect(b.ids.array == [1, 1, 3, 4, 0, 2] && b.ids.shape == [2, 3] && b.y.array == [-1, 0.5])
}

@Test func brokenNPYFilesAreClearErrors() throws {
    let y = try npyFile("y.npy", NPY.image(floats: [0, 1], shape: [2]))
    func err(_ bytes: [UInt8], target: TargetEncoding = .values) throws -> String {
        let x = try npyFile("x.npy", bytes)
        return loadError(["train": ["inputs": .string(x), "targets": .string(y)]], target: target).replacingPath(x)
    }
    let body = [Float](repeating: 1, count: 4).withUnsafeBytes { Array($0) }
    #expect(try err([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x58] + [UInt8](repeating: 0, count: 60))
        .hasPrefix("X: not a valid .npy file: bad magic"))
    #expect(try err(npyImage(descr: "<c8", shape: "(2, 2)", body: body + body)) == "X: unsupported dtype '<c8' (supported: f4, f8, i1–i8, u1–u8, bool)")
    #expect(try err(npyImage(descr: "<U3", shape: "(2,)", body: body)).hasPrefix("X: unsupported dtype '<U3'"))
    #expect(try err(npyImage(descr: "<f4", fortran: true, shape: "(2, 2)", body: body))
        == "X: array is in Fortran order; save it in C order (numpy.ascontiguousarray) first")
    #expect(try err(npyImage(descr: "<f4", shape: "(2, 3)", body: body))
        == "X: truncated: shape [2, 3] of f4 needs 24 data bytes, the file has 16")
    #expect(try err(npyImage(descr: "<f4", shape: "(2, 2)", major: 4, body: body)).contains("format version 4.0"))
    #expect(try err(npyImage(descr: "<f4", shape: "(3, 2)", body: body + body)).contains("holds 2 rows, X holds 3"))
    let fy = try npyFile("fy.npy", NPY.image(floats: [0.5, 1], shape: [2]))
    let x = try npyFile("x.npy", NPY.image(floats: [1, 2, 3, 4], shape: [2, 2]))
    #expect(loadError(["train": ["inputs": .string(x), "targets": .string(fy)]], target: .classes)
        == "\(fy): class targets must be integers; element 0 is 0.5")
    #expect(loadError(["train": .string(x)], target: .classes).contains("the train split needs a targets file"))
    let empty = try npyFile("e.npy", [])
    #expect(loadError(["train": ["inputs": .string(empty), "targets": .string(y)]]) == "\(empty): is empty")
}

/// An array larger than the process may hold in its heap trains: it is mapped, not read.
/// A child process with its data segment limited (RLIMIT_DATA, which counts heap and private
/// writable mappings but not a read-only shared file mapping) trains on a 512 MiB array under a
/// 400 MiB limit, with one BLAS thread. OpenBLAS maps 128 MiB work buffers per calling thread
/// (with two threads here, more than 400 MiB of them), and under a limit that leaves no room for
/// another it retries the mapping forever; the limit is for the data, so the child gets one thread.
@Test(.timeLimit(.minutes(10)))
func npyLargerThanTheProcessMayHoldTrains() throws {
    let dir = Fixtures.tempDirectory("npy-big")
    let rows = 1 << 17, width = 1024   // 2^27 floats = 512 MiB
    let path = "\(dir)/x.npy"
    let header = NPY.image(type: .f4, shape: [rows, width], data: [])
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    try #require(fd >= 0)
    _ = header.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var chunk = [Float](repeating: 0, count: width * 256)
    for block in 0..<(rows / 256) {
        for r in 0..<256 { for j in 0..<4 { chunk[r * width + j] = Float((block * 256 + r) % 2) } }
        _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
    close(fd)
    var labels = [Int8](repeating: 0, count: rows)
    for i in 0..<rows { labels[i] = Int8(i % 2) }
    try FileIO.writeAtomically("\(dir)/y.npy", bytes: NPY.image(type: .i1, shape: [rows], data: labels.withUnsafeBytes { Array($0) }))
    let job = """
        name: big
        model: {input: [\(width)], layers: [{type: linear, out: 2}]}
        data: {train: {inputs: x.npy, targets: y.npy}, normalize: none, test_fraction: 0.01}
        train: {epochs: 1, batch_size: 64, log_every: 0, eval_batch_size: 64, max_steps: 20}
        checkpoint: {dir: ""}
        """
    try FileIO.writeAtomically("\(dir)/job.yaml", bytes: Array(job.utf8))
    // 400 MiB of data segment: less than the array, enough for the model and one BLAS thread.
    let r = Fixtures.run(["sh", "-c", "cd \(dir) && ulimit -d 409600 && OPENBLAS_NUM_THREADS=1 exec \(Fixtures.ringtrain) train job.yaml"])
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("test_acc 1.0000"), "\(r.output)")
    // The limit is real: reading the array into memory instead fails under it.
    let cat = Fixtures.run(["sh", "-c", "ulimit -d 409600 && exec python3 -c \"open('\(path)','rb').read()\""])
    #expect(cat.status != 0, "reading 512 MiB into the heap under a 400 MiB limit should fail")
}

extension String {
    /// The error text with a temporary path replaced by X.
    func replacingPath(_ p: String) -> String {
        var s = self
        while let r = s.range(of: p) { s.replaceSubrange(r, with: "X") }
        return s
    }
}
