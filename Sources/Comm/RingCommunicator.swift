import CZMQ
import Dispatch
import Glibc
import Synchronization
import TensorCore

/// The ring's input: a PULL socket bound before rendezvous, so that its address (with the port
/// the OS chose for `tcp://host:*`) can be published to the other ranks.
///
/// With a CURVE key pair the input is an encrypted CURVE server, and only the ring's own
/// members (their public keys arrive with the rendezvous, see `RingCommunicator.init`) may
/// connect to it.
public final class RingListener {
    let context: ZContext
    let pull: ZSocket
    let monitor: ZMonitor
    let curve: CurveKeyPair?
    /// Without CURVE: connections must present this run's secret (PLAIN, checked by ZAP).
    let plain: Bool
    let authenticator: ZapAuthenticator?
    /// The bound endpoint, e.g. `tcp://127.0.0.1:41733`.
    public let endpoint: String

    /// Lets these public keys connect (CURVE); call as soon as the ring's keys are known, so a
    /// fast predecessor is not turned away while this rank is still getting ready.
    public func authorize(_ keys: [String]) { authenticator?.allow(keys) }

    /// Lets connections that present this run's secret in (PLAIN, without CURVE).
    public func authorize(secret: String) { authenticator?.allow(secret: secret) }

    /// Called for the first refused connection from each address.
    public var onRefused: (@Sendable (String, String) -> Void)? {
        get { authenticator?.onRefused }
        set { authenticator?.onRefused = newValue }
    }

    /// `heartbeatTimeout`: a ring connection is dropped only after this long without any traffic
    /// (a dead process closes its connections at once; this is for vanished hosts), generous so
    /// that a peer starved of CPU for a few seconds is not mistaken for a lost one.
    /// `plain`: without CURVE, admit only connections that present the run's secret
    /// (`authorize(secret:)`), so a stranger's frames never reach the collectives.
    public init(bind: String, curve: CurveKeyPair? = nil, plain: Bool = false, heartbeatTimeout: Double = 30) throws {
        let context = ZContext()
        self.context = context
        self.curve = curve
        self.plain = curve == nil && plain
        authenticator = curve == nil && !plain ? nil : try ZapAuthenticator(context: context)
        pull = try ZSocket(context, .pull)
        try pull.set(ZMQ_RCVBUF, 4 << 20)
        try pull.setHeartbeatTimeout(seconds: heartbeatTimeout)
        if let c = curve { try c.makeServer(pull) } else if plain { try pull.servePlain() }
        monitor = try ZMonitor(pull, events: ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED)
        try pull.bind(bind)
        endpoint = pull.lastEndpoint
    }
}

/// A completion handle for an asynchronous collective.
public final class CommHandle: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var error: Error?
    /// When the collective finished (monotonic seconds), valid after `wait()`.
    public private(set) var completedAt = 0.0

    func complete(_ e: Error?) {
        error = e
        completedAt = monotonicSeconds()
        done.signal()
    }

    /// A handle for work that finished immediately.
    public static var completed: CommHandle {
        let h = CommHandle()
        h.complete(nil)
        return h
    }

    /// Blocks until the collective has finished (and its buffer is free again); rethrows its error.
    public func wait() throws {
        done.wait()
        done.signal()   // later waits return at once
        if let e = error { throw e }
    }
}

/// Collectives over a ring of N processes: each rank PUSHes to its successor and PULLs from its
/// predecessor over TCP.
///
/// All-reduce is reduce-scatter then all-gather, N−1 steps each; the buffer is cut into N
/// balanced segments (any length, including 0 and lengths below N) and each segment into
/// chunks that stream through libzmq while earlier chunks are being added, so the links and
/// the adds overlap. Every rank sends 2(N−1)/N of the buffer. Payloads are sent zero-copy
/// straight from the caller's buffer.
///
/// One serial communication thread owns the sockets and runs collectives in submission order;
/// `allReduceAsync` returns a handle, the synchronous calls wait on one. Every wait is bounded
/// by `Options.timeout`; a neighbour whose connection closes is detected at once (socket
/// monitors). On any failure the rank tells its successor (an abort frame naming the rank at
/// fault), so every survivor's collective fails with a `CommError` naming the same rank.
public final class RingCommunicator: Communicator {
    public struct Options: Sendable {
        /// Longest wait without progress before a collective fails.
        public var timeout: Double = 30
        /// Longest wait for the ring to form.
        public var connectTimeout: Double = 30
        /// Bytes per frame: large enough to amortise per-message costs, small enough that
        /// transfer and reduction pipeline (measured: docs/benchmarks.md).
        public var chunkBytes = 512 << 10
        /// Use shared memory for edges between processes on the same host.
        public var sharedMemory = true
        /// When every rank is on one host (and `sharedMemory` is on), `allocateBuffer` hands out
        /// shared memory that all-reduces run in place in (see `HostGroup`).
        public var sharedBuffers = true
        /// What gradient buckets (`allReduceAsync`) travel as on the ring: `.bf16` halves the
        /// bytes on the wire for slow links. Synchronous all-reduces, broadcasts and in-place
        /// all-reduces (no wire) are always exact.
        public var compression = Compression.none
        public enum Compression: String, Sendable { case none, bf16 }
        /// Frames buffered per shared-memory edge, and their size: small enough that the
        /// slots stay in cache between the writer's copy and the reader's add.
        public var sharedMemorySlots = 16
        public var sharedMemoryChunkBytes = 128 << 10
        /// Overrides `RINGTRAIN_HOST_ID`: ranks with different values count as different hosts
        /// (one machine acting as several, to exercise multi-host paths).
        public var hostID: String?
        /// This run's secret (from WELCOME): ring connections present it when CURVE is off.
        public var secret: String?
        public init(timeout: Double = 30, connectTimeout: Double = 30, chunkBytes: Int = 512 << 10,
                    sharedMemory: Bool = true, sharedBuffers: Bool = true, compression: Compression = .none) {
            self.sharedBuffers = sharedBuffers
            self.compression = compression
            self.timeout = timeout
            self.connectTimeout = connectTimeout
            self.chunkBytes = chunkBytes
            self.sharedMemory = sharedMemory
        }
    }

    public let rank: Int
    public let worldSize: Int
    public let runID: UInt64
    public let options: Options
    public let peers: [String]
    let peerKeys: [String]
    private let labels: [Int]?
    private let externalAbort: (() -> Int?)?
    /// Set by `cancel()` from any thread; shared with the rings and host group this ring uses.
    let cancellation: Cancellation
    /// The number errors use for ring position r (see `init(…labels:…)`).
    func label(_ r: Int) -> Int { labels?[r] ?? r }
    var successor: Int { (rank + 1) % worldSize }
    var predecessor: Int { (rank + worldSize - 1) % worldSize }

    let listener: RingListener
    private var pull: ZSocket { listener.pull }
    private let push: ZSocket
    private let pushMonitor: ZMonitor
    let queue = DispatchQueue(label: "ringtrain.comm", qos: .userInitiated)
    let tracker = ZeroCopyTracker()
    /// Collectives submitted so far (the next one's sequence number). Touched by the submitting thread.
    private var submitted: UInt64 = 0
    /// Communication-thread state.
    private var failure: CommError?
    private var predFd: Int32 = -1
    /// Sticky: a neighbour's connection has closed (it may have finished, or died).
    private var successorGone = false
    private var predecessorGone = false
    /// While the ring forms, a dropped connection to the successor is retried by libzmq (a
    /// connect can fail before the successor listens); afterwards it means the successor is gone.
    private var forming = true
    private var predAddress: String?
    private var acceptedPeers: [Int32: String] = [:]
    /// Shared-memory edges (set up when a neighbour is on this host): this rank's segment
    /// (bell + inbox), the successor's (our outbox) and the predecessor's (to ring its bell).
    var mine: SharedSegment?
    var inbox: SharedSegment?
    var outbox: SharedSegment?
    var predSegment: SharedSegment?
    /// Set when every rank runs on this host: buffers from `allocateBuffer` are reduced in place.
    var hostGroup: HostGroup?
    /// When the job spans hosts with several ranks each: the ring joining this rank with the
    /// ranks of the same local index on the other hosts (`members`: their global ranks).
    var acrossHosts: (ring: RingCommunicator, members: [Int])?
    /// Part of every shared-memory name: rank 0's random tag, agreed at set-up.
    var shmTag = ""
    private var header = [UInt8](repeating: 0, count: FrameHeader.size)
    /// Encoded outgoing segments of compressed all-reduces (communication thread).
    let staging = Staging()

    /// Forms the ring: connects to the successor's endpoint and exchanges hello frames with
    /// both neighbours. `peers[r]` is rank r's listener endpoint; with CURVE, `peerKeys[r]` is
    /// its public key (only those keys may connect to this rank's input).
    public convenience init(listener: RingListener, rank: Int, peers: [String], runID: UInt64, options: Options = Options(),
                            peerKeys: [String] = []) throws {
        try self.init(listener: listener, rank: rank, peers: peers, runID: runID, options: options, peerKeys: peerKeys,
                      labels: nil, externalAbort: nil, cancellation: Cancellation())
    }

    /// `labels[r]`: the number errors and abort frames use for ring position r (the job's rank,
    /// for a ring among some of its ranks); `externalAbort` is polled while waiting and returns
    /// the rank whose failure this ring must give up for (a failure elsewhere on this host).
    init(listener: RingListener, rank: Int, peers: [String], runID: UInt64, options: Options,
         peerKeys: [String], labels: [Int]?, externalAbort: (() -> Int?)?, cancellation: Cancellation) throws {
        precondition(peers.indices.contains(rank))
        self.cancellation = cancellation
        self.labels = labels
        self.externalAbort = externalAbort
        self.listener = listener
        self.rank = rank
        self.worldSize = peers.count
        self.peers = peers
        self.peerKeys = peerKeys
        self.runID = runID
        self.options = options
        push = try ZSocket(listener.context, .push)
        try push.set(ZMQ_IMMEDIATE, 1)       // queue only to a completed connection
        try push.set(ZMQ_SNDBUF, 4 << 20)
        try push.setHeartbeatTimeout(seconds: max(30, options.timeout))
        if let curve = listener.curve {
            guard peerKeys.count == peers.count else {
                throw CommError(.transport, rank: rank, peer: nil, "CURVE is on but the ring's public keys are missing")
            }
            listener.authenticator?.allow(peerKeys)
            try curve.makeClient(push, server: peerKeys[(rank + 1) % peers.count])
        } else if let secret = options.secret {
            listener.authorize(secret: secret)
            try push.usePlain(secret: secret)
        }
        pushMonitor = try ZMonitor(push, events: ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        if worldSize > 1 {
            try push.connect(peers[successor])
            try queue.sync { try formRing() }
            if options.sharedMemory { try setUpSharedMemory() }
        }
    }

    /// How each edge of this rank travels: "shm" or "tcp" for (input, output).
    public var transport: (input: String, output: String) {
        queue.sync { (inbox != nil ? "shm" : "tcp", outbox != nil ? "shm" : "tcp") }
    }

    deinit {
        _ = tracker.waitForAll(timeout: 1)
        push.close()
    }

    // MARK: public collectives

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try startAllReduce(buffer, mean: false, bucket: 0, compress: false).wait()
    }

    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try startAllReduce(buffer, mean: true, bucket: 0, compress: false).wait()
    }

    /// Starts an all-reduce of `buffer` (a bucket) on the communication thread. The buffer must
    /// not be touched until the handle's `wait()` returns. Every rank submits the same buckets
    /// in the same order.
    public func allReduceAsync(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int) -> CommHandle {
        startAllReduce(buffer, mean: mean, bucket: bucket, compress: options.compression == .bf16)
    }

    private func startAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int, compress: Bool) -> CommHandle {
        submit { [self] seq in
            if let g = hostGroup, let (region, offset) = g.locate(buffer) {
                try g.allReduce(region, offset: offset, count: buffer.count, scale: mean ? 1 / Float(worldSize) : 1, seq: seq + 1,
                                timeout: options.timeout, what: "all-reduce of \(buffer.count) floats, bucket \(bucket)",
                                across: acrossHosts.map { a in { part in try self.reduceAcross(a, part, bucket: bucket, compress: compress) } })
            } else if compress {
                try ringAllReduceBF16(buffer, mean: mean, bucket: bucket, seq: seq)
            } else {
                try ringAllReduce(buffer, mean: mean, bucket: bucket, seq: seq)
            }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        precondition((0..<worldSize).contains(root))
        try submit { [self] seq in try ringBroadcast(UnsafeMutableRawBufferPointer(buffer), root: root, seq: seq) }.wait()
    }

    public func barrier() throws {
        let one = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1)
        defer { one.deallocate() }
        one[0] = 1
        try allReduceSum(one)
        if worldSize > 1 && one[0] != Float(worldSize) {
            throw CommError(.badFrame, rank: rank, peer: nil, "barrier counted \(one[0]) ranks, expected \(worldSize)")
        }
    }

    public func allGather(_ payload: [UInt8]) throws -> [[UInt8]] {
        guard worldSize > 1 else { return [payload] }   // an elastic job shrunk to one worker
        var out: [[UInt8]] = []
        try submit { [self] seq in out = try ringAllGather(payload, seq: seq) }.wait()
        return out
    }

    /// Fails this ring (unless it already has) because of rank `culprit`'s failure elsewhere:
    /// the abort travels round the ring, so every member names the same rank. Returns once the
    /// abort frame has left (a process about to exit must not take it with it); the caller must
    /// not be inside one of this ring's collectives.
    func abort(culprit: Int) {
        queue.sync { [self] in
            if failure == nil { fail(CommError(.aborted, rank: label(rank), peer: culprit, "rank \(culprit) failed")) }
        }
    }

    /// Makes the collective in progress (and every later one) fail with `.cancelled` at its next
    /// wait — within a few milliseconds; safe from any thread. An elastic job's control thread
    /// calls it when the coordinator pauses the world: the training thread then leaves its
    /// step, which is not applied, and the ring is not used again.
    public func cancel() { cancellation.cancel() }

    /// `cancel` as a closure another thread may keep (it holds only the flag, not the ring).
    public var canceller: @Sendable () -> Void {
        let c = cancellation
        return { c.cancel() }
    }

    /// Whether an earlier collective failed (later ones fail at once with the same error).
    public var isBroken: Bool { queue.sync { failure != nil } }

    // MARK: the communication thread

    private func submit(_ body: @escaping (UInt64) throws -> Void) -> CommHandle {
        let handle = CommHandle()
        let seq = submitted
        submitted += 1
        queue.async { [self] in
            if let f = failure { handle.complete(f); return }
            do {
                if worldSize > 1 { try body(seq) }
                handle.complete(nil)
            } catch {
                let e = asCommError(error)
                fail(e)
                handle.complete(e)
            }
        }
        return handle
    }

    private func asCommError(_ error: Error) -> CommError {
        if let c = error as? CommError { return c }
        return CommError(.transport, rank: label(rank), peer: nil, "\(error)")
    }

    /// Records the failure and tells the successor, so the news travels around the ring. The
    /// abort queues behind any data frames already sent; waiting (bounded) for all of them to
    /// leave means the successor reads the reason before it sees this process close.
    private func fail(_ e: CommError) {
        failure = e
        // Every rank of the ring is being cancelled by its own coordinator message: nothing to tell.
        if e.reason == .cancelled { return }
        hostGroup?.abort(culprit: e.peer ?? rank)
        if let a = acrossHosts { a.ring.abort(culprit: e.peer ?? rank) }
        // A successor that is gone, or that is itself the lost or failed rank, needs no news
        // (and a send to a dead one would only block).
        if successorGone || ([.peerLost, .aborted].contains(e.reason) && e.peer == label(successor)) { return }
        let culprit = e.peer ?? label(rank)
        let reason = Array((e.reason == .aborted ? e.message : e.description).utf8)
        let h = FrameHeader(kind: .abort, step: 0, runID: runID, sequence: 0, bucket: culprit, chunk: 0,
                            bytes: reason.count)
        _ = try? push.set(ZMQ_SNDTIMEO, 1000)
        if (try? push.send(h.encoded, more: true)) == true { _ = try? push.send(reason) }
        _ = tracker.waitForAll(timeout: 1)
        // Copied frames are not tracked: give libzmq's I/O thread a moment to write the abort.
        _ = try? ZPoll.wait([ZPoll.Item(pushMonitor.pair, read: true)], timeoutMs: 50)
    }

    /// A contiguous piece of a buffer that travels as one frame.
    struct Piece {
        let base: UnsafeMutableRawPointer
        let bytes: Int
        let index: Int
    }

    /// Splits `bytes` at `base` into frames for the output edge (or the input edge) —
    /// at most the edge's chunk size, 4-byte aligned.
    func pieces(_ base: UnsafeMutableRawPointer, _ bytes: Int, output: Bool) -> [Piece] {
        let chunk = edgeChunkBytes(output: output)
        return stride(from: 0, to: bytes, by: chunk).enumerated().map {
            Piece(base: base + $0.element, bytes: min(chunk, bytes - $0.element), index: $0.offset)
        }
    }

    /// Frame size of the output edge (or the input edge), 4-byte aligned.
    func edgeChunkBytes(output: Bool) -> Int {
        let shm = output ? outbox != nil : inbox != nil
        return max(4, (shm ? options.sharedMemoryChunkBytes : options.chunkBytes) / 4 * 4)
    }

    /// Sends `send` to the successor and receives `recv` from the predecessor, interleaved so
    /// neither side can block the other. Send piece i goes out once `sendAllowed()` > i (a
    /// forwarding rank sends what it has received). Throws on timeout, loss or a bad frame.
    func exchange(seq: UInt64, bucket: Int, step: Int, what: String,
                  send: [Piece], recv: [Piece], anySize: Bool = false,
                  kind: FrameHeader.Kind = .data, timeout: Double? = nil, sharedMemory: Bool = true,
                  sendAllowed: (() -> Int)? = nil,
                  onReceive: (Piece, UnsafeRawPointer, Int) throws -> Void) throws {
        let timeout = timeout ?? options.timeout
        let outbox = sharedMemory ? self.outbox : nil, inbox = sharedMemory ? self.inbox : nil
        var si = 0, ri = 0
        var last = monotonicSeconds()
        while si < send.count || ri < recv.count {
            var progressed = false
            let bell = mine?.bellValue ?? 0     // read before looking, so no ring is missed
            let allowed = sendAllowed?() ?? send.count
            while si < min(send.count, allowed) {
                let p = send[si]
                let h = FrameHeader(kind: kind, step: step, runID: runID, sequence: seq, bucket: bucket,
                                    chunk: p.index, bytes: p.bytes)
                if let out = outbox {
                    guard out.tryWrite(h, p.base, p.bytes) else { break }
                } else {
                    h.encode(into: &header)
                    guard try push.send(header, more: true, dontWait: true) else { break }
                    try push.sendNoCopy(UnsafeRawBufferPointer(start: p.base, count: p.bytes), tracker: tracker)
                }
                si += 1
                progressed = true
            }
            while ri < recv.count {
                let p = recv[ri]
                let expected = FrameHeader(kind: kind, step: step, runID: runID, sequence: seq, bucket: bucket,
                                           chunk: p.index, bytes: max(p.bytes, 0))
                if let inb = inbox, let prod = predSegment {
                    guard let slot = inb.peek() else { break }
                    let h = try checkHeader(UnsafeRawBufferPointer(start: slot, count: FrameHeader.size),
                                            expected: expected, anySize: anySize, what: what, drainFrom: nil)
                    guard Int(h.bytes) <= inb.slotBytes else {
                        throw CommError(.badFrame, rank: label(rank), peer: label(predecessor), "shared-memory frame of \(h.bytes) bytes exceeds its slot")
                    }
                    try onReceive(p, slot + 64, Int(h.bytes))
                    inb.release(producer: prod)
                } else {
                    guard let first = try pull.receiveMessage(dontWait: true) else { break }
                    let payload = try readFrame(first, expected: expected, anySize: anySize, what: what)
                    try onReceive(p, payload.data, payload.count)
                }
                ri += 1
                progressed = true
            }
            if progressed { last = monotonicSeconds(); continue }
            if inbox != nil, let stray = try pull.receiveMessage(dontWait: true) {
                try rejectStray(stray, what: what)
            }
            if let culprit = externalAbort?() {
                throw CommError(.aborted, rank: label(rank), peer: culprit, "rank \(culprit) failed; \(what) abandoned")
            }
            if cancellation.isCancelled { throw CommError(.cancelled, rank: label(rank), peer: nil, "\(what) cancelled") }
            try checkConnections()
            // A neighbour that has closed matters only if this step still needs it. A closed
            // predecessor may have left frames in flight: look once more before giving up.
            if successorGone && si < send.count {
                try awaitAbort(grace: min(1, options.timeout / 2))
                throw CommError(.peerLost, rank: label(rank), peer: label(successor),
                                "connection to rank \(label(successor)) at \(peers[successor]) closed during \(what)")
            }
            if predecessorGone && ri < recv.count {
                if inbox?.peek() != nil { continue }
                if try ZPoll.wait([ZPoll.Item(pull, read: true)], timeoutMs: 100)[0].readable { continue }
                throw CommError(.peerLost, rank: label(rank), peer: label(predecessor),
                                "connection from rank \(label(predecessor)) (\(predAddress ?? "?")) closed during \(what)")
            }
            let waited = monotonicSeconds() - last
            if waited > timeout {
                let (peer, dir) = ri < recv.count ? (predecessor, "from") : (successor, "to")
                throw CommError(.timeout, rank: label(rank), peer: label(peer),
                                "no progress \(dir) rank \(label(peer)) for \(fmtSeconds(waited)) in \(what) (seq \(seq), step \(step))")
            }
            var items = [ZPoll.Item(listener.monitor.pair, read: true), ZPoll.Item(pushMonitor.pair, read: true),
                         ZPoll.Item(pull, read: true)]
            if outbox == nil && si < min(send.count, sendAllowed?() ?? send.count) { items.append(ZPoll.Item(push, write: true)) }
            if let m = mine, inbox != nil || outbox != nil {
                // Shared-memory edges ring this rank's bell; socket events are checked between naps.
                let onlyShm = (inbox != nil || ri == recv.count) && (outbox != nil || si == send.count)
                m.sleep(seen: bell, ms: onlyShm ? 5 : 1)
                _ = try ZPoll.wait(items, timeoutMs: 0)
            } else {
                _ = try ZPoll.wait(items, timeoutMs: max(1, min(200, Int((timeout - waited) * 1000) + 1)))
            }
        }
    }

    /// Reads the rest of a two-part frame whose first part is `first`, checking the header
    /// against what must come next. Returns the payload.
    private func readFrame(_ first: ZMessage, expected: FrameHeader, anySize: Bool, what: String) throws -> ZMessage {
        guard first.more else {
            throw badFrame("a single \(first.count)-byte part, expected a header and a payload", what: what, drainFrom: first)
        }
        let h = try checkHeader(UnsafeRawBufferPointer(start: first.data, count: first.count),
                                expected: expected, anySize: anySize, what: what, drainFrom: first)
        guard let payload = try pull.receiveMessage(), !payload.more, payload.count == Int(h.bytes) else {
            throw badFrame("payload does not match its header (\(h.summary))", what: what, drainFrom: first)
        }
        return payload
    }

    /// Decodes a header and checks it is exactly the expected one (an abort becomes its error).
    private func checkHeader(_ raw: UnsafeRawBufferPointer, expected: FrameHeader, anySize: Bool, what: String,
                             drainFrom: ZMessage?) throws -> FrameHeader {
        let h: FrameHeader
        switch FrameHeader.decode(raw) {
        case .failure(.malformed(let m)): throw badFrame(m, what: what, drainFrom: drainFrom)
        case .success(let x): h = x
        }
        if h.kind == .abort, drainFrom != nil {
            let text = (try? pull.receiveMessage()).flatMap { $0 }.map { String(decoding: $0.bytes, as: UTF8.self) } ?? ""
            throw CommError(.aborted, rank: label(rank), peer: Int(h.bucket), text)
        }
        var e = expected
        if anySize { e.bytes = h.bytes }
        guard h == e else { throw badFrame("expected \(e.summary), got \(h.kind) \(h.summary)", what: what, drainFrom: drainFrom) }
        return h
    }

    /// A frame on the socket while data travels through shared memory: an abort from the
    /// predecessor (its error), or something that does not belong to the ring.
    private func rejectStray(_ first: ZMessage, what: String) throws {
        if first.more, case .success(let h) = FrameHeader.decode(UnsafeRawBufferPointer(start: first.data, count: first.count)) {
            if h.kind == .abort {
                let text = (try pull.receiveMessage()).map { String(decoding: $0.bytes, as: UTF8.self) } ?? ""
                throw CommError(.aborted, rank: label(rank), peer: Int(h.bucket), text)
            }
            throw badFrame("unexpected \(h.kind) \(h.summary) on the socket (data travels through shared memory)",
                           what: what, drainFrom: first)
        }
        throw badFrame("unexpected \(first.count)-byte message on the socket", what: what, drainFrom: first)
    }

    private func badFrame(_ m: String, what: String, drainFrom: ZMessage?) -> CommError {
        if let f = drainFrom { drain(f) }
        // The connection's address, as libzmq saw it: a frame that gets this far came through
        // the ring's authentication, but the address says where it came from, not a guess.
        let from = drainFrom?.property("Peer-Address").map { " (connection from \($0))" } ?? ""
        return CommError(.badFrame, rank: label(rank), peer: label(predecessor),
                         "invalid frame on the ring input from rank \(label(predecessor))\(from) during \(what): \(m)")
    }

    /// The successor's connection closed: it died, or it failed for another reason and exited.
    /// In the second case the reason is travelling around the ring towards us; wait briefly for
    /// it so that every rank reports the same culprit.
    private func awaitAbort(grace: Double) throws {
        let deadline = monotonicSeconds() + grace
        while monotonicSeconds() < deadline {
            try checkConnections()
            let readable = try ZPoll.wait([ZPoll.Item(pull, read: true)], timeoutMs: 20)[0].readable
            if !readable && predecessorGone { return }   // nobody left to tell us
            guard readable, let first = try pull.receiveMessage(dontWait: true) else { continue }
            if case .success(let h) = FrameHeader.decode(UnsafeRawBufferPointer(start: first.data, count: first.count)),
               h.kind == .abort, first.more {
                let text = (try pull.receiveMessage()).map { String(decoding: $0.bytes, as: UTF8.self) } ?? ""
                throw CommError(.aborted, rank: label(rank), peer: Int(h.bucket), text)
            }
            drain(first)
        }
    }

    /// Discards the remaining parts of a multipart message.
    private func drain(_ first: ZMessage) {
        var more = first.more
        while more, let m = try? pull.receiveMessage(dontWait: true) { more = m.more }
    }

    /// Reads socket-monitor events: notes when the successor's connection or the
    /// predecessor's closes (other connections to the input — strangers — are ignored).
    private func checkConnections() throws {
        while let ev = try pushMonitor.next() {
            if ev.event == ZMQ_EVENT_DISCONNECTED && !forming { successorGone = true }
        }
        while let ev = try listener.monitor.next() {
            if ev.event == ZMQ_EVENT_ACCEPTED {
                acceptedPeers[ev.value] = socketAddress(ev.value, peer: true)
                if predFd < 0, let a = predAddress, acceptedPeers[ev.value] == a { predFd = ev.value }
            } else if ev.event == ZMQ_EVENT_DISCONNECTED {
                acceptedPeers[ev.value] = nil
                if ev.value == predFd { predecessorGone = true }
            }
        }
    }

    /// Hello exchange: tell the successor which local address our connection comes from, learn
    /// the predecessor's, so the input's monitor can tell its connection from any other.
    private func formRing() throws {
        let deadline = monotonicSeconds() + options.connectTimeout
        // The address of the connection whose handshake succeeded: a first attempt may fail and
        // libzmq reconnects from another port. (A CURVE handshake that reaches the successor
        // before it knows our key is held by its authenticator, not refused: ZapAuthenticator.)
        var local: String?, lastConnected: Int32 = -1
        while local == nil {
            while let ev = try pushMonitor.next() {
                if ev.event == ZMQ_EVENT_CONNECTED { lastConnected = ev.value }
                if ev.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && lastConnected >= 0 {
                    local = socketAddress(lastConnected, peer: false)
                }
            }
            if local != nil { break }
            guard monotonicSeconds() < deadline else {
                throw CommError(.timeout, rank: rank, peer: successor,
                                "could not connect to rank \(successor) at \(peers[successor]) within \(fmtSeconds(options.connectTimeout))")
            }
            _ = try ZPoll.wait([ZPoll.Item(pushMonitor.pair, read: true)], timeoutMs: 100)
        }
        let hello = Array("\(rank) \(local!)".utf8)
        let mine = UnsafeMutableRawBufferPointer.allocate(byteCount: hello.count, alignment: 8)
        defer { _ = tracker.waitForAll(timeout: 1); mine.deallocate() }
        mine.copyBytes(from: hello)
        var got: String?
        try exchange(seq: 0, bucket: 0, step: 0, what: "ring set-up",
                     send: [Piece(base: mine.baseAddress!, bytes: mine.count, index: 0)],
                     recv: [Piece(base: mine.baseAddress!, bytes: -1, index: 0)], anySize: true,
                     kind: .hello, timeout: max(0, deadline - monotonicSeconds())) {
            got = String(decoding: UnsafeRawBufferPointer(start: $1, count: $2), as: UTF8.self)
        }
        let parts = got?.split(separator: " ").map(String.init) ?? []
        guard parts.count == 2, Int(parts[0]) == predecessor else {
            throw CommError(.badFrame, rank: rank, peer: predecessor, "unexpected ring hello \"\(got ?? "")\" (expected one from rank \(predecessor))")
        }
        predAddress = parts[1]
        for (fd, a) in acceptedPeers where a == parts[1] { predFd = fd }
        forming = false
        guard tracker.waitForAll(timeout: options.connectTimeout) else {
            throw CommError(.timeout, rank: rank, peer: successor, "ring hello to rank \(successor) not sent")
        }
    }
}

/// A flag a ring, its host group and its rings across hosts poll while they wait.
final class Cancellation: Sendable {
    private let flag = Atomic<Bool>(false)
    func cancel() { flag.store(true, ordering: .releasing) }
    var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

/// "ip:port" of one end of a connected TCP socket.
func socketAddress(_ fd: Int32, peer: Bool) -> String {
    var storage = sockaddr_storage()
    var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let rc = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len)
        }
    }
    guard rc == 0 else { return "?" }
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
    let r = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
        }
    }
    return r == 0 ? "\(String(cString: host)):\(String(cString: serv))" : "?"
}

func fmtSeconds(_ s: Double) -> String {
    let tenths = Int((s * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) s"
}
