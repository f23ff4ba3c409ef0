import CZMQ
import Glibc
import Synchronization
import TensorCore

/// A libzmq call that failed, with errno's text.
public struct ZMQError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public var message: String { String(cString: zmq_strerror(code)) }
    public var description: String { "\(operation): \(message) (errno \(code))" }
    /// The call would have blocked (EAGAIN on a non-blocking or timed operation).
    public var wouldBlock: Bool { code == EAGAIN }
    init(_ operation: String) { self.operation = operation; code = zmq_errno() }
}

/// libzmq facts for diagnostics.
public enum ZMQ {
    /// The linked libzmq version, e.g. "4.3.4".
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with CURVE security.
    public static var hasCurve: Bool { zmq_has("curve") != 0 }
}

/// A ZeroMQ context (owns the I/O threads). Sockets keep their context alive.
public final class ZContext {
    let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int = 1) {
        handle = zmq_ctx_new()
        zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads))
    }

    deinit { zmq_ctx_term(handle) }
}

/// One ZeroMQ socket. Not thread-safe: exactly one thread uses a socket at a time (RingTrain
/// gives each socket to one owner — the communication thread or the control loop).
/// Created with trainer defaults: finite linger, small high-water marks, ZMTP heartbeats.
public final class ZSocket {
    public enum Kind {
        case push, pull, router, dealer, pair, req, rep
        var raw: Int32 {
            switch self {
            case .push: return ZMQ_PUSH
            case .pull: return ZMQ_PULL
            case .router: return ZMQ_ROUTER
            case .dealer: return ZMQ_DEALER
            case .pair: return ZMQ_PAIR
            case .req: return ZMQ_REQ
            case .rep: return ZMQ_REP
            }
        }
    }

    let handle: UnsafeMutableRawPointer
    public let context: ZContext
    public let kind: Kind
    private var closed = false

    public init(_ context: ZContext, _ kind: Kind) throws {
        guard let h = zmq_socket(context.handle, kind.raw) else { throw ZMQError("zmq_socket") }
        self.context = context
        self.kind = kind
        handle = h
        try set(ZMQ_LINGER, 1000)               // never block close() for long on a dead peer
        try set(ZMQ_SNDHWM, 64)                 // messages, not bytes: a bounded queue of chunks
        try set(ZMQ_RCVHWM, 64)
        try set(ZMQ_TCP_KEEPALIVE, 1)
        try set(ZMQ_HEARTBEAT_IVL, 1000)        // ZMTP pings: a silent or partitioned peer
        try set(ZMQ_HEARTBEAT_TIMEOUT, 5000)    // is disconnected within seconds
        try set(ZMQ_HEARTBEAT_TTL, 6000)
    }

    /// ZMTP heartbeat timeout for this socket's future connections (and the TTL it asks its
    /// peers to apply): how long a connection may carry no traffic at all before it is dropped.
    public func setHeartbeatTimeout(seconds: Double) throws {
        let ms = Int32(min(max(seconds, 1), 6000) * 1000)
        try set(ZMQ_HEARTBEAT_TIMEOUT, ms)
        try set(ZMQ_HEARTBEAT_TTL, ms + 1000)
    }

    deinit { close() }

    public func close() {
        if !closed { zmq_close(handle); closed = true }
    }

    // MARK: options

    public func set(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func set(_ option: Int32, string: String) throws { try set(option, bytes: Array(string.utf8)) }

    /// Send/receive timeouts in milliseconds (−1: block).
    public func setTimeouts(send: Int, receive: Int) throws {
        try set(ZMQ_SNDTIMEO, Int32(send))
        try set(ZMQ_RCVTIMEO, Int32(receive))
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves `tcp://host:*` to the chosen port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var len = buf.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &len)
        return String(cString: buf)
    }

    /// Reports connection events on an inproc PAIR socket (see `ZMonitor`).
    public func monitor(_ address: String, events: Int32) throws {
        guard zmq_socket_monitor(handle, address, events) == 0 else { throw ZMQError("zmq_socket_monitor") }
    }

    // MARK: sending

    /// Sends one frame (copied). Returns false if it would block under `dontWait`.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, more: Bool = false, dontWait: Bool = false) throws -> Bool {
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while true {
            if zmq_send(handle, bytes.baseAddress, bytes.count, flags) >= 0 { return true }
            let e = ZMQError("zmq_send")
            if e.code == EINTR { continue }
            if e.wouldBlock { return false }
            throw e
        }
    }

    @discardableResult
    public func send(_ bytes: [UInt8], more: Bool = false, dontWait: Bool = false) throws -> Bool {
        try bytes.withUnsafeBytes { try send($0, more: more, dontWait: dontWait) }
    }

    /// Sends one frame without copying: libzmq reads `bytes` directly, from its I/O thread,
    /// after this call returns. The memory must stay unchanged until `tracker` counts the
    /// frame as released (`ZeroCopyTracker.waitForAll`).
    @discardableResult
    public func sendNoCopy(_ bytes: UnsafeRawBufferPointer, tracker: ZeroCopyTracker,
                           more: Bool = false, dontWait: Bool = false) throws -> Bool {
        var msg = zmq_msg_t()
        tracker.pending.add(1, ordering: .relaxed)
        let hint = Unmanaged.passRetained(tracker).toOpaque()
        let rc = zmq_msg_init_data(&msg, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, { _, hint in
            let t = Unmanaged<ZeroCopyTracker>.fromOpaque(hint!).takeRetainedValue()
            t.pending.subtract(1, ordering: .releasing)
        }, hint)
        guard rc == 0 else {
            Unmanaged<ZeroCopyTracker>.fromOpaque(hint).release()
            tracker.pending.subtract(1, ordering: .relaxed)
            throw ZMQError("zmq_msg_init_data")
        }
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while true {
            if zmq_msg_send(&msg, handle, flags) >= 0 { return true }
            let e = ZMQError("zmq_msg_send")
            if e.code == EINTR { continue }
            zmq_msg_close(&msg)   // releases the hint
            if e.wouldBlock { return false }
            throw e
        }
    }

    // MARK: receiving

    /// Receives one frame into `buffer`; returns the frame's full size (which may exceed the
    /// buffer: the rest is dropped), or nil on timeout / would-block.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, dontWait: Bool = false) throws -> Int? {
        while true {
            let n = zmq_recv(handle, buffer.baseAddress, buffer.count, dontWait ? ZMQ_DONTWAIT : 0)
            if n >= 0 { return Int(n) }
            let e = ZMQError("zmq_recv")
            if e.code == EINTR { continue }
            if e.wouldBlock { return nil }
            throw e
        }
    }

    /// Receives one frame as a message (no copy out of libzmq's buffer); nil on timeout.
    public func receiveMessage(dontWait: Bool = false) throws -> ZMessage? {
        let m = ZMessage()
        while true {
            if zmq_msg_recv(&m.msg, handle, dontWait ? ZMQ_DONTWAIT : 0) >= 0 { return m }
            let e = ZMQError("zmq_msg_recv")
            if e.code == EINTR { continue }
            if e.wouldBlock { return nil }
            throw e
        }
    }

    /// Receives a whole multipart message as messages (keeping their metadata), or nil on timeout.
    public func receiveMessages(dontWait: Bool = false) throws -> [ZMessage]? {
        guard let first = try receiveMessage(dontWait: dontWait) else { return nil }
        var parts = [first]
        while parts.last!.more, let m = try receiveMessage() { parts.append(m) }
        return parts
    }

    /// Receives a whole multipart message (all frames), or nil on timeout.
    public func receiveMultipart(dontWait: Bool = false) throws -> [[UInt8]]? {
        guard let first = try receiveMessage(dontWait: dontWait) else { return nil }
        var parts = [first.bytes]
        var more = first.more
        while more {
            guard let m = try receiveMessage() else { break }
            parts.append(m.bytes)
            more = m.more
        }
        return parts
    }

    /// Sends frames as one multipart message (copied).
    public func sendMultipart(_ parts: [[UInt8]]) throws {
        for (i, p) in parts.enumerated() { try send(p, more: i < parts.count - 1) }
    }

    /// Whether the last received frame has more parts following.
    public var hasMore: Bool {
        var v: Int32 = 0
        var len = MemoryLayout<Int32>.size
        zmq_getsockopt(handle, ZMQ_RCVMORE, &v, &len)
        return v != 0
    }
}

/// A received frame, owning libzmq's buffer until it is released.
public final class ZMessage {
    var msg = zmq_msg_t()
    init() { zmq_msg_init(&msg) }
    deinit { zmq_msg_close(&msg) }

    public var count: Int { zmq_msg_size(&msg) }
    public var data: UnsafeRawPointer { UnsafeRawPointer(zmq_msg_data(&msg)) }
    public var more: Bool { zmq_msg_more(&msg) != 0 }
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: data, count: count)) }
}

/// Waits on several sockets at once.
public enum ZPoll {
    public struct Item {
        public let socket: ZSocket
        public let read: Bool
        public let write: Bool
        public init(_ socket: ZSocket, read: Bool = false, write: Bool = false) {
            self.socket = socket
            self.read = read
            self.write = write
        }
    }

    /// Returns, per item, (readable, writable); waits at most `timeoutMs` (−1: forever).
    public static func wait(_ items: [Item], timeoutMs: Int) throws -> [(readable: Bool, writable: Bool)] {
        var raw = items.map {
            zmq_pollitem_t(socket: $0.socket.handle, fd: 0,
                           events: Int16(($0.read ? ZMQ_POLLIN : 0) | ($0.write ? ZMQ_POLLOUT : 0)), revents: 0)
        }
        while true {
            let rc = zmq_poll(&raw, Int32(raw.count), timeoutMs)
            if rc >= 0 { break }
            let e = ZMQError("zmq_poll")
            if e.code == EINTR { continue }
            throw e
        }
        return raw.map { (($0.revents & Int16(ZMQ_POLLIN)) != 0, ($0.revents & Int16(ZMQ_POLLOUT)) != 0) }
    }
}

/// Connection events of one socket, read from an inproc PAIR socket.
public final class ZMonitor {
    public let pair: ZSocket
    private static let counter = Atomic<Int>(0)

    public init(_ socket: ZSocket, events: Int32) throws {
        let id = ZMonitor.counter.wrappingAdd(1, ordering: .relaxed).newValue
        let address = "inproc://ringtrain-monitor-\(getpid())-\(id)"
        try socket.monitor(address, events: events)
        pair = try ZSocket(socket.context, .pair)
        try pair.connect(address)
    }

    public struct Event: Sendable {
        public let event: Int32
        /// The file descriptor for connection events, an error code for failures.
        public let value: Int32
        public let endpoint: String
    }

    /// The next pending event, if any.
    public func next() throws -> Event? {
        guard let parts = try pair.receiveMultipart(dontWait: true), parts.count >= 2, parts[0].count >= 6 else { return nil }
        let p = parts[0]
        let ev = Int32(p[0]) | Int32(p[1]) << 8
        let value = Int32(bitPattern: UInt32(p[2]) | UInt32(p[3]) << 8 | UInt32(p[4]) << 16 | UInt32(p[5]) << 24)
        return Event(event: ev, value: value, endpoint: String(decoding: parts[1], as: UTF8.self))
    }
}

/// Counts zero-copy frames libzmq has not yet released, so a collective can return only once
/// nothing still reads the caller's buffer.
public final class ZeroCopyTracker: @unchecked Sendable {
    let pending = Atomic<Int>(0)
    public init() {}

    public var outstanding: Int { pending.load(ordering: .acquiring) }

    /// Waits (yielding) until every frame has been released; false after `timeout` seconds.
    public func waitForAll(timeout: Double) -> Bool {
        var spins = 0
        let deadline = monotonicSeconds() + timeout
        while pending.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins < 100 { sched_yield() } else {
                if monotonicSeconds() > deadline { return false }
                usleep(50)
            }
        }
        return true
    }
}
