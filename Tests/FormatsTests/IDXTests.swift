import Formats
import TestSupport
import Testing

@Test func idxParsesRawAndGzip() throws {
    let dir = Fixtures.tempDirectory("idx")
    let img = Fixtures.idx(dims: [2, 2, 3], bytes: Array(0..<12))
    try FileIO.writeAtomically("\(dir)/a", bytes: img)
    let a = try IDX.read("\(dir)/a")
    #expect(a.dims == [2, 2, 3] && a.bytes == Array(0..<12))
    // gzip through the system tool, read back transparently.
    #expect(Fixtures.run(["gzip", "-k", "\(dir)/a"]).status == 0)
    let b = try IDX.read("\(dir)/a.gz")
    #expect(b.dims == [2, 2, 3] && b.bytes == Array(0..<12))
}

func idxError(_ bytes: [UInt8]) -> String {
    do { _ = try IDX.parse(bytes, source: "x.idx"); return "no error" } catch { return "\(error)" }
}

@Test func idxRejectsBrokenFiles() throws {
    let good = Fixtures.idx(dims: [2, 3], bytes: Array(0..<6))
    #expect(idxError([0, 0]).contains("only 2 bytes"))
    #expect(idxError([0x1f, 0x8b] + good.dropFirst(2)).contains("magic starts with 1f 8b"))
    #expect(idxError([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("not unsigned byte"))
    #expect(idxError(Array(good.dropLast())).contains("x.idx: not a valid IDX file: truncated: dimensions [2, 3] need 6 data bytes, file has 5"))
    #expect(idxError(good + [9]).contains("1 unexpected bytes"))
    #expect(idxError([0, 0, 8, 3, 0, 0]).contains("truncated in the dimension list"))
}

@Test func idxTruncatedGzipIsAnError() throws {
    let dir = Fixtures.tempDirectory("idxgz")
    try FileIO.writeAtomically("\(dir)/a", bytes: Fixtures.idx(dims: [4096], bytes: (0..<4096).map { UInt8($0 % 251) }))
    #expect(Fixtures.run(["gzip", "\(dir)/a"]).status == 0)
    let gz = try FileIO.read("\(dir)/a.gz")
    try FileIO.writeAtomically("\(dir)/t.gz", bytes: Array(gz.prefix(gz.count / 2)))
    do { _ = try IDX.read("\(dir)/t.gz"); Issue.record("expected an error") } catch {
        #expect("\(error)".contains("\(dir)/t.gz: cannot decompress"), "\(error)")
    }
    do { _ = try IDX.read("\(dir)/missing.gz"); Issue.record("expected an error") } catch {
        #expect("\(error)" == "\(dir)/missing.gz: no such file")
    }
}
