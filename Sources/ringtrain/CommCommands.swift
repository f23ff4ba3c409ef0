import ArgumentParser
import Cluster
import Comm
import Glibc
import TensorCore
import Train

/// Byte sizes written like `4KiB`, `64MiB`, `1000003` (bytes).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    let bytes: Int
    init?(argument: String) {
        let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000),
                                      ("MB", 1_000_000), ("KB", 1000), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        var mult = 1, num = argument
        for (u, m) in units where argument.hasSuffix(u) { mult = m; num = String(argument.dropLast(u.count)); break }
        guard let v = Int(num), v >= 0 else { return nil }
        bytes = v * mult
    }
    var description: String {
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
        return "\(bytes)B"
    }
}

/// Starts `world` copies of `ringtrain comm-worker` around a rendezvous and waits for them.
/// Returns the exit code of each rank. `hosts[r]` is the address rank r binds its ring input to,
/// `wrap` a command prefix per rank (`{rank}` replaced), e.g. `ip netns exec rt-h{rank}` to put
/// each rank on its own emulated host.
/// `ranksPerHost` > 0 gives consecutive ranks the same RINGTRAIN_HOST_ID, so one machine acts
/// as world / ranksPerHost hosts.
func launchCommWorkers(world: Int, workerArguments: [String], timeout: Double,
                       rendezvousHost: String = "127.0.0.1", hosts: [String] = [], wrap: String = "",
                       ranksPerHost: Int = 0, onStarted: ((ProcessGroup) -> Void)? = nil) throws -> [Int32] {
    let ctx = ZContext()
    let router = try ZSocket(ctx, .router)
    try router.bind("tcp://\(rendezvousHost):*")
    let group = ProcessGroup()
    let exe = ProcessGroup.currentExecutable
    for r in 0..<world {
        let prefix = wrap.split(separator: " ").map {
            $0.replacingOccurrences(of: "{rank}", with: String(r))
                .replacingOccurrences(of: "{host}", with: String(ranksPerHost > 0 ? r / ranksPerHost : r))
        }
        let bind = hosts.isEmpty ? [] : ["--bind", hosts[r % hosts.count]]
        try group.start(prefix + [exe, "comm-worker", "--rendezvous", router.lastEndpoint, "--rank", String(r),
                                  "--world", String(world)] + bind + workerArguments,
                        environment: ["OPENBLAS_NUM_THREADS": "1"].merging(
                            ranksPerHost > 0 ? ["RINGTRAIN_HOST_ID": "host\(r / ranksPerHost)"] : [:]) { $1 },
                        name: "rank \(r)", prefix: "")
    }
    do {
        try Rendezvous.serve(router, world: world, runID: UInt64.random(in: 1...UInt64.max), timeout: timeout)
    } catch {
        group.stopAll()
        throw error
    }
    onStarted?(group)
    var codes = [Int32](repeating: -1, count: world)
    while let (child, code) = group.waitAny(timeout: 3600) {
        if let r = group.children.firstIndex(where: { $0.pid == child.pid }) { codes[r] = code }
    }
    group.flush()
    return codes
}

struct BenchAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Ring all-reduce bandwidth between local worker processes (nccl-tests columns).",
        discussion: "algbw = size / time; busbw = algbw · 2(N−1)/N. Every result is checked against the plain sum.")

    @Option(help: "Worker processes.") var workers = 2
    @Option(name: .customLong("size"), help: "Buffer size, e.g. 4KiB, 64MiB (repeatable).") var sizes: [ByteSize] = []
    @Option(help: "Timed iterations per size (default: enough for ~0.5 s, at least 5).") var iters: Int?
    @Option(help: "Frame size.") var chunk = ByteSize(argument: "512KiB")!
    @Option(help: "Address the workers bind their ring inputs to (repeat once per rank to give each its own).")
    var bind: [String] = ["127.0.0.1"]
    @Option(help: "Address the rendezvous listens on (must be reachable from every worker).")
    var rendezvousHost = "127.0.0.1"
    @Option(help: "Command prefix for each worker, {rank} and {host} (rank / --ranks-per-host) replaced (e.g. \"ip netns exec rt-h{rank}\").")
    var wrap = ""
    @Option(help: "auto: shared memory between processes on one host, TCP otherwise; tcp: TCP only.")
    var transport = "auto"
    @Option(help: """
        shared: buffers from the communicator (as the trainer's gradients), all-reduced in place \
        when every worker is on one host; private: each worker's own memory, through the ring.
        """)
    var buffers = "shared"
    @Option(help: "none, or bf16: buckets travel the ring as bfloat16 (results checked to bf16 precision).")
    var compression = "none"
    @Option(help: "Act as if every N consecutive workers shared a host (0: the real topology).")
    var ranksPerHost = 0

    func validate() throws {
        guard workers >= 2 else { throw ValidationError("--workers must be at least 2") }
        guard ["auto", "tcp"].contains(transport) else { throw ValidationError("--transport must be auto or tcp") }
        guard ["shared", "private"].contains(buffers) else { throw ValidationError("--buffers must be shared or private") }
        guard ["none", "bf16"].contains(compression) else { throw ValidationError("--compression must be none or bf16") }
        guard ranksPerHost >= 0 else { throw ValidationError("--ranks-per-host must be 0 or more") }
    }

    @Option(help: .hidden) var extra: [String] = []

    func run() throws {
        let list = sizes.isEmpty ? ["4KiB", "1MiB", "4MiB", "16MiB", "64MiB"].map { ByteSize(argument: $0)! } : sizes
        var args = ["--mode", "bench", "--chunk", String(chunk.bytes), "--transport", transport, "--buffers", buffers,
                    "--compression", compression]
        for s in list { args += ["--size", String(s.bytes)] }
        if let i = iters { args += ["--iters", String(i)] }
        args += extra
        let codes = try launchCommWorkers(world: workers, workerArguments: args, timeout: 60,
                                          rendezvousHost: rendezvousHost, hosts: bind, wrap: wrap, ranksPerHost: ranksPerHost)
        if codes.contains(where: { $0 != 0 }) { throw CLIError("worker exit codes \(codes)") }
    }
}

/// One rank of a communication benchmark or check (started by `bench allreduce` and tests).
struct CommWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "comm-worker", abstract: "One rank of a communication run.",
                                                    shouldDisplay: false)

    @Option var rendezvous: String
    @Option var rank: Int
    @Option var world: Int
    @Option var mode = "check"
    @Option(name: .customLong("size")) var sizes: [Int] = []
    @Option var iters: Int?
    @Option var chunk = 512 << 10
    @Option var timeout = 30.0
    @Option var bind = "127.0.0.1"
    @Option var transport = "auto"
    @Option var shmSlots = 16
    @Option var shmChunk = 128 << 10
    @Option var buffers = "private"
    @Option var compression = "none"
    /// Tests of the tooling: this rank corrupts its first result, so its check must fail.
    @Option(help: .hidden) var failRank: Int?

    func validate() throws {
        guard ["check", "bench", "soak"].contains(mode) else { throw ValidationError("--mode must be check, bench or soak") }
        guard ["auto", "tcp"].contains(transport) else { throw ValidationError("--transport must be auto or tcp") }
        guard ["shared", "private"].contains(buffers) else { throw ValidationError("--buffers must be shared or private") }
        guard ["none", "bf16"].contains(compression) else { throw ValidationError("--compression must be none or bf16") }
    }

    func run() throws {
        ProcessGroup.bindToParent()
        let listener = try RingListener(bind: "tcp://\(bind):*")
        let (peers, runID) = try Rendezvous.join(rendezvous, rank: rank, ringEndpoint: listener.endpoint, timeout: timeout)
        var options = RingCommunicator.Options(timeout: timeout, connectTimeout: timeout, chunkBytes: chunk,
                                               sharedMemory: transport != "tcp")
        options.sharedMemorySlots = shmSlots
        options.sharedMemoryChunkBytes = shmChunk
        options.compression = compression == "bf16" ? .bf16 : .none
        let comm = try RingCommunicator(listener: listener, rank: rank, peers: peers, runID: runID, options: options)
        do {
            switch mode {
            case "bench": try bench(comm)
            case "soak": try soak(comm)
            default: try check(comm)   // "check"; validate() allows nothing else
            }
        } catch let e as CommError {
            print("COMMERROR rank=\(rank) peer=\(e.peer.map(String.init) ?? "-") reason=\(e.reason.rawValue) t=\(monotonicSeconds()) \(e)")
            fflush(stdout)
            Glibc.exit(3)
        }
    }

    /// Integer-valued test data: sums are exact in Float for these magnitudes.
    static func value(_ rank: Int, _ i: Int) -> Float { Float((i &* 7 &+ rank &* 13) % 101 - 50) }

    /// A buffer of n floats: the communicator's (shared, reduced in place when it can) or private.
    /// Every rank allocates the same sizes in the same order.
    func buffer(_ comm: RingCommunicator, _ n: Int) throws -> (FloatStorage, UnsafeMutableBufferPointer<Float>) {
        let s = buffers == "shared" ? try comm.allocateBuffer(count: n) : FloatStorage(count: n)
        return (s, UnsafeMutableBufferPointer(start: s.data, count: n))
    }

    func fill(_ b: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<b.count { b[i] = Self.value(rank, i) }
    }

    /// The plain sum over ranks of element i.
    func expectedSum(_ i: Int) -> Float { (0..<world).reduce(0) { $0 + Self.value($1, i) } }

    /// A summing all-reduce as a gradient bucket (compressed if asked) or exact.
    func reduce(_ comm: RingCommunicator, _ b: UnsafeMutableBufferPointer<Float>) throws {
        if compression == "bf16" { try comm.allReduceAsync(b, mean: false, bucket: 0).wait() } else { try comm.allReduceSum(b) }
    }

    /// Exact, or with bf16 compression within what N roundings to 8 significant bits allow.
    func verifySum(_ b: UnsafeMutableBufferPointer<Float>, what: String) throws {
        for i in 0..<b.count {
            let s = expectedSum(i)
            let slack = compression == "bf16" ? Float(world) / 128 * (0..<world).reduce(0) { $0 + abs(Self.value($1, i)) } : 0
            if abs(b[i] - s) > slack { throw CLIError("rank \(rank): \(what): element \(i) is \(b[i]), expected \(s)") }
        }
    }

    func bench(_ comm: RingCommunicator) throws {
        if rank == 0 {
            let t = comm.transport
            let how = buffers == "shared" && comm.sharesBuffers
                ? "shared buffers reduced in place" + (comm.isHierarchical ? " per host, a ring per local index across hosts" : "")
                : "ring, rank 0 edges: in \(t.input), out \(t.output), chunk \(chunk) bytes"
                    + (compression == "bf16" ? ", bf16 on the wire" : "")
            print("# workers \(world), \(how); algbw = S/t, busbw = algbw·2(N−1)/N")
            print("RESULT-HEADER size time_ms algbw_GBps busbw_GBps check")
        }
        for bytes in sizes {
            let (storage, b) = try buffer(comm, bytes / 4)
            defer { withExtendedLifetime(storage) {} }
            fill(b)
            try reduce(comm, b)
            try verifySum(b, what: "all-reduce of \(bytes) bytes")
            // Warm-up sets the iteration count so each size runs about half a second.
            let t0 = monotonicSeconds()
            try reduce(comm, b)
            let once = max(monotonicSeconds() - t0, 1e-6)
            var reps = iters ?? max(5, min(2000, Int(0.5 / once)))
            var agreed = [Float(reps)]
            try agreed.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
            reps = Int(agreed[0])
            try comm.barrier()
            let start = monotonicSeconds()
            for _ in 0..<reps { try reduce(comm, b) }
            let t = (monotonicSeconds() - start) / Double(reps)
            if rank == 0 {
                let alg = Double(bytes) / t / 1e9
                let bus = alg * 2 * Double(world - 1) / Double(world)
                print("RESULT size=\(bytes) time_ms=\(fmt(t * 1e3, 3)) algbw_GBps=\(fmt(alg, 2)) busbw_GBps=\(fmt(bus, 2)) check=ok")
                fflush(stdout)
            }
        }
    }

    func check(_ comm: RingCommunicator) throws {
        // Whether every buffer really was a shared segment (a full /dev/shm gives private ones).
        var allShared = true
        for n in sizes {
            let (storage, v) = try buffer(comm, n)
            defer { withExtendedLifetime(storage) {} }
            if n > 0 { allShared = allShared && storage.isExternal }
            fill(v)
            try reduce(comm, v)
            if failRank == rank, n > 0 { v[0] += 1 }
            try verifySum(v, what: "all-reduce of \(n) floats")
            fill(v)
            try comm.allReduceMean(v)
            for i in 0..<n {
                let s = expectedSum(i)
                if abs(v[i] - s / Float(world)) > 1e-5 * max(1, abs(s)) {
                    throw CLIError("rank \(rank): mean of \(n): element \(i) is \(v[i]), expected \(s / Float(world))")
                }
            }
            for root in 0..<world {
                for i in 0..<n { v[i] = rank == root ? Self.value(root, i) : .nan }
                try comm.broadcast(v, root: root)
                for i in 0..<n where v[i] != Self.value(root, i) {
                    throw CLIError("rank \(rank): broadcast of \(n) from \(root): element \(i) is \(v[i])")
                }
            }
        }
        try comm.barrier()
        let g = try comm.allGather(Array("rank-\(rank)".utf8))
        guard g.map({ String(decoding: $0, as: UTF8.self) }) == (0..<world).map({ "rank-\($0)" }) else {
            throw CLIError("rank \(rank): all-gather returned \(g)")
        }
        print("CHECK OK rank=\(rank) transport=\(comm.transport.input)/\(comm.transport.output) "
              + "in-place=\(buffers == "shared" && comm.sharesBuffers && allShared) hierarchical=\(buffers == "shared" && comm.isHierarchical) sizes=\(sizes)")
    }

    /// All-reduces one buffer until something fails (for fault tests).
    func soak(_ comm: RingCommunicator) throws {
        let (storage, b) = try buffer(comm, sizes.first ?? (1 << 20))
        defer { withExtendedLifetime(storage) {} }
        var k = 0
        print("SOAK START rank=\(rank)")
        fflush(stdout)
        while iters.map({ k < $0 }) ?? true {
            fill(b)
            try reduce(comm, b)
            k += 1
        }
        print("SOAK DONE rank=\(rank) iterations=\(k)")
    }
}

/// Starts local comm workers for tests and reports each rank's exit code; can SIGKILL one rank
/// partway through to exercise failure handling.
struct CommTest: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "comm-test", abstract: "Multi-process communication check.",
                                                    shouldDisplay: false)

    @Option var workers = 2
    @Option var mode = "check"
    @Option(name: .customLong("size")) var sizes: [Int] = []
    @Option var iters: Int?
    @Option var chunk = 512 << 10
    @Option var timeout = 30.0
    @Option var killRank: Int?
    @Option var killAfter = 1.0
    @Option var transport = "auto"
    @Option var buffers = "private"
    @Option var compression = "none"
    @Option var ranksPerHost = 0
    @Option var failRank: Int?

    func run() throws {
        var args = ["--mode", mode, "--chunk", String(chunk), "--timeout", String(timeout), "--transport", transport,
                    "--buffers", buffers, "--compression", compression]
        if let f = failRank { args += ["--fail-rank", String(f)] }
        for s in sizes { args += ["--size", String(s)] }
        if let i = iters { args += ["--iters", String(i)] }
        let codes = try launchCommWorkers(world: workers, workerArguments: args, timeout: 60, ranksPerHost: ranksPerHost) { group in
            guard let k = killRank else { return }
            Threads.sleep(seconds: killAfter)
            let victim = group.children[k]
            kill(victim.pid, SIGKILL)
            print("KILLED rank=\(k) t=\(monotonicSeconds())")
            fflush(stdout)
        }
        for (r, c) in codes.enumerated() { print("EXIT rank=\(r) code=\(c)") }
        // A check fails when any worker does (a kill run's failures are the point: the caller reads them).
        let failed = codes.indices.filter { codes[$0] != 0 }
        if killRank == nil, !failed.isEmpty {
            throw CLIError("comm-test: workers failed: " + failed.map { "rank \($0) exited with code \(codes[$0])" }.joined(separator: ", "))
        }
    }
}
