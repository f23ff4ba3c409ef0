import Cluster
import CZMQ
import Comm
import Formats
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// Raw bytes to a TCP port (a port scanner, a stray client).
private func sendRaw(_ endpoint: String, _ bytes: [UInt8]) {
    guard let colon = endpoint.lastIndex(of: ":"), let port = UInt16(endpoint[endpoint.index(after: colon)...]) else { return }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if ok == 0 { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
}

/// Strangers at every port of a running `launch` job — raw TCP bytes, ZeroMQ sockets without
/// credentials and with a wrong password, sending random bytes, forged ring frames and a
/// forged HELLO — never reach the job: it finishes with the result of an undisturbed run, and
/// each refusal is logged once per address, not per attempt.
@Test(.timeLimit(.minutes(10)))
func strangersAreRefusedAtTheDoor() throws {
    let dir = Fixtures.tempDirectory("strangers")
    // Long enough (a few seconds) for several rounds of strangers however fast the machine is.
    let job = try writeJob(dir, epochs: 24)
    let rt = Fixtures.ringtrain
    let clean = Fixtures.run([rt, "launch", "--workers", "2", job, "--checkpoint-dir", "", "--run-dir", "\(dir)/clean"])
    try #require(clean.status == 0, "\(clean.output)")
    let p = try Started([rt, "launch", "--workers", "2", job, "--checkpoint-dir", "", "--run-dir", "\(dir)/attacked"])
    #expect(p.waitFor("training cluster-test", timeout: 60), "\(p.text)")
    func endpoint(after marker: String) -> [String] {
        p.output.compactMap { line -> String? in
            guard let r = line.range(of: marker) else { return nil }
            return String(line[r.upperBound...].prefix { !$0.isWhitespace && $0 != "," })
        }
    }
    let control = try #require(endpoint(after: "workers on ").first)
    let rings = endpoint(after: ", ring ")
    #expect(rings.count == 2, "\(p.text)")
    let targets = [control] + rings

    var rng = RNG(seed: 11)
    func noise(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(rng.below(256)) } }
    let context = ZContext()
    var sockets: [ZSocket] = []
    let forgedHello = ControlMessage.hello(.init(host: "intruder", pid: 1, endpoint: "tcp://127.0.0.1:1", build: BuildInfo.id,
                                                 jobHash: nil, rank: 0, publicKey: nil)).encode()
    let forgedFrame = FrameHeader(step: 1, runID: 1, sequence: 0, bucket: 0, chunk: 0, bytes: 16).encoded
    let end = monotonicSeconds() + 3
    var round = 0
    while monotonicSeconds() < end && !p.text.contains("finished:") {
        for t in targets {
            sendRaw(t, noise(2048))
            // A fresh socket each round: no credentials, then a wrong password.
            for password in [nil, "not-the-secret"] {
                let s = try ZSocket(context, t == control ? .dealer : .push)
                try s.set(ZMQ_LINGER, 0)
                if let pw = password { try s.usePlain(secret: pw) }
                try s.connect(t)
                _ = try? s.send(t == control ? forgedHello : forgedFrame, more: true, dontWait: true)
                _ = try? s.send(noise(64), dontWait: true)
                sockets.append(s)
            }
        }
        round += 1
        usleep(100_000)
    }
    let code = p.wait(timeout: 120)
    sockets.forEach { $0.close() }
    #expect(code == 0, "\(p.text)")
    #expect(round >= 3, "the job ended before the strangers got going")
    // The undisturbed result, bit for bit.
    #expect(finalAccuracy(p.text) == finalAccuracy(clean.output) && finalAccuracy(p.text) != nil, "\(p.text)")
    // Refused once per address and socket, not once per attempt.
    let refusals = p.output.filter { $0.contains("refused") }
    #expect(refusals.filter { $0.contains("[coordinator] refused connections from 127.0.0.1") }.count == 1, "\(refusals)")
    #expect(refusals.filter { $0.contains("refused ring connections from 127.0.0.1") }.count == 2, "\(refusals)")
    #expect(refusals.count == 3, "\(refusals)")
    #expect(!p.text.contains("intruder") && !p.text.contains("invalid frame"), "\(p.text)")
}
