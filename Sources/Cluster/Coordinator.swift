import Comm
import Config
import Formats
import Glibc
import Synchronization
import TensorCore
import Train

/// The control plane of a job (never touches gradients). It meets the workers (HELLO →
/// WELCOME with rank, peers, job and run id), then watches heartbeats, collects metrics and
/// ends the job: success when every rank is DONE; failure when a worker reports one, falls
/// silent or disappears — then every worker is told to ABORT, naming the rank and host at fault.
///
/// Elastic jobs (`minWorkers`): a lost worker is removed instead, and the world regroups —
/// PAUSE to the others, each answers READY with its last completed step and a fresh ring
/// input, then WELCOME to the next generation, whose rank 0 is a worker holding the newest
/// state (so no step is lost). A worker that arrives during the run joins the same way, up to
/// `workers`. Below `minWorkers` the job fails as a static one does.
public final class Coordinator {
    public struct Options {
        public var listen: String
        public var workers: Int
        public var job: JobConfig
        /// Checkpoint every worker resumes from (rank 0 reads it and broadcasts it).
        public var resume: String?
        /// Weights every worker starts from (`--init-from`), all or only those that match.
        public var initFrom: String?
        public var initPartial = false
        /// The run directory, handed to rank 0 (which records into it on its host).
        public var runDir: String?
        /// Without CURVE: the secret workers must present on the control connection (PLAIN).
        /// `launch` sets one and gives it to its own children privately (in their environment);
        /// a coordinator without either admits any worker that speaks the protocol, and says so.
        public var controlSecret: String?
        /// Longest wait for all workers to arrive.
        public var rendezvousTimeout = 120.0
        /// Elastic: the job goes on without lost workers while at least this many remain, and
        /// admits workers that arrive later (up to `workers`). nil: any loss ends the job.
        public var minWorkers: Int?
        /// CURVE: the coordinator's key pair and the workers' public keys allowed to connect.
        /// Everything is then encrypted, and a worker with another key cannot join.
        public var curve: CurveKeyPair?
        public var authorizedKeys: [String] = []
        public init(listen: String, workers: Int, job: JobConfig, resume: String? = nil) {
            self.listen = listen
            self.workers = workers
            self.job = job
            self.resume = resume
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// The last epoch's evaluation, as the workers reported it.
        case succeeded(steps: Int, lastMetrics: [Metric])
        case failed(rank: Int?, host: String?, message: String)
    }

    public let options: Options
    public let endpoint: String
    public let runID = UInt64.random(in: 1...UInt64.max)
    /// Handed to the admitted workers in WELCOME: their ring connections present it.
    let ringSecret = makeRunSecret()
    /// Log lines (default: stdout with a "[coordinator]" prefix).
    /// The job's end (finished or failed) is its result: printed whatever the log level.
    public var log: (String) -> Void = { line in
        if line.hasPrefix("job ") && (line.contains(" finished: ") || line.hasPrefix("job failed")) {
            Trainer.printLine("[coordinator] " + line)
        } else {
            RunLog.info("[coordinator] " + line)
        }
    }

    private let context = ZContext()
    private let router: ZSocket
    private let authenticator: ZapAuthenticator?
    /// Set from other threads: a reason to end the job (user stop, a worker process that exited).
    private let external = Mutex<Failure?>(nil)

    struct Member {
        let identity: [UInt8]
        var hello: ControlMessage.Hello
        var rank = -1
        var lastSeen = monotonicSeconds()
        var done = false
        /// READY during a regroup: the last step it completed (nil: it holds no state yet).
        var ready: (step: Int?, endpoint: String)?
    }
    private var members: [Member] = []
    /// Elastic: workers admitted during the run, waiting for the next generation.
    private var joiners: [Member] = []
    private var generation = 0
    /// Every worker has been welcomed (the rendezvous is over).
    private var started = false
    /// A regroup in progress: PAUSE sent at `started`; members that have not answered by
    /// `deadline` are lost too.
    private var regroup: (started: Double, deadline: Double)?
    /// Processes the launcher saw exit (pid, description), handled by the supervision loop.
    private let exits = Mutex<[(pid: Int, description: String)]>([])

    public init(_ options: Options) throws {
        self.options = options
        router = try ZSocket(context, .router)
        try router.set(ZMQ_ROUTER_MANDATORY_OPTION, 0)
        if let curve = options.curve {
            authenticator = try ZapAuthenticator(context: context, allowed: options.authorizedKeys)
            try curve.makeServer(router)
        } else if let secret = options.controlSecret {
            authenticator = try ZapAuthenticator(context: context, secret: secret)
            try router.servePlain()
        } else {
            authenticator = nil
        }
        try router.bind(options.listen)
        endpoint = router.lastEndpoint
        authenticator?.onRefused = { [weak self] address, presented in
            self?.log("refused connections from \(address): \(presented) is not authorized (logged once per address)")
        }
    }

    /// Asks a running `run()` to abort the job (e.g. on Ctrl-C); safe from any thread.
    public func requestStop(_ reason: String = "stopped by the user") {
        external.withLock { if $0 == nil { $0 = Failure(rank: nil, host: nil, reason) } }
    }

    /// Tells the coordinator that a worker process on this host has exited (the launcher sees
    /// this first): the job fails naming its rank unless it had already finished — or, when
    /// elastic, goes on without it.
    public func processExited(pid: Int, description: String) {
        exits.withLock { $0.append((pid, description)) }
    }

    private func checkExits() throws {
        for e in exits.withLock({ q -> [(pid: Int, description: String)] in defer { q.removeAll() }; return q }) {
            joiners.removeAll { $0.hello.pid == e.pid && $0.hello.host == hostName() }
            guard let m = members.first(where: { $0.hello.pid == e.pid && $0.hello.host == hostName() }) else {
                // Before the job starts, a child that dies before its HELLO would otherwise be waited for.
                if !started { throw Failure(rank: nil, host: hostName(), "\(e.description) (pid \(e.pid)) before joining") }
                continue   // a replacement that was turned away
            }
            if m.done { continue }
            if options.minWorkers != nil && m.rank >= 0 { try lose(m.identity, e.description) }
            else { throw Failure(rank: m.rank >= 0 ? m.rank : nil, host: m.hello.host, e.description) }
        }
    }

    private func checkExternal() throws {
        guard let f = external.withLock({ $0 }) else { return }
        if let r = f.rank, members.first(where: { $0.rank == r })?.done == true {
            external.withLock { $0 = nil }   // a finished rank may exit
            return
        }
        throw f
    }

    /// Runs the job to its end. Blocking.
    public func run() -> Outcome {
        do {
            try rendezvous()
            return try supervise()
        } catch let f as Failure {
            return abort(rank: f.rank, host: f.host, f.message)
        } catch {
            return abort(rank: nil, host: nil, "\(error)")
        }
    }

    struct Failure: Error, Sendable {
        let rank: Int?
        let host: String?
        let message: String
        init(rank: Int?, host: String?, _ message: String) { self.rank = rank; self.host = host; self.message = message }
    }

    // MARK: rendezvous

    private func rendezvous() throws {
        let n = options.workers
        let deadline = monotonicSeconds() + options.rendezvousTimeout
        log("waiting for \(n) worker\(n == 1 ? "" : "s") on \(endpoint)")
        if options.curve == nil && options.controlSecret == nil {
            log("warning: no CURVE keys (--curve-key): traffic is unencrypted, and this port admits any worker that speaks the protocol "
                + "(ring connections still need this run's secret); use CURVE on networks you do not trust")
        }
        while members.count < n {
            try checkExternal()
            try checkExits()
            guard monotonicSeconds() < deadline else {
                throw Failure(rank: nil, host: nil, "only \(members.count) of \(n) workers arrived within \(Int(options.rendezvousTimeout)) s")
            }
            guard let (id, msg, key) = try receive(timeoutMs: 200) else { continue }
            guard case .hello(let h) = msg else {
                log("ignored \(msg.type) from \(hex(id)) before the job started")
                continue
            }
            if let reason = admissionProblem(h) ?? keyProblem(h, key) {
                log("rejected \(h.host) pid \(h.pid): \(reason)")
                send(.reject(reason: reason), to: id)
                continue
            }
            members.append(Member(identity: id, hello: h))
            log("worker \(members.count)/\(n): \(h.host) pid \(h.pid), ring \(h.endpoint)")
        }
        assignRanks()
        members.sort { $0.rank < $1.rank }
        welcomeAll()
        started = true
        log("job \(options.job.name) started: run \(String(runID, radix: 16)), \(n) ranks"
            + (options.resume.map { ", resuming from \($0)" } ?? "") + (options.runDir.map { "; run directory \($0)" } ?? "")
            + (options.minWorkers.map { "; elastic: goes on with \($0)–\(n) workers" } ?? ""))
    }

    private func admissionProblem(_ h: ControlMessage.Hello, joining: Bool = false) -> String? {
        if h.protocolVersion != ControlMessage.version {
            return "protocol version \(h.protocolVersion), this coordinator speaks \(ControlMessage.version)"
        }
        if h.build != BuildInfo.id { return "build \(h.build) differs from the coordinator's \(BuildInfo.id)" }
        if let j = h.jobHash, j != options.job.hash {
            return "job file differs from the coordinator's (hash \(j), expected \(options.job.hash))"
        }
        if (members + joiners).contains(where: { $0.hello.host == h.host && $0.hello.pid == h.pid }) {
            return "duplicate: \(h.host) pid \(h.pid) has already joined"
        }
        if (members + joiners).contains(where: { $0.hello.endpoint == h.endpoint }) { return "duplicate ring endpoint \(h.endpoint)" }
        if joining {
            // A joiner's requested rank means nothing once the world has regrouped: it is given one.
            if members.count + joiners.count >= options.workers { return "the job already has its \(options.workers) workers" }
        } else if let r = h.rank {
            if r >= options.workers { return "rank \(r) requested, but the job has \(options.workers) workers" }
            if members.contains(where: { $0.hello.rank == r }) { return "rank \(r) is already taken" }
        }
        return nil
    }

    /// With CURVE, a worker must announce the key its connection was authenticated with.
    private func keyProblem(_ h: ControlMessage.Hello, _ connectionKey: String?) -> String? {
        guard options.curve != nil else { return nil }
        guard let k = h.publicKey else { return "security is on: the worker must present its public key" }
        guard k == connectionKey else { return "the public key in HELLO is not the key this connection was authenticated with" }
        return nil
    }

    /// Requested ranks are honoured; the rest are given out in (host, pid) order, so the same
    /// set of workers always gets the same ranks.
    private func assignRanks() {
        var free = Set(0..<options.workers)
        for i in members.indices { if let r = members[i].hello.rank { members[i].rank = r; free.remove(r) } }
        let rest = members.indices.filter { members[$0].rank < 0 }
            .sorted { (members[$0].hello.host, members[$0].hello.pid) < (members[$1].hello.host, members[$1].hello.pid) }
        for (i, r) in zip(rest, free.sorted()) { members[i].rank = r }
    }

    /// WELCOME to every member (in rank order) of the current generation: the first one
    /// carries where the run starts from, later ones are restored from rank 0's state.
    private func welcomeAll() {
        let n = members.count, keys = members.compactMap(\.hello.publicKey)
        let first = generation == 0
        for i in members.indices {
            send(.welcome(.init(rank: i, world: n, peers: members.map(\.hello.endpoint), hosts: members.map(\.hello.host),
                                peerKeys: keys.count == n ? keys : [], runID: runID, job: options.job.configValue,
                                resume: first ? options.resume : nil,
                                initFrom: first && options.resume == nil ? options.initFrom : nil,
                                initPartial: first && options.initPartial, runDir: options.runDir,
                                ringSecret: options.curve == nil ? ringSecret : nil, generation: generation,
                                elastic: options.minWorkers != nil)), to: members[i].identity)
            members[i].lastSeen = monotonicSeconds()
        }
    }

    // MARK: supervision

    private func supervise() throws -> Outcome {
        let c = options.job.comm
        var lastPing = 0.0
        var lastMetrics: [Metric] = []
        var lastStep = 0
        while true {
            try checkExternal()
            try checkExits()
            let now = monotonicSeconds()
            if now - lastPing >= c.heartbeat {
                for m in members + joiners { send(.ping, to: m.identity) }
                lastPing = now
            }
            for j in joiners where now - j.lastSeen > c.heartbeatTimeout + 60 {
                log("worker \(j.hello.host) pid \(j.hello.pid) did not get ready to join: dropped")
                send(.reject(reason: "not ready to join within \(fmt(c.heartbeatTimeout + 60, 0)) s"), to: j.identity)
                joiners.removeAll { $0.identity == j.identity }
            }
            for m in members where !m.done && now - m.lastSeen > c.heartbeatTimeout {
                let reason = "no heartbeat for \(fmt(now - m.lastSeen, 1)) s (process hung, dead or unreachable)"
                guard options.minWorkers != nil else { throw Failure(rank: m.rank, host: m.hello.host, reason) }
                try lose(m.identity, reason)
            }
            if let r = regroup {
                if now > r.deadline {
                    for m in members where m.ready == nil { try lose(m.identity, "no answer to PAUSE within \(fmt(r.deadline - r.started, 0)) s") }
                }
                if members.allSatisfy({ $0.ready != nil }) { try formGeneration() }
            }
            // Short naps: a process the launcher saw exit is acted on within tens of milliseconds.
            guard let (id, msg, key) = try receive(timeoutMs: min(Int(c.heartbeat * 250) + 1, 20)) else { continue }
            try checkExits()
            guard let i = members.firstIndex(where: { $0.identity == id }) else {
                if let j = joiners.firstIndex(where: { $0.identity == id }) {
                    // A joiner: heartbeats while it loads the data, then READY.
                    joiners[j].lastSeen = monotonicSeconds()
                    if case .ready(_, 0, _, let endpoint) = msg, joiners[j].ready == nil {
                        joiners[j].ready = (nil, endpoint)
                        log("worker \(joiners[j].hello.host) pid \(joiners[j].hello.pid) joins (ring \(endpoint))")
                        if regroup == nil { startRegroup("a worker joins") }
                    }
                    continue
                }
                if case .hello(let h) = msg {
                    if options.minWorkers != nil {
                        if let reason = admissionProblem(h, joining: true) ?? keyProblem(h, key) {
                            log("rejected late worker \(h.host) pid \(h.pid): \(reason)")
                            send(.reject(reason: reason), to: id)
                        } else {
                            joiners.append(Member(identity: id, hello: h))
                            log("admitted worker \(h.host) pid \(h.pid): it joins once it has loaded the data")
                            send(.standby(job: options.job.configValue), to: id)
                        }
                        continue
                    }
                    log("rejected late worker \(h.host) pid \(h.pid): the job has already started")
                    send(.reject(reason: "the job has already started"), to: id)
                } else {
                    log("ignored \(msg.type) from unknown peer \(hex(id))")
                }
                continue
            }
            members[i].lastSeen = monotonicSeconds()
            let m = members[i]
            switch msg {
            case .heartbeat(let rank, _), .metrics(let rank, _, _, _, _), .done(let rank, _), .failed(let rank, _, _, _),
                 .ready(let rank, _, _, _):
                guard rank == m.rank else {
                    // Across a regroup a worker's last messages still carry its old rank.
                    if generation == 0 { log("ignored \(msg.type) claiming rank \(rank) from rank \(m.rank) (\(m.hello.host))") }
                    continue
                }
            default: break
            }
            switch msg {
            case .metrics(let rank, let epoch, let step, let values, let rate):
                let timing = values.filter { $0.name.hasPrefix("time/") }, evaluation = values.filter { !$0.name.hasPrefix("time/") }
                recordTiming(rank: rank, host: m.hello.host, epoch: epoch, step: step, timing, samplesPerSecond: rate)
                // Rank 0 speaks for the job; the others only report their timing.
                guard rank == 0 else { continue }
                lastMetrics = evaluation
                log("epoch \(epoch) (step \(step)): \(metricsLine(evaluation)) samples/s \(Int(rate))")
            case .done(_, let step):
                members[i].done = true
                lastStep = max(lastStep, step)
                if members.allSatisfy(\.done) {
                    for j in joiners { send(.reject(reason: "the job has finished"), to: j.identity) }
                    log("job \(options.job.name) finished: \(lastStep) steps" + (lastMetrics.isEmpty ? "" : ", " + metricsLine(lastMetrics)))
                    if let d = options.runDir { log("run directory \(d)") }
                    return .succeeded(steps: lastStep, lastMetrics: lastMetrics)
                }
            case .failed(_, let peer, let message, let recoverable):
                // A ring error names the peer that failed; blame it rather than the messenger.
                let culprit = peer.flatMap { p in members.first { $0.rank == p } } ?? m
                let reason = culprit.rank == m.rank ? message : "reported by rank \(m.rank): \(message)"
                guard options.minWorkers != nil && recoverable else { throw Failure(rank: culprit.rank, host: culprit.hello.host, reason) }
                // During a regroup the ring's errors are the pause's own echo.
                if regroup == nil { try lose(culprit.identity, reason) }
            case .ready(_, let g, let step, let endpoint):
                if g == generation && regroup != nil { members[i].ready = (step, endpoint) }
            case .hello:
                log("ignored a second HELLO from rank \(m.rank)")
            default:
                break
            }
        }
    }

    // MARK: elasticity

    /// Removes a worker from an elastic job (telling it, in case it still runs) and regroups
    /// the rest; below `minWorkers` the job fails naming it.
    private func lose(_ id: [UInt8], _ reason: String) throws {
        guard let i = members.firstIndex(where: { $0.identity == id }), let minimum = options.minWorkers else { return }
        let m = members.remove(at: i)
        send(.abort(rank: m.rank, host: m.hello.host, message: "removed from the job: \(reason)"), to: m.identity)
        let left = members.count
        guard left >= minimum, !members.contains(where: \.done) else {
            throw Failure(rank: m.rank, host: m.hello.host, reason + (left < minimum
                ? "; \(left) worker\(left == 1 ? "" : "s") left, fewer than --min-workers \(minimum)" : ""))
        }
        log("rank \(m.rank) (\(m.hello.host) pid \(m.hello.pid)) lost: \(reason); going on with \(left) worker\(left == 1 ? "" : "s")")
        if regroup == nil { startRegroup("rank \(m.rank) lost") }
    }

    private func startRegroup(_ why: String) {
        generation += 1
        let now = monotonicSeconds()
        regroup = (now, now + max(10, options.job.comm.timeout))
        for i in members.indices { members[i].ready = nil }
        for m in members { send(.pause(generation: generation), to: m.identity) }
        log("pausing the world for generation \(generation) (\(why))")
    }

    /// Every member has answered PAUSE: rank 0 of the new generation is a worker with the
    /// newest state (the others may be one step behind: a step some ranks finished when the
    /// loss cut the ring), then the rest in their old order, then the joiners.
    private func formGeneration() throws {
        // The newest step; among equals, the lowest rank (rank 0 stays rank 0 when it can).
        guard let best = members.filter({ $0.ready?.step != nil }).max(by: { ($0.ready!.step!, -$0.rank) < ($1.ready!.step!, -$1.rank) }) else {
            throw Failure(rank: nil, host: nil, "no worker holds the job's state")
        }
        let others = members.filter { $0.identity != best.identity }.sorted { $0.rank < $1.rank }
        let arriving = joiners.filter { $0.ready != nil }.sorted { ($0.hello.host, $0.hello.pid) < ($1.hello.host, $1.hello.pid) }
        joiners.removeAll { $0.ready != nil }
        var world = [best] + others + arriving
        for r in world.indices {
            world[r].rank = r
            if let e = world[r].ready?.endpoint { world[r].hello.endpoint = e }
            world[r].ready = nil
        }
        members = world
        welcomeAll()
        let n = world.count
        let took = monotonicSeconds() - (regroup?.started ?? monotonicSeconds())
        regroup = nil
        log("generation \(generation): \(n) worker\(n == 1 ? "" : "s")" + (arriving.isEmpty ? "" : " (\(arriving.count) joined)")
            + ", rank 0 is \(best.hello.host) pid \(best.hello.pid) at step \(best.ready?.step ?? 0) (agreed in \(fmt(took * 1000, 0)) ms)")
    }

    /// Appends a rank's epoch timing to the run directory's ranks.jsonl (the report's per-rank table).
    private func recordTiming(rank: Int, host: String, epoch: Int, step: Int, _ timing: [Metric], samplesPerSecond: Double) {
        guard let dir = options.runDir, !timing.isEmpty else { return }
        var fields: [ConfigEntry] = [.init(key: "rank", value: .int(rank)), .init(key: "host", value: .string(host)),
                                     .init(key: "epoch", value: .int(epoch)), .init(key: "step", value: .int(step))]
        fields += timing.map { ConfigEntry(key: String($0.name.dropFirst("time/".count)), value: .double($0.value)) }
        fields.append(.init(key: "samples_per_s", value: .double(samplesPerSecond)))
        try? FileIO.makeDirectories(dir)
        if let f = fopen("\(dir)/ranks.jsonl", "a") {
            fputs(JSON.string(.map(fields)) + "\n", f)
            fclose(f)
        }
    }

    // MARK: messaging

    /// The next message: sender identity, message, and (CURVE) the sender's authenticated key.
    private func receive(timeoutMs: Int) throws -> ([UInt8], ControlMessage, String?)? {
        guard try ZPoll.wait([ZPoll.Item(router, read: true)], timeoutMs: timeoutMs)[0].readable,
              let parts = try router.receiveMessages(dontWait: true) else { return nil }
        guard parts.count == 2 else {
            log("dropped a \(parts.count)-part message (expected identity + one frame)")
            return nil
        }
        let id = parts[0].bytes
        let from = members.first { $0.identity == id }.map { "rank \($0.rank) (\($0.hello.host))" } ?? "peer \(hex(id))"
        do {
            return (id, try ControlMessage.decode(parts[1].bytes, from: from), parts[1].property("User-Id"))
        } catch {
            log("dropped malformed \(error)")
            return nil
        }
    }

    private func send(_ msg: ControlMessage, to id: [UInt8]) {
        _ = try? router.send(id, more: true, dontWait: true)
        _ = try? router.send(msg.encode(), dontWait: true)
    }

    private func abort(rank: Int?, host: String?, _ message: String) -> Outcome {
        let who = rank.map { "rank \($0)" + (host.map { " (\($0))" } ?? "") } ?? "job"
        log("job failed: \(who): \(message)")
        for m in members where m.rank >= 0 { send(.abort(rank: rank, host: host, message: message), to: m.identity) }
        for m in members + joiners where m.rank < 0 { send(.reject(reason: "job failed: \(message)"), to: m.identity) }
        // Give libzmq a moment to deliver the aborts before the socket goes away.
        usleep(300_000)
        return .failed(rank: rank, host: host, message: message)
    }
}

/// `val_loss 0.3123 val_acc 0.8721`
func metricsLine(_ values: [Metric]) -> String { values.map { "\($0.name) \(fmt($0.value, 4))" }.joined(separator: " ") }

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

let ZMQ_ROUTER_MANDATORY_OPTION: Int32 = 33
