@testable import Comm
import Glibc
import TensorCore
import TestSupport
import Testing

/// A CURVE ring whose ranks learn each other's keys at different times: rank 1 connects to
/// rank 0 while rank 0 does not know its key yet. Rank 0's answer to that handshake waits for
/// the keys (libzmq may never retry a refused client), so the ring forms and sums correctly.
@Test(.timeLimit(.minutes(10)))
func curveRingFormsWhenKeysArriveLate() throws {
    let keys = try (0..<3).map { _ in try CurveKeyPair.generate() }
    let listeners = try keys.map { try RingListener(bind: "tcp://127.0.0.1:*", curve: $0) }
    let peers = listeners.map(\.endpoint)
    let results = concurrently(3) { r -> [Float] in
        if r == 0 { usleep(500_000) }   // the others connect (to rank 0 too) before it authorizes
        let ring = try RingCommunicator(listener: listeners[r], rank: r, peers: peers, runID: 9,
                                        options: .init(timeout: 10, connectTimeout: 10), peerKeys: keys.map(\.publicKey))
        var v: [Float] = [Float(r + 1), 10]
        try v.withUnsafeMutableBufferPointer { try ring.allReduceSum($0) }
        return v
    }
    for res in results { #expect(try res.get() == [6, 30]) }
}

/// A key that is not among the allowed ones is refused once they are known, even if its
/// handshake arrived before them; an allowed key gets through.
@Test(.timeLimit(.minutes(10)))
func curveListenerRefusesUnknownKeysHeldUntilKeysAreKnown() throws {
    let server = try CurveKeyPair.generate(), friend = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
    let listener = try RingListener(bind: "tcp://127.0.0.1:*", curve: server)
    let context = ZContext()
    func client(_ pair: CurveKeyPair) throws -> ZSocket {
        let s = try ZSocket(context, .push)
        try pair.makeClient(s, server: server.publicKey)
        try s.connect(listener.endpoint)
        _ = try s.send(Array("from \(pair.publicKey.prefix(4))".utf8))
        return s
    }
    let sockets = [try client(stranger), try client(friend)]
    usleep(300_000)
    listener.authorize([friend.publicKey])
    var got: [String] = []
    let until = monotonicSeconds() + 3
    while monotonicSeconds() < until {
        guard try ZPoll.wait([ZPoll.Item(listener.pull, read: true)], timeoutMs: 100)[0].readable,
              let m = try listener.pull.receiveMessage(dontWait: true) else { continue }
        got.append(String(decoding: m.bytes, as: UTF8.self))
    }
    #expect(got == ["from \(friend.publicKey.prefix(4))"])
    sockets.forEach { $0.close() }
}
