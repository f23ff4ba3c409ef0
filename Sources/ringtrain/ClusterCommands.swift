import ArgumentParser
import Cluster
import Formats
import Glibc
import TensorCore
import Train

struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Train with a coordinator and N worker processes on this host (like torchrun --nproc-per-node).",
        discussion: "Binds loopback only. Each worker gets cores/N BLAS threads; output lines carry a [rank r] prefix. "
            + "Ctrl-C or a failure stops every process; --max-restarts restarts the job from its newest checkpoint. "
            + "With --min-workers the job is elastic: when a worker dies the others go on from memory (no step lost) "
            + "and a replacement process joins them at the next step boundary (each replacement uses one of --max-restarts).")

    @OptionGroup var options: JobOptions
    @OptionGroup var logging: LogOptions
    @Option(help: "Worker processes.") var workers = 2
    @Option(help: "Restart the whole job from the newest checkpoint up to this many times after a failure.")
    var maxRestarts = 0
    @Option(help: "Elastic: go on without a dead worker while at least this many remain (1 to --workers).")
    var minWorkers: Int?
    @Option(help: ArgumentHelp("Resume from a checkpoint, a run directory or 'last' (any world size).", valueName: "ckpt|run-dir|last"))
    var resume: String?
    @Option(name: .long, help: "Start a fresh run from the weights in this safetensors file.") var initFrom: String?
    @Flag(name: .long, help: "With --init-from: take only the tensors whose names and shapes match; report the rest.")
    var initPartial = false
    @Option(help: "BLAS threads per worker (default: the cores shared out).") var threads: Int?

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must be 0 or more") }
        try checkMinWorkers(minWorkers, workers: workers)
        if resume != nil && initFrom != nil { throw ValidationError("use either --resume or --init-from, not both") }
        if initPartial && initFrom == nil { throw ValidationError("--init-partial needs --init-from") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        logging.apply()
        let resumed = try wrapErrors { try resume.map { try RunDirectory.resolveResume($0) } }
        let checkpoint = try wrapErrors { try resumed.map { try Checkpoint.load($0.checkpoint) } }
        let job = try wrapErrors { try options.resolve(base: checkpoint?.job) }
        try wrapErrors { try checkDataset(job) }
        if let w = initFrom, !FileIO.exists(w) { throw ValidationError("--init-from \(w): no such file or run directory") }
        let weights = try wrapErrors { try initFrom.map(checkpointPath) }
        let run = try wrapErrors { try options.runDirectory(for: job, resuming: resumed?.run) }
        try wrapErrors { try run.writeJob(job) }
        RunLog.info("[launch] run directory \(run.path)")
        let launcher = LocalLauncher(job: job, workers: workers, maxRestarts: maxRestarts, resume: resumed?.checkpoint)
        launcher.runDir = run
        launcher.workerFlags = logging.flags
        launcher.initFrom = weights
        launcher.initPartial = initPartial
        launcher.threads = threads
        launcher.minWorkers = minWorkers
        let code = launcher.run()
        RunLog.info("[launch] run directory \(run.path)")
        if code != 0 { throw ExitCode(code) }
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator of a job whose workers run on other hosts (ringtrain worker).")

    @OptionGroup var options: JobOptions
    @OptionGroup var logging: LogOptions
    @Option(help: "Endpoint to listen on, e.g. tcp://0.0.0.0:29500.") var listen = "tcp://0.0.0.0:29500"
    @Option(help: "Number of workers to wait for.") var workers: Int
    @Option(help: ArgumentHelp("Elastic: go on without lost workers while at least this many remain, and admit workers that arrive later (ringtrain worker --coordinator …) up to --workers."))
    var minWorkers: Int?
    @Option(help: ArgumentHelp("Resume every worker from a checkpoint, a run directory or 'last' (read by rank 0).", valueName: "ckpt|run-dir|last"))
    var resume: String?
    @Option(name: .long, help: "Every worker starts a fresh run from the weights in this file (a path each worker can read).")
    var initFrom: String?
    @Flag(name: .long, help: "With --init-from: take only the tensors whose names and shapes match; report the rest.")
    var initPartial = false
    @Option(help: "Seconds to wait for every worker to arrive.") var rendezvousTimeout = 300.0
    @OptionGroup var security: SecurityOptions

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        try checkMinWorkers(minWorkers, workers: workers)
        if resume != nil && initFrom != nil { throw ValidationError("use either --resume or --init-from, not both") }
        if initPartial && initFrom == nil { throw ValidationError("--init-partial needs --init-from") }
        if security.curveKey != nil && security.authorizedKeys.isEmpty {
            throw ValidationError("--curve-key needs --authorized-keys (the workers' public keys)")
        }
    }

    func run() throws {
        logging.apply()
        let resumed = try wrapErrors { try resume.map { try RunDirectory.resolveResume($0) } }
        let job = try wrapErrors { try options.resolve() }
        let run = try wrapErrors { try options.runDirectory(for: job, resuming: resumed?.run) }
        try wrapErrors { try run.writeJob(job) }
        var o = Coordinator.Options(listen: listen, workers: workers, job: job, resume: resumed?.checkpoint)
        o.runDir = run.path
        o.initFrom = try wrapErrors { try initFrom.map(checkpointPath) }
        o.initPartial = initPartial
        o.rendezvousTimeout = rendezvousTimeout
        o.minWorkers = minWorkers
        if let k = security.curveKey {
            o.curve = try wrapErrors { try KeyFiles.loadPair(k) }
            o.authorizedKeys = try wrapErrors { try KeyFiles.loadAuthorized(security.authorizedKeys) }
        }
        let c = try wrapErrors { try Coordinator(o) }
        if case .failed = c.run() { throw ExitCode(1) }
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one worker; it learns its rank, peers and job from the coordinator.",
        discussion: """
            The coordinator comes from --coordinator, else MASTER_ADDR/MASTER_PORT (torchrun style), \
            else the first host of SLURM_JOB_NODELIST (port RINGTRAIN_PORT or 29500). The rank comes \
            from --rank, RANK or SLURM_PROCID. Rank 0 started with a job file and WORLD_SIZE or \
            SLURM_NTASKS also hosts the coordinator, as torchrun's rank 0 does.
            """)

    @Option(help: "Coordinator endpoint, e.g. tcp://10.0.0.1:29500.") var coordinator: String?
    @Option(help: "Address for this worker's ring input (default: the address that reaches the coordinator).")
    var bind: String?
    @Option(help: "Rank to ask for.") var rank: Int?
    @OptionGroup var logging: LogOptions
    @Option(help: "Seconds to wait for the coordinator's answer (its WELCOME) before giving up.") var rendezvousTimeout = 120.0
    @Argument(help: "Job file: checked against the coordinator's (and used when this rank hosts the coordinator).")
    var job: String?
    @OptionGroup var security: SecurityOptions

    func validate() throws {
        if (security.curveKey == nil) != (security.coordinatorKey == nil) {
            throw ValidationError("--curve-key and --coordinator-key go together")
        }
        guard rendezvousTimeout > 0 else { throw ValidationError("--rendezvous-timeout must be positive, got \(rendezvousTimeout)") }
    }

    func run() throws {
        ProcessGroup.bindToParent()
        logging.apply()
        let env = try wrapErrors { try LaunchEnvironment.current() }
        let jobConfig = try wrapErrors { try job.map { try JobConfig.load(path: $0) } }
        let myRank = rank ?? env.rank
        var endpoint = coordinator ?? env.coordinatorEndpoint
        // torchrun-style rank 0 hosts the coordinator.
        if coordinator == nil, myRank == 0, let j = jobConfig, let world = env.worldSize {
            let port = env.coordinatorPort ?? LaunchEnvironment.defaultPort
            var co = Coordinator.Options(listen: "tcp://0.0.0.0:\(port)", workers: world, job: j)
            co.runDir = try wrapErrors { try RunDirectory.create(for: j).path }
            let c = try wrapErrors { try Coordinator(co) }
            Threads.detach {
                let outcome = c.run()
                if case .failed = outcome { Glibc.exit(1) }
            }
            endpoint = "tcp://127.0.0.1:\(port)"
        }
        guard let ep = endpoint else {
            throw ValidationError("no coordinator: pass --coordinator tcp://HOST:PORT, or set MASTER_ADDR/MASTER_PORT or run under SLURM")
        }
        var o = WorkerRuntime.Options(coordinator: ep)
        o.rank = myRank
        o.jobHash = jobConfig?.hash
        o.rendezvousTimeout = rendezvousTimeout
        // launch hands its children the coordinator's secret in the environment; take it out
        // so nothing this worker starts inherits it.
        if let s = getenv("RINGTRAIN_CONTROL_SECRET") {
            o.controlSecret = String(cString: s)
            unsetenv("RINGTRAIN_CONTROL_SECRET")
        }
        // The ring input must be reachable from the other hosts: bind to the address that reaches
        // the coordinator's host (for rank 0 hosting it, the scheduler's address for this host).
        let towards = (coordinator == nil ? env.coordinatorHost : nil) ?? coordinatorHost(ep)
        o.bind = bind ?? towards.flatMap { localAddress(toward: $0) } ?? "127.0.0.1"
        if let k = security.curveKey, let c = security.coordinatorKey {
            o.curve = try wrapErrors { try KeyFiles.loadPair(k) }
            o.coordinatorKey = try wrapErrors { try KeyFiles.loadPublic(c) }
        }
        let code = WorkerRuntime(o).run()
        if code != 0 { throw ExitCode(code) }
    }

    private func coordinatorHost(_ ep: String) -> String? {
        guard ep.hasPrefix("tcp://") else { return nil }
        let rest = ep.dropFirst(6)
        return rest.lastIndex(of: ":").map { String(rest[..<$0]) }
    }
}

/// Runs `body`, turning errors into a plain message (exit status 1) instead of a trace.
func wrapErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
        throw CLIError("\(error)")
    }
}

/// Loads the dataset once up front, so a missing or broken dataset is one clear error instead
/// of N worker failures.
func checkDataset(_ job: JobConfig) throws {
    _ = try JobData.load(job)
}

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).")

    @Argument(help: "Path and base name, e.g. keys/coordinator.") var name: String

    func run() throws {
        let pair = try wrapErrors { try KeyFiles.generate(name) }
        print("wrote \(name).key and \(name).pub (public key \(pair.publicKey))")
    }
}

/// CURVE flags shared by the coordinator and worker commands.
func checkMinWorkers(_ m: Int?, workers: Int) throws {
    if let m, !(1...workers).contains(m) {
        throw ValidationError("--min-workers must be between 1 and --workers (\(workers)), got \(m)")
    }
}

struct SecurityOptions: ParsableArguments {
    @Option(help: "CURVE key pair of this process (a .key file from ringtrain keygen); turns encryption on.")
    var curveKey: String?
    @Option(help: "Coordinator: public keys allowed to join (.pub files or directories of them; repeatable).")
    var authorizedKeys: [String] = []
    @Option(help: "Worker: the coordinator's public key (.pub file).")
    var coordinatorKey: String?
}
