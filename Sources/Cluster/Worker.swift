import CSupport
import CZMQ
import Comm
import Config
import Glibc
import Synchronization
import TensorCore
import Train

/// One worker process: joins the coordinator, forms the ring, trains its shard, and keeps a
/// control thread that sends heartbeats, relays metrics and obeys ABORT. Every way out ends
/// the process: a worker never outlives its job.
public final class WorkerRuntime {
    public struct Options {
        public var coordinator: String
        /// Address this worker's ring input binds to (reachable from its ring predecessor).
        public var bind = "127.0.0.1"
        /// Rank to ask for (launcher, RANK or SLURM_PROCID).
        public var rank: Int?
        /// Hash of the worker's own job file, if it was given one.
        public var jobHash: String?
        public var rendezvousTimeout = 120.0
        /// CURVE: this worker's key pair and the coordinator's public key.
        public var curve: CurveKeyPair?
        public var coordinatorKey: String?
        /// Without CURVE: the secret the coordinator's control port asks for (`launch` passes
        /// its children one in RINGTRAIN_CONTROL_SECRET).
        public var controlSecret: String?
        public init(coordinator: String) { self.coordinator = coordinator }
    }

    public let options: Options
    private let context = ZContext()

    public init(_ options: Options) { self.options = options }

    /// Runs the worker to the end of the job; returns the process exit code.
    public func run() -> Int32 {
        var me = "worker"
        do {
            let dealer = try ZSocket(context, .dealer)
            if let curve = options.curve, let server = options.coordinatorKey { try curve.makeClient(dealer, server: server) }
            else if let secret = options.controlSecret { try dealer.usePlain(secret: secret) }
            let handshake = try ZMonitor(dealer, events: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                        | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_CONNECTED)
            try dealer.connect(options.coordinator)
            let listener = try makeListener()
            let hello = ControlMessage.Hello(host: hostName(), pid: Int(getpid()), endpoint: listener.endpoint,
                                             build: BuildInfo.id, jobHash: options.jobHash, rank: options.rank,
                                             publicKey: options.curve?.publicKey)
            try dealer.send(ControlMessage.hello(hello).encode())
            // A WELCOME, or (joining an elastic job under way) STANDBY with the job alone.
            let (welcome, jobValue) = try awaitWelcome(dealer, handshake)
            if let welcome { Self.authorize(listener, welcome) }
            listener.onRefused = { address, presented in
                report("worker pid \(getpid()): refused ring connections from \(address): \(presented) is not this run's (logged once per address)")
            }
            me = welcome.map { "rank \($0.rank)" } ?? "worker"
            let job = try JobConfig(jobValue, source: "job from coordinator \(options.coordinator)")
            let control = ControlLoop(dealer, rank: welcome?.rank ?? 0, comm: job.comm, coordinator: options.coordinator)
            control.start()
            do {
                try train(job: job, welcome: welcome, listener: listener, control: control)
                control.post(.done(rank: control.rank, step: control.step))
                control.finish(timeout: 3)
                return 0
            } catch {
                me = "rank \(control.rank)"
                control.post(.failed(rank: control.rank, peer: (error as? CommError)?.peer, message: "\(error)"))
                // The coordinator's ABORT names the rank at fault; the control thread prints it and exits.
                control.finish(timeout: 4)
                report("\(me): \(error)")
                return 1
            }
        } catch let e as Rejected {
            report("\(me): \(e.reason)")
            return 2
        } catch {
            report("\(me): \(error)")
            return 1
        }
    }

    struct Rejected: Error { let reason: String }

    /// A ring input on the bind address (a fresh one per generation). Without CURVE it admits
    /// only connections that present this run's secret.
    private func makeListener() throws -> RingListener {
        try RingListener(bind: "tcp://\(options.bind):*", curve: options.curve, plain: options.curve == nil)
    }

    /// Lets the ring's members in: their CURVE keys, or this run's secret.
    static func authorize(_ listener: RingListener, _ w: ControlMessage.Welcome) {
        listener.authorize(w.peerKeys)
        if let s = w.ringSecret { listener.authorize(secret: s) }
    }

    private func awaitWelcome(_ dealer: ZSocket, _ handshake: ZMonitor) throws -> (ControlMessage.Welcome?, ConfigValue) {
        let start = monotonicSeconds(), deadline = start + options.rendezvousTimeout
        // Until a TCP connection stands, say so after a second and count down every 10 s.
        var connected = false, lastNotice: Double?
        func reached() {
            if !connected && lastNotice != nil { report("reached the coordinator at \(options.coordinator)") }
            connected = true
        }
        while monotonicSeconds() < deadline {
            let now = monotonicSeconds()
            if !connected, now - start >= 1, lastNotice.map({ now - $0 >= 10 }) ?? true {
                report("waiting for the coordinator at \(options.coordinator): not reachable yet (retrying); giving up in \(Int((deadline - now).rounded())) s")
                lastNotice = now
            }
            if let ev = try handshake.next() {
                if ev.event == ZMQ_EVENT_CONNECTED { reached(); continue }
                throw Rejected(reason: ev.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                    ? "the coordinator at \(options.coordinator) refused this worker's CURVE key (not among its authorized keys)"
                    : "security handshake with the coordinator at \(options.coordinator) failed (CURVE keys or settings do not match)")
            }
            guard try ZPoll.wait([ZPoll.Item(dealer, read: true)], timeoutMs: 200)[0].readable,
                  let m = try dealer.receiveMessage(dontWait: true) else { continue }
            reached()   // an answer can arrive before the monitor's connection event
            switch try ControlMessage.decode(m.bytes, from: "coordinator \(options.coordinator)") {
            case .welcome(let w): return (w, w.job)
            case .standby(let job): return (nil, job)
            case .reject(let reason): throw Rejected(reason: "rejected by the coordinator at \(options.coordinator): \(reason)")
            case .abort(_, _, let message): throw Rejected(reason: "the coordinator aborted the job: \(message)")
            default: continue
            }
        }
        throw TrainError("no answer from the coordinator at \(options.coordinator) within \(Int(options.rendezvousTimeout)) s")
    }

    /// Trains to the end of the job. In an elastic job a ring failure (or the coordinator's
    /// PAUSE) does not end the process: the worker reports its last completed step and a fresh
    /// ring input (READY), and when the coordinator WELCOMEs the next generation it forms the
    /// new ring, where rank 0 broadcasts its state — the same restore as a resumed checkpoint,
    /// so the run goes on exactly as one resumed at that step in the new world.
    ///
    /// A worker joining an elastic job under way (`first` nil) loads the data, says it is ready
    /// and waits for the generation it joins.
    private func train(job: JobConfig, welcome first: ControlMessage.Welcome?, listener: RingListener, control: ControlLoop) throws {
        let data = try JobData.load(job)
        var listener = listener
        var welcome: ControlMessage.Welcome
        if let first { welcome = first } else {
            control.post(.ready(rank: 0, generation: 0, step: nil, endpoint: listener.endpoint))
            RunLog.info("data loaded; waiting to join the job at its next step boundary")
            guard let w = try control.awaitWelcome(generation: nil, timeout: job.comm.heartbeatTimeout + job.comm.timeout + 30) else {
                throw TrainError("the coordinator did not let this worker join")
            }
            Self.authorize(listener, w)
            control.rank = w.rank
            welcome = w
        }
        // The trainer whose state is this process's progress (the last one restored or trained),
        // and what rank 0 of a regrouped world hands the others.
        var held: Trainer?
        var state: [UInt8]?
        var recorder: RunRecorder?
        while true {
            do {
                try trainGeneration(job: job, data: data, welcome: welcome, listener: listener, control: control,
                                    state: &state, held: &held, recorder: &recorder)
                return
            } catch where welcome.elastic && (error is CommError || control.pausedGeneration > welcome.generation) {
                let rank = welcome.rank
                if control.pausedGeneration <= welcome.generation {
                    control.post(.failed(rank: rank, peer: (error as? CommError)?.peer, message: "\(error)", recoverable: true))
                    RunLog.debug("rank \(rank): \(error); waiting for the coordinator to regroup", rank: rank)
                }
                // Paused again before the next generation formed (another worker lost meanwhile): answer that one.
                var after = welcome.generation
                var next: RingListener, w: ControlMessage.Welcome
                while true {
                    let g = try control.awaitPause(after: after, timeout: job.comm.heartbeatTimeout + job.comm.timeout)
                    next = try makeListener()
                    control.post(.ready(rank: rank, generation: g, step: held?.state.globalStep, endpoint: next.endpoint))
                    if let welcome = try control.awaitWelcome(generation: g, timeout: job.comm.heartbeatTimeout + job.comm.timeout) {
                        w = welcome
                        break
                    }
                    after = g
                }
                Self.authorize(next, w)
                next.onRefused = listener.onRefused
                state = w.rank == 0 ? held?.snapshot() : nil
                welcome = w
                listener = next
                control.rank = w.rank
            }
        }
    }

    /// One generation of the world (the whole job when nothing fails).
    private func trainGeneration(job: JobConfig, data: JobData, welcome: ControlMessage.Welcome, listener: RingListener,
                                 control: ControlLoop, state: inout [UInt8]?, held: inout Trainer?, recorder: inout RunRecorder?) throws {
        var ring = RingCommunicator.Options(timeout: job.comm.timeout, connectTimeout: max(job.comm.timeout, 30),
                                            sharedMemory: job.comm.transport != .tcp, sharedBuffers: job.comm.transport == .auto,
                                            compression: job.comm.compression == .bf16 ? .bf16 : .none)
        ring.secret = welcome.ringSecret
        // Each generation's frames carry its own id: a late frame of the last ring is refused.
        let ringID = welcome.runID &+ UInt64(welcome.generation) &* 0x9E37_79B9_7F4A_7C15
        let comm = try RingCommunicator(listener: listener, rank: welcome.rank, peers: welcome.peers, runID: ringID,
                                        options: ring, peerKeys: welcome.peerKeys)
        control.canceller = comm.canceller
        if control.pausedGeneration > welcome.generation { comm.cancel() }   // paused while the ring formed
        let trainer = try Trainer(job: job, data: data, comm: comm)
        let t = comm.transport
        // Rank 0's set-up is progress; the others' is detail (printed with --verbose).
        let setup: (String) -> Void = welcome.rank == 0 ? trainer.log : { RunLog.debug($0, rank: welcome.rank) }
        setup("ring of \(welcome.world): rank \(welcome.rank) on \(welcome.hosts[welcome.rank]), edges in \(t.input) / out \(t.output)"
                    + (comm.isHierarchical ? ", gradients all-reduced in place per host, then across hosts"
                       : comm.sharesBuffers ? ", gradients all-reduced in place in shared memory" : "")
                    + (options.curve != nil ? ", CURVE encryption on" : "")
                    + (welcome.generation > 0 ? " (generation \(welcome.generation))" : ""))
        if welcome.generation > 0 {
            let c = try Checkpoint.share(state.map { .success($0) }, source: "rank 0's state (generation \(welcome.generation))", comm: comm)
            state = nil
            try trainer.restore(c)
            if welcome.rank == 0 { trainer.adoptWrittenCheckpoints(from: c) }
            setup("elastic: generation \(welcome.generation), \(welcome.world) worker\(welcome.world == 1 ? "" : "s"), "
                  + "going on from memory at step \(trainer.state.globalStep) (epoch \(trainer.state.epoch + 1)), "
                  + "lr \(fmt(trainer.learningRate(step: trainer.state.globalStep), 5))")
        } else if let path = welcome.resume {
            try trainer.restore(try Checkpoint.loadShared(path, comm: comm))
            trainer.log("resumed from \(path) at epoch \(trainer.state.epoch + 1), step \(trainer.state.globalStep)")
        } else if let path = welcome.initFrom {
            let r = try trainer.initialize(fromWeights: path, partial: welcome.initPartial)
            trainer.log("initialised weights from \(path)" + (welcome.initPartial
                ? "; new: \(r.fresh.isEmpty ? "none" : r.fresh.joined(separator: ", ")); not used: \(r.unused.isEmpty ? "none" : r.unused.joined(separator: ", "))" : ""))
        }
        held = trainer
        if welcome.generation > 0 {
            // The last generation's ring and trainer, and the state handed round, are freed by
            // now: give the heap back, so a long elastic job's footprint stays flat however
            // often it regroups.
            ringtrain_release_free_memory()
        }
        let rank = welcome.rank, generation = welcome.generation
        var firstStep = generation > 0
        trainer.onStep = { [unowned trainer] state, _ in
            control.step = state.globalStep
            if firstStep {
                firstStep = false
                trainer.log("elastic: step \(state.globalStep) done with \(welcome.world) worker\(welcome.world == 1 ? "" : "s") (generation \(generation))")
            }
        }
        let fault = Self.injectedFault
        trainer.beforeStep = { [unowned trainer] in
            if generation == 0, welcome.resume == nil, let f = fault, f.rank == rank, f.step == trainer.state.globalStep { raise(SIGKILL) }
            if control.pausedGeneration > generation { throw CommError(.cancelled, rank: rank, peer: nil, "paused by the coordinator") }
        }
        // Every rank reports its timing each epoch (the run's per-rank table); rank 0 also the evaluation.
        trainer.onEpoch = { [unowned trainer] state, ev, rate in
            let timing = trainer.lastEpochTiming.map(Self.values) ?? []
            control.post(.metrics(rank: rank, epoch: state.epoch, step: state.globalStep,
                                  values: (rank == 0 ? ev.map(Self.values) ?? [] : []) + timing, samplesPerSecond: rate))
        }
        // Rank 0 records the run (on its host, at the path the coordinator chose).
        var checkpointDir: String?
        if rank == 0, let path = welcome.runDir {
            let run = RunDirectory(path: path)
            if recorder == nil { recorder = try RunRecorder(run: run, job: job) }
            trainer.attach(recorder!)
            checkpointDir = run.checkpointDirectory(job)
        }
        let summary = try trainer.run(checkpointDir: checkpointDir)
        // The held-out test split, evaluated once at the end (epochs were evaluated on validation).
        if rank == 0, let t = summary.test {
            control.post(.metrics(rank: 0, epoch: summary.state.epoch, step: summary.state.globalStep, values: Self.values(t),
                                  samplesPerSecond: summary.samplesPerSecond))
        }
    }

    /// `RINGTRAIN_TEST_KILL=RANK:STEP`: the worker that is rank RANK at the start of a fresh run
    /// (not a resumed one) kills itself (SIGKILL) just before step STEP — a fault at an exact
    /// step, for the elastic tests.
    static var injectedFault: (rank: Int, step: Int)? {
        guard let e = getenv("RINGTRAIN_TEST_KILL") else { return nil }
        let parts = String(cString: e).split(separator: ":").compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}

extension WorkerRuntime {
    /// An evaluation as named values for METRICS: val_loss, val_acc, …
    static func values(_ e: Evaluation) -> [Metric] {
        [Metric("\(e.split)_loss", e.loss)] + e.metrics.map { Metric("\(e.split)_\($0.name)", $0.value) }
    }

    /// An epoch's timing as METRICS values (names start with "time/": not evaluation metrics).
    static func values(_ t: Trainer.EpochTiming) -> [Metric] {
        [Metric("time/step_ms", t.msPerStep)] + (t.allreduceSeconds.map { [Metric("time/allreduce_ms", $0 * 1000)] } ?? [])
            + (t.hiddenShare.map { [Metric("time/hidden_share", $0)] } ?? [])
    }
}

/// The worker's control thread: it alone uses the DEALER socket once training starts.
final class ControlLoop: @unchecked Sendable {
    private let dealer: ZSocket
    private let rankValue: Atomic<Int>
    private let comm: JobConfig.Comm
    private let coordinator: String
    private let outbox = Mutex<[ControlMessage]>([])
    private let stepValue = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// Elastic jobs: the newest generation the coordinator has paused the world for (0: none),
    /// the ring to cancel when it does, and the WELCOME of the generation that follows.
    private let paused = Atomic<Int>(0)
    private let cancelRing = Mutex<(@Sendable () -> Void)?>(nil)
    private let welcomes = Mutex<[ControlMessage.Welcome]>([])

    init(_ dealer: ZSocket, rank: Int, comm: JobConfig.Comm, coordinator: String) {
        self.dealer = dealer
        rankValue = Atomic(rank)
        self.comm = comm
        self.coordinator = coordinator
    }

    var step: Int {
        get { stepValue.load(ordering: .relaxed) }
        set { stepValue.store(newValue, ordering: .relaxed) }
    }

    /// This worker's rank in the current generation (heartbeats carry it).
    var rank: Int {
        get { rankValue.load(ordering: .relaxed) }
        set { rankValue.store(newValue, ordering: .relaxed) }
    }

    func post(_ m: ControlMessage) { outbox.withLock { $0.append(m) } }

    var pausedGeneration: Int { paused.load(ordering: .acquiring) }

    /// Cancels the current ring when a PAUSE arrives (set by the training thread per generation).
    var canceller: (@Sendable () -> Void)? {
        get { cancelRing.withLock { $0 } }
        set { cancelRing.withLock { $0 = newValue } }
    }

    /// Blocks until the coordinator pauses the world past `generation`; returns the new one.
    /// A coordinator that never does (the job is failing) ends the process with ABORT first.
    func awaitPause(after generation: Int, timeout: Double) throws -> Int {
        let deadline = monotonicSeconds() + timeout
        while pausedGeneration <= generation {
            guard monotonicSeconds() < deadline else { throw TrainError("the coordinator did not regroup within \(fmt(timeout, 0)) s") }
            usleep(5_000)
        }
        return pausedGeneration
    }

    /// Blocks until the coordinator's WELCOME to `generation` (nil: the first that comes)
    /// arrives; nil if the world is paused again first (answer that pause).
    func awaitWelcome(generation: Int?, timeout: Double) throws -> ControlMessage.Welcome? {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let w = welcomes.withLock({ q in q.firstIndex { generation == nil || $0.generation == generation }.map { q.remove(at: $0) } }) {
                return w
            }
            if let g = generation, pausedGeneration > g { return nil }
            guard monotonicSeconds() < deadline else {
                throw TrainError("the coordinator did not form " + (generation.map { "generation \($0)" } ?? "a generation") + " within \(fmt(timeout, 0)) s")
            }
            usleep(5_000)
        }
    }

    func start() { Threads.detach { [self] in loop() } }

    /// Lets the loop send what is queued, then stop (or gives up after `timeout`).
    func finish(timeout: Double) {
        stopping.store(true, ordering: .releasing)
        let deadline = monotonicSeconds() + timeout
        while !stopped.load(ordering: .acquiring) && monotonicSeconds() < deadline { usleep(10_000) }
    }

    private func loop() {
        var lastPing = monotonicSeconds()
        var lastBeat = 0.0
        while true {
            let now = monotonicSeconds()
            if now - lastBeat >= comm.heartbeat {
                _ = try? dealer.send(ControlMessage.heartbeat(rank: rank, step: step).encode(), dontWait: true)
                lastBeat = now
            }
            let queued = outbox.withLock { q -> [ControlMessage] in defer { q.removeAll() }; return q }
            // A full send queue (a burst of METRICS from short epochs) keeps the rest for the next
            // round instead of dropping them: a lost DONE would read as a dead worker.
            for (i, m) in queued.enumerated() where (try? dealer.send(m.encode(), dontWait: true)) != true {
                outbox.withLock { $0.insert(contentsOf: queued[i...], at: 0) }
                break
            }
            if stopping.load(ordering: .acquiring) && queued.isEmpty && outbox.withLock({ $0.isEmpty }) {
                // Linger briefly so an ABORT answering a FAILED can still arrive.
                if let m = next(timeoutMs: 300) { handle(m, &lastPing) }
                stopped.store(true, ordering: .releasing)
                return
            }
            if now - lastPing > comm.heartbeatTimeout {
                exitNow("rank \(rank): the coordinator at \(coordinator) has been silent for \(fmt(now - lastPing, 1)) s; stopping")
            }
            if let m = next(timeoutMs: 50) { handle(m, &lastPing) }
        }
    }

    private func next(timeoutMs: Int) -> ControlMessage? {
        guard (try? ZPoll.wait([ZPoll.Item(dealer, read: true)], timeoutMs: timeoutMs))?[0].readable == true,
              let m = try? dealer.receiveMessage(dontWait: true) else { return nil }
        do { return try ControlMessage.decode(m.bytes, from: "coordinator \(coordinator)") } catch {
            report("rank \(rank): dropped \(error)")
            return nil
        }
    }

    private func handle(_ m: ControlMessage, _ lastPing: inout Double) {
        switch m {
        case .ping: lastPing = monotonicSeconds()
        case .abort(let r, let host, let message):
            let who = r.map { "rank \($0)" + (host.map { " (\($0))" } ?? "") } ?? "the job"
            exitNow("rank \(rank): job aborted by the coordinator: \(who) failed: \(message)")
        case .reject(let reason):
            exitNow("rank \(rank): rejected by the coordinator: \(reason)")
        case .pause(let g):
            if g > paused.load(ordering: .relaxed) {
                paused.store(g, ordering: .releasing)
                canceller?()
            }
        case .welcome(let w) where w.generation > 0:
            welcomes.withLock { $0.append(w) }
        default: break
        }
    }

    private func exitNow(_ message: String) -> Never {
        report(message)
        _exit(1)
    }
}

/// Writes an error line to stderr (unbuffered) and flushes stdout first, so lines stay in order.
func report(_ s: String) {
    fflush(stdout)
    fputs(s + "\n", stderr)
}
