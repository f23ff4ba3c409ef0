import Cluster
import Formats
import TestSupport
import Testing

/// Bad command-line input: a clear message and a non-zero exit, before any work starts.
@Test func badFlagsAreRejectedWithAMessage() {
    let rt = Fixtures.ringtrain
    let cases: [([String], String)] = [
        (["train", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--batch-size=-3"], "--batch-size must be at least 1"),
        (["train", "--resume", "a", "--init-from", "b"], "use either --resume or --init-from"),
        (["train", "/nonexistent/job.yaml"], "/nonexistent/job.yaml: cannot open"),
        (["launch", "--workers", "0"], "--workers must be at least 1"),
        (["launch", "--max-restarts=-1"], "--max-restarts must be 0 or more"),
        (["launch", "--workers", "3", "--min-workers", "4"], "--min-workers must be between 1 and --workers (3), got 4"),
        (["coordinator", "--workers", "2", "--min-workers", "0"], "--min-workers must be between 1 and --workers (2), got 0"),
        (["worker", "--curve-key", "k.key"], "--curve-key and --coordinator-key go together"),
        (["coordinator", "--workers", "2", "--curve-key", "k.key"], "--curve-key needs --authorized-keys"),
        (["bench", "allreduce", "--workers", "1"], "--workers must be at least 2"),
        (["bench", "allreduce", "--size", "12XB"], "12XB"),
        (["bench", "allreduce", "--buffers", "pinned"], "--buffers must be shared or private"),
        (["bench", "allreduce", "--compression", "fp8"], "--compression must be none or bf16"),
        (["bench", "allreduce", "--ranks-per-host=-2"], "--ranks-per-host must be 0 or more"),
        (["summary", "--model", "resnet9000"], "unknown model resnet9000"),
        (["train", "--data", "/nonexistent/fmnist"], "/nonexistent/fmnist: fashion-mnist not found: no such directory"),
    ]
    for (args, expected) in cases {
        let r = Fixtures.run([rt] + args)
        #expect(r.status != 0, "\(args) succeeded")
        #expect(r.output.contains(expected), "\(args): \(r.output)")
    }
}

@Test func brokenKeyFilesAreClearErrors() throws {
    let dir = Fixtures.tempDirectory("keys")
    let good = try KeyFiles.generate("\(dir)/a")
    #expect(try KeyFiles.loadPair("\(dir)/a.key") == good)
    #expect(try KeyFiles.loadPublic("\(dir)/a.pub") == good.publicKey)
    #expect(throws: FileError.self) { try KeyFiles.generate("\(dir)/a") }     // never overwritten
    func err(_ text: String, pair: Bool = true) -> String {
        do {
            try FileIO.writeAtomically("\(dir)/bad.key", bytes: Array(text.utf8))
            if pair { _ = try KeyFiles.loadPair("\(dir)/bad.key") } else { _ = try KeyFiles.loadPublic("\(dir)/bad.key") }
            return "no error"
        } catch { return "\(error)" }
    }
    #expect(err("public-key = \"abc\"\n").contains("expected public-key and secret-key"))
    #expect(err("nonsense\n").contains("line 1: expected name = \"value\""))
    #expect(err("public-key = \"short\"\n", pair: false).contains("not 40 Z85 characters"))
    let other = try CurveKeyPairForTest()
    #expect(err("public-key = \"\(good.publicKey)\"\nsecret-key = \"\(other)\"\n").contains("does not belong to the secret key"))
    #expect(throws: FileError.self) { try KeyFiles.loadAuthorized([dir + "/empty-dir-that-does-not-exist"]) }
}

/// A secret key that is not `a`'s.
func CurveKeyPairForTest() throws -> String { try KeyFiles.generate(Fixtures.tempDirectory("k2") + "/b").secretKey }
