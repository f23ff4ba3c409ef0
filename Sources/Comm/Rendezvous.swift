import Glibc
import TensorCore

/// The smallest rendezvous a ring needs, for tools that start workers without a coordinator
/// (benchmarks, checks): each rank sends (rank, ring endpoint); once all N have, every rank gets
/// the endpoint list and a run id. Frames are text: `HELLO <rank> <endpoint>` and
/// `PEERS <run id hex> <endpoint>…`. The coordinator (module Cluster) does the full version.
public enum Rendezvous {
    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    /// Serves one rendezvous for `world` ranks on an already-bound ROUTER socket.
    public static func serve(_ router: ZSocket, world: Int, runID: UInt64, timeout: Double) throws {
        var identities = [[UInt8]?](repeating: nil, count: world)
        var endpoints = [String](repeating: "", count: world)
        let deadline = monotonicSeconds() + timeout
        while identities.contains(where: { $0 == nil }) {
            let left = deadline - monotonicSeconds()
            guard left > 0 else {
                let missing = identities.indices.filter { identities[$0] == nil }
                throw Error(description: "rendezvous: ranks \(missing) did not arrive within \(Int(timeout)) s")
            }
            guard try ZPoll.wait([ZPoll.Item(router, read: true)], timeoutMs: Int(min(left, 0.2) * 1000) + 1)[0].readable,
                  let parts = try router.receiveMultipart(dontWait: true) else { continue }
            guard parts.count == 2 else { continue }
            let words = String(decoding: parts[1], as: UTF8.self).split(separator: " ").map(String.init)
            guard words.count == 3, words[0] == "HELLO", let r = Int(words[1]), (0..<world).contains(r), identities[r] == nil else {
                try router.sendMultipart([parts[0], Array("ERROR unexpected or duplicate hello".utf8)])
                continue
            }
            identities[r] = parts[0]
            endpoints[r] = words[2]
        }
        let reply = Array((["PEERS", String(runID, radix: 16)] + endpoints).joined(separator: " ").utf8)
        for id in identities { try router.sendMultipart([id!, reply]) }
    }

    /// Joins a rendezvous: returns every rank's ring endpoint and the run id.
    public static func join(_ endpoint: String, rank: Int, ringEndpoint: String, timeout: Double) throws -> (peers: [String], runID: UInt64) {
        let ctx = ZContext()
        let dealer = try ZSocket(ctx, .dealer)
        try dealer.connect(endpoint)
        try dealer.setTimeouts(send: Int(timeout * 1000), receive: Int(timeout * 1000))
        try dealer.send(Array("HELLO \(rank) \(ringEndpoint)".utf8))
        guard let m = try dealer.receiveMessage() else {
            throw Error(description: "rendezvous at \(endpoint): no answer within \(Int(timeout)) s")
        }
        let words = String(decoding: m.bytes, as: UTF8.self).split(separator: " ").map(String.init)
        guard words.count >= 3, words[0] == "PEERS", let run = UInt64(words[1], radix: 16) else {
            throw Error(description: "rendezvous at \(endpoint): unexpected answer \(words.prefix(6).joined(separator: " "))")
        }
        return (Array(words[2...]), run)
    }
}
