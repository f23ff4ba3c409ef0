import CZMQ
import Dispatch
import Glibc
import Synchronization
import TensorCore

/// A CURVE key pair (Z85 text, 40 characters each), as libzmq uses for encryption and
/// authentication.
public struct CurveKeyPair: Equatable, Sendable {
    public let publicKey: String
    public let secretKey: String

    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    /// A fresh random pair.
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return try CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// Checks both keys are valid Z85 and that the public key belongs to the secret one.
    public init(publicKey: String, secretKey: String) throws {
        guard Self.isKey(publicKey) else { throw Invalid(description: "public key is not 40 Z85 characters") }
        guard Self.isKey(secretKey) else { throw Invalid(description: "secret key is not 40 Z85 characters") }
        var derived = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&derived, secretKey) == 0, String(cString: derived) == publicKey else {
            throw Invalid(description: "public key does not belong to the secret key")
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Whether `s` is a Z85-encoded 32-byte key.
    public static func isKey(_ s: String) -> Bool {
        guard s.utf8.count == 40 else { return false }
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, s) != nil
    }

    /// Z85 text of a 32-byte binary key.
    static func z85(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        return zmq_z85_encode(&out, bytes, 32) != nil ? String(cString: out) : nil
    }

    /// Makes `socket` a CURVE server with this pair (clients are vetted by a `ZapAuthenticator`).
    public func makeServer(_ socket: ZSocket) throws {
        try socket.set(ZMQ_CURVE_SERVER, 1)
        try socket.set(ZMQ_CURVE_SECRETKEY, string: secretKey)
        try socket.set(ZMQ_ZAP_DOMAIN, string: "ringtrain")
    }

    /// Makes `socket` a CURVE client of the server whose public key is `server`.
    public func makeClient(_ socket: ZSocket, server: String) throws {
        try socket.set(ZMQ_CURVE_SERVERKEY, string: server)
        try socket.set(ZMQ_CURVE_PUBLICKEY, string: publicKey)
        try socket.set(ZMQ_CURVE_SECRETKEY, string: secretKey)
    }
}

/// The ZAP handler of one context: every CURVE handshake on a server socket of that context
/// asks it whether the client's public key is allowed. Accepted clients get their key as the
/// connection's User-Id, so a receiver can tell who sent a message.
///
/// Created without keys, it holds its answers (up to `holdSeconds`) until `allow` names them:
/// a ring peer may connect before this rank has learnt the ring's keys, and libzmq (4.3.4) does
/// not retry a client it was told to refuse — the ring would hang.
public final class ZapAuthenticator: @unchecked Sendable {
    private let rep: ZSocket
    private let allowed: Mutex<Set<String>?>
    static let holdSeconds = 20.0
    /// Called for every refused client: (address, key).
    public var onRefused: (@Sendable (String, String) -> Void)?

    /// `keys`: the clients allowed from the start; nil: none yet, answers wait for `allow`.
    public init(context: ZContext, allowed keys: [String]? = nil) throws {
        allowed = Mutex(keys.map(Set.init))
        rep = try ZSocket(context, .rep)
        try rep.bind("inproc://zeromq.zap.01")
        // The thread holds the handler only while answering, so it ends once its owner lets go.
        Threads.detach { [weak self] in
            while let me = self { me.serveOne() }
        }
    }

    /// Replaces the set of allowed client keys (Z85).
    public func allow(_ keys: [String]) { allowed.withLock { $0 = Set(keys) } }

    /// Answers one request, if one arrives within 200 ms.
    private func serveOne() {
        guard (try? ZPoll.wait([ZPoll.Item(rep, read: true)], timeoutMs: 200))?[0].readable == true,
              let req = try? rep.receiveMultipart(dontWait: true), req.count >= 6 else { return }
        // [version, request id, domain, address, routing id, mechanism, credentials…]
        let address = String(decoding: req[3], as: UTF8.self)
        let mechanism = String(decoding: req[5], as: UTF8.self)
        var ok = false, user = ""
        if mechanism == "CURVE", req.count >= 7, let key = CurveKeyPair.z85(req[6]) {
            user = key
            let until = monotonicSeconds() + Self.holdSeconds
            while allowed.withLock({ $0 == nil }) && monotonicSeconds() < until { usleep(10_000) }
            ok = allowed.withLock { $0?.contains(key) ?? false }
            if !ok { onRefused?(address, key) }
        }
        _ = try? rep.sendMultipart([Array("1.0".utf8), req[1], Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "key not authorized").utf8), Array(user.utf8), []])
    }
}

extension ZMessage {
    /// A metadata property of a received message, e.g. "User-Id" (set by ZAP) or "Peer-Address".
    public func property(_ name: String) -> String? {
        guard let p = zmq_msg_gets(&msg, name) else { return nil }
        return String(cString: p)
    }
}
