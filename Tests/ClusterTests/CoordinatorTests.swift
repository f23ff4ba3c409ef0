import Cluster
import Comm
import Config
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// A fake worker speaking the control protocol by hand.
final class FakeWorker {
    let ctx = ZContext()
    let dealer: ZSocket
    init(_ endpoint: String) throws {
        dealer = try ZSocket(ctx, .dealer)
        try dealer.connect(endpoint)
    }
    func send(_ m: ControlMessage) throws { try dealer.send(m.encode()) }
    func sendRaw(_ bytes: [UInt8]) throws { try dealer.send(bytes) }
    /// The next message other than PING, or nil after `timeout`.
    func next(timeout: Double = 5) -> ControlMessage? {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            guard let m = try? dealer.receiveMessage(dontWait: true) else { usleep(10_000); continue }
            if let msg = try? ControlMessage.decode(m.bytes, from: "test"), msg != .ping { return msg }
        }
        return nil
    }
}

func hello(pid: Int, host: String = "h1", rank: Int? = nil, build: String = BuildInfo.id, version: Int = ControlMessage.version,
           jobHash: String? = nil) -> ControlMessage {
    var h = ControlMessage.Hello(host: host, pid: pid, endpoint: "tcp://127.0.0.1:\(40000 + pid)", build: build,
                                 jobHash: jobHash, rank: rank)
    h.protocolVersion = version
    return .hello(h)
}

@Test(.timeLimit(.minutes(10)))
func coordinatorAdmitsChecksAndSupervises() throws {
    var job = JobConfig()
    job.comm.heartbeat = 0.3
    job.comm.heartbeatTimeout = 2
    let c = try Coordinator(.init(listen: "tcp://127.0.0.1:*", workers: 2, job: job))
    let lines = Lines()
    c.log = { lines.append($0) }
    let outcome = Locked<Coordinator.Outcome?>(nil)
    let done = Fixtures.Signal()
    Threads.detach { outcome.set(c.run()); done.fire() }

    let w = try (0..<8).map { _ in try FakeWorker(c.endpoint) }
    func rejected(_ f: FakeWorker, _ m: ControlMessage) throws -> String? {
        try f.send(m)
        if case .reject(let reason)? = f.next() { return reason }
        return nil
    }
    #expect(try rejected(w[0], hello(pid: 1, version: 7))?.contains("protocol version 7") == true)
    #expect(try rejected(w[1], hello(pid: 2, build: "ringtrain-9.9"))?.contains("build ringtrain-9.9 differs") == true)
    #expect(try rejected(w[2], hello(pid: 3, jobHash: "abc"))?.contains("job file differs") == true)
    #expect(try rejected(w[3], hello(pid: 4, rank: 5))?.contains("rank 5 requested, but the job has 2 workers") == true)
    // Garbage is dropped, and the coordinator keeps going.
    try w[4].sendRaw(Array("{not json".utf8))
    try w[4].sendRaw(Array(#"{"type":"HELLO","v":1}"#.utf8))
    try w[4].sendRaw(Array(#"{"type":"TELEPORT","v":1}"#.utf8))
    try w[4].sendRaw([UInt8](repeating: 0x41, count: ControlMessage.maxBytes + 1))
    #expect(w[4].next(timeout: 0.5) == nil)
    // Two good workers; a duplicate of the first is refused. Rank 1 is asked for explicitly.
    try w[5].send(hello(pid: 10, rank: 1, jobHash: job.hash))
    // Separate connections race: let the coordinator take the first before the duplicate arrives.
    let deadline = monotonicSeconds() + 10
    while !lines.all.contains(where: { $0.contains("worker 1/2") }) && monotonicSeconds() < deadline { usleep(10_000) }
    #expect(try rejected(w[6], hello(pid: 10))?.contains("duplicate") == true)
    try w[7].send(hello(pid: 11, host: "h0"))
    guard case .welcome(let a)? = w[5].next(), case .welcome(let b)? = w[7].next() else {
        Issue.record("no welcome: \(lines.all)")
        return
    }
    #expect(a.rank == 1 && b.rank == 0 && a.world == 2 && a.runID == b.runID)
    #expect(a.peers == ["tcp://127.0.0.1:40011", "tcp://127.0.0.1:40010"] && a.hosts == ["h0", "h1"])
    #expect(try JobConfig(a.job, source: "welcome") == job)
    // A latecomer is refused.
    #expect(try rejected(w[0], hello(pid: 12))?.contains("already started") == true)
    // A message claiming another rank is ignored; rank 1 then falls silent (rank 0 keeps beating).
    try w[5].send(.heartbeat(rank: 0, step: 3))
    for _ in 0..<40 {
        try w[7].send(.heartbeat(rank: 0, step: 1))
        usleep(100_000)
        if outcome.get != nil { break }
    }
    done.wait(timeout: 30)
    guard case .failed(let failedRank, let failedHost, let why)? = outcome.get else { Issue.record("outcome \(String(describing: outcome.get))"); return }
    #expect(failedRank == 1 && failedHost == "h1" && why.contains("no heartbeat"))
    guard case .abort(let r, let host, let message)? = w[7].next() else { Issue.record("no abort: \(lines.all)"); return }
    #expect(r == 1 && host == "h1" && message.contains("no heartbeat"))
    #expect(lines.all.contains { $0.contains("ignored HEARTBEAT claiming rank 0 from rank 1") })
    #expect(lines.all.contains { $0.contains("dropped malformed message from peer") })
}

@Test func controlMessagesRoundTripAndRejectGarbage() throws {
    let msgs: [ControlMessage] = [
        hello(pid: 3, rank: 2, jobHash: "ff"),
        .welcome(.init(rank: 1, world: 2, peers: ["a", "b"], hosts: ["x", "y"], runID: 0xABC, job: JobConfig().configValue, resume: "c.st")),
        .welcome(.init(rank: 0, world: 2, peers: ["a", "b"], hosts: ["x", "y"], runID: 0xABD, job: JobConfig().configValue,
                       initFrom: "w.safetensors", initPartial: true)),
        .reject(reason: "no"), .heartbeat(rank: 1, step: 9), .ping,
        .metrics(rank: 0, epoch: 2, step: 20, values: [Metric("val_loss", 0.5), Metric("val_acc", 0.9)], samplesPerSecond: 1000),
        .done(rank: 1, step: 20), .failed(rank: 1, peer: 2, message: "lost"), .abort(rank: nil, host: nil, message: "stop"),
        .failed(rank: 0, peer: 1, message: "peer lost", recoverable: true), .pause(generation: 3),
        .ready(rank: 1, generation: 3, step: 41, endpoint: "tcp://127.0.0.1:5"), .ready(rank: 2, generation: 3, step: nil, endpoint: "e"),
        .ready(rank: 0, generation: 0, step: nil, endpoint: "tcp://127.0.0.1:6"), .standby(job: JobConfig().configValue),
        .welcome(.init(rank: 1, world: 2, peers: ["a", "b"], hosts: ["x", "y"], runID: 0xABE, job: JobConfig().configValue,
                       generation: 3, elastic: true)),
    ]
    for m in msgs { #expect(try ControlMessage.decode(m.encode(), from: "t") == m) }
    func err(_ s: String) -> String {
        do { _ = try ControlMessage.decode(Array(s.utf8), from: "rank 3"); return "" } catch { return "\(error)" }
    }
    #expect(err("[]") == "message from rank 3: not a JSON object")
    #expect(err(#"{"type":"PING","v":2}"#).contains("v: protocol version 2, expected 1"))
    #expect(err(#"{"type":"HEARTBEAT","v":1,"rank":-1,"step":0}"#).contains("rank: expected an integer ≥ 0"))
    #expect(err(#"{"type":"DONE","v":1,"rank":0}"#).contains("step: required integer is missing"))
    #expect(err(#"{"type":"PING","v":1,"extra":true}"#).contains("extra: unknown key"))
    #expect(err(#"{"type":"PAUSE","v":1,"generation":0}"#).contains("generation: expected an integer ≥ 1"))
    #expect(err(#"{"type":"READY","v":1,"rank":0,"generation":2,"step":3}"#).contains("endpoint: required string is missing"))
    #expect(err(#"{"type":"STANDBY","v":1,"job":[]}"#).contains("job: required object is missing"))
    #expect(err(#"{"type":"FAILED","v":1,"rank":0,"message":"m","recoverable":"yes"}"#).contains("recoverable"))
    #expect(err(#"{"type":"WELCOME","v":1,"rank":3,"world":2,"run_id":"1","job":{}}"#).contains("rank: expected an integer ≤ 1"))
    #expect(err(#"{"type":"METRICS","v":1,"rank":0,"epoch":1,"step":1,"values":{"val_acc":"high"},"samples_per_second":1}"#)
        .contains("values.val_acc: expected a number"))
}

@Test func schedulerEnvironments() throws {
    #expect(firstHost("node[03-05,9],gpu1") == "node03")
    #expect(firstHost("gpu7,gpu8") == "gpu7")
    #expect(firstHost("n[1]") == "n1")
    #expect(firstHost("[") == nil)
    let torch = try LaunchEnvironment.from(["RANK": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"])
    #expect(torch == LaunchEnvironment(rank: 2, worldSize: 4, coordinatorHost: "10.0.0.1", coordinatorPort: 1234))
    #expect(torch.coordinatorEndpoint == "tcp://10.0.0.1:1234")
    let slurm = try LaunchEnvironment.from(["SLURM_PROCID": "1", "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "cn[07-09]"])
    #expect(slurm == LaunchEnvironment(rank: 1, worldSize: 3, coordinatorHost: "cn07", coordinatorPort: 29500))
    #expect(try LaunchEnvironment.from([:]) == LaunchEnvironment())
    #expect(throws: LaunchEnvironment.Problem.self) { try LaunchEnvironment.from(["RANK": "x"]) }
    #expect(throws: LaunchEnvironment.Problem.self) { try LaunchEnvironment.from(["RANK": "4", "WORLD_SIZE": "4"]) }
    #expect(localAddress(toward: "127.0.0.1") == "127.0.0.1")
}
