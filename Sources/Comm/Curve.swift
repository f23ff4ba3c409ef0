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

/// The ZAP handler of one ZeroMQ context: it decides which connections the context's servers
/// accept. CURVE: the client's public key must be in the allowed set. PLAIN (a ring or control
/// socket without CURVE): the password must be this run's secret, which the coordinator hands
/// the ring's members in WELCOME (and `launch` gives its own children privately). Until the
/// keys or the secret are known, answers wait (a fast peer is held, not turned away: libzmq
/// does not retry a refused connection). Every refusal is reported once per peer address.
public final class ZapAuthenticator: @unchecked Sendable {
    private let rep: ZSocket
    private let allowed: Mutex<Set<String>?>
    private let secret: Mutex<String?>
    private let refused = Mutex<Set<String>>([])
    static let holdSeconds = 20.0
    /// Called for the first refused connection from each address: (address, what it presented).
    public var onRefused: (@Sendable (String, String) -> Void)?

    /// `keys`: the CURVE clients allowed from the start; `secret`: the PLAIN password; nil: not
    /// known yet, answers wait for `allow` / `allow(secret:)`.
    public init(context: ZContext, allowed keys: [String]? = nil, secret: String? = nil) throws {
        allowed = Mutex(keys.map(Set.init))
        self.secret = Mutex(secret)
        rep = try ZSocket(context, .rep)
        try rep.bind("inproc://zeromq.zap.01")
        // The thread holds the handler only while answering, so it ends once its owner lets go.
        Threads.detach { [weak self] in
            while let me = self { me.serveOne() }
        }
    }

    /// Replaces the set of allowed client keys (Z85).
    public func allow(_ keys: [String]) { allowed.withLock { $0 = Set(keys) } }

    /// Sets the password PLAIN clients must present.
    public func allow(secret s: String) { secret.withLock { $0 = s } }

    /// Answers one request, if one arrives within 200 ms.
    private func serveOne() {
        guard (try? ZPoll.wait([ZPoll.Item(rep, read: true)], timeoutMs: 200))?[0].readable == true,
              let req = try? rep.receiveMultipart(dontWait: true), req.count >= 6 else { return }
        // [version, request id, domain, address, routing id, mechanism, credentials…]
        let address = String(decoding: req[3], as: UTF8.self)
        let mechanism = String(decoding: req[5], as: UTF8.self)
        var ok = false, user = "", presented = mechanism
        let until = monotonicSeconds() + Self.holdSeconds
        if mechanism == "CURVE", req.count >= 7, let key = CurveKeyPair.z85(req[6]) {
            user = key
            presented = "CURVE key \(key)"
            while allowed.withLock({ $0 == nil }) && monotonicSeconds() < until { usleep(10_000) }
            ok = allowed.withLock { $0?.contains(key) ?? false }
        } else if mechanism == "PLAIN", req.count >= 8 {
            user = String(decoding: req[6], as: UTF8.self)
            presented = "a password that is not this run's"
            while secret.withLock({ $0 == nil }) && monotonicSeconds() < until { usleep(10_000) }
            ok = secret.withLock { s in s.map { constantTimeEqual(Array($0.utf8), req[7]) } ?? false }
        }
        if !ok && refused.withLock({ $0.insert(address).inserted }) { onRefused?(address, presented) }
        _ = try? rep.sendMultipart([Array("1.0".utf8), req[1], Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "not authorized").utf8), Array(user.utf8), []])
    }
}

/// Compares secrets without an early exit on the first differing byte.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var d: UInt8 = 0
    for i in a.indices { d |= a[i] ^ b[i] }
    return d == 0
}

/// A fresh random secret: 32 bytes of the system generator (getrandom on Linux), as hex.
public func makeRunSecret() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        .map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

extension ZSocket {
    /// This socket presents `secret` to PLAIN servers (a ring successor, the coordinator).
    public func usePlain(secret: String) throws {
        try set(ZMQ_PLAIN_USERNAME, string: "ringtrain")
        try set(ZMQ_PLAIN_PASSWORD, string: secret)
    }

    /// This socket accepts PLAIN clients (checked by the context's ZAP handler).
    public func servePlain() throws { try set(ZMQ_PLAIN_SERVER, 1) }
}

extension ZMessage {
    /// A metadata property of a received message, e.g. "User-Id" (set by ZAP) or "Peer-Address".
    public func property(_ name: String) -> String? {
        guard let p = zmq_msg_gets(&msg, name) else { return nil }
        return String(cString: p)
    }
}
