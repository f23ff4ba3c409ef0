import Comm
import TensorCore
import Dispatch
import Glibc

/// Runs `body(i)` for i in 0..<n on n threads at once and returns the results by index.
public func concurrently<T>(_ n: Int, _ body: @escaping (Int) throws -> T) -> [Result<T, Error>] {
    var results = [Result<T, Error>?](repeating: nil, count: n)
    let lock = DispatchQueue(label: "concurrently")
    let group = DispatchGroup()
    for i in 0..<n {
        group.enter()
        Threads.detach {
            let r = Result { try body(i) }
            lock.sync { results[i] = r }
            group.leave()
        }
    }
    group.wait()
    return results.map { $0! }
}

/// A ring of n communicators in this process (one per thread), over loopback TCP.
public func localRing(_ n: Int, runID: UInt64 = 42, options: RingCommunicator.Options = .init(),
                      hosts: [Int]? = nil) throws -> [RingCommunicator] {
    let listeners = try (0..<n).map { _ in try RingListener(bind: "tcp://127.0.0.1:*") }
    let peers = listeners.map(\.endpoint)
    return try concurrently(n) { r in
        var o = options
        if let hosts { o.hostID = "host\(hosts[r])" }
        return try RingCommunicator(listener: listeners[r], rank: r, peers: peers, runID: runID, options: o)
    }.map { try $0.get() }
}

extension Fixtures {
    /// A one-shot event to wait for across threads.
    public final class Signal: @unchecked Sendable {
        private let sem = DispatchSemaphore(value: 0)
        public init() {}
        public func fire() { sem.signal() }
        public func wait(timeout: Double) { _ = sem.wait(timeout: .now() + timeout) }
    }
}

/// A value shared between a test and the threads it starts, read and written under a lock.
public final class Locked<T>: @unchecked Sendable {
    private let lock = DispatchQueue(label: "locked")
    private var value: T
    public init(_ v: T) { value = v }
    public var get: T { lock.sync { value } }
    public func set(_ v: T) { lock.sync { value = v } }
}
