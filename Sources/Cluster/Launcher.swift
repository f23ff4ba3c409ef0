import Comm
import Dispatch
import Logging
import Glibc
import TensorCore
import Train

/// `ringtrain launch`: a coordinator (in this process, loopback only) and N worker processes on
/// this host, like `torchrun --nproc-per-node N`. Output is relayed with a `[rank r]` prefix;
/// Ctrl-C or any failure stops every process it started. With `maxRestarts` > 0 a failed job is
/// started again from its newest checkpoint. Elastic (`minWorkers`): a dead worker is not a
/// failure while enough remain — the others go on from memory and a replacement joins them.
public final class LocalLauncher {
    public var job: JobConfig
    public let workers: Int
    public let maxRestarts: Int
    public var resume: String?
    /// Weights the workers start from (ignored once a restart resumes from a checkpoint).
    public var initFrom: String?
    public var initPartial = false
    /// BLAS threads per worker instead of the cores shared out.
    public var threads: Int?
    /// Flags every worker gets too (--quiet, --verbose).
    public var workerFlags: [String] = []
    /// The coordinator admits only workers that present this (its own children get it in their
    /// environment, not on their command line).
    let controlSecret = makeRunSecret()
    /// The run directory (its checkpoints are what a restart resumes from).
    public var runDir: RunDirectory?
    /// Elastic (`--min-workers`): survivors go on from memory while this many remain, and each
    /// dead worker is replaced by a new process (one of `maxRestarts`) that joins them.
    public var minWorkers: Int?
    /// Replacements started so far (they count against `maxRestarts`).
    private var replacements = 0

    public init(job: JobConfig, workers: Int, maxRestarts: Int = 0, resume: String? = nil) {
        self.job = job
        self.workers = workers
        self.maxRestarts = maxRestarts
        self.resume = resume
    }

    /// BLAS threads per worker: the cores shared out, at least one.
    public var threadsPerWorker: Int { threads ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) / workers) }

    public func run() -> Int32 {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let interrupted = Interrupts()
        var attempt = 0
        while true {
            let outcome = runOnce(interrupted)
            switch outcome {
            case .succeeded:
                return 0
            case .failed:
                if interrupted.fired { return 130 }
                guard attempt + replacements < maxRestarts else { return 1 }
                attempt += 1
                let latest = runDir.flatMap { $0.checkpointDirectory(job) }.flatMap { Checkpoint.list(in: $0).last }
                resume = latest ?? resume
                RunLog.warning("[launch] restart \(attempt)/\(maxRestarts) " + (resume.map { "from \($0)" } ?? "from the beginning (no checkpoint yet)"))
            }
        }
    }

    private func runOnce(_ interrupted: Interrupts) -> Coordinator.Outcome {
        let coordinator: Coordinator
        do {
            var o = Coordinator.Options(listen: "tcp://127.0.0.1:*", workers: workers, job: job, resume: resume)
            o.initFrom = initFrom
            o.initPartial = initPartial
            o.runDir = runDir?.path
            o.controlSecret = controlSecret
            o.minWorkers = minWorkers
            coordinator = try Coordinator(o)
        } catch {
            RunLog.logger.error("[launch] cannot start the coordinator: \(error)")
            return .failed(rank: nil, host: nil, message: "\(error)")
        }
        let group = ProcessGroup()
        let exe = ProcessGroup.currentExecutable
        let childEnvironment = ["OPENBLAS_NUM_THREADS": String(threadsPerWorker), "RINGTRAIN_CONTROL_SECRET": controlSecret]
        do {
            for r in 0..<workers {
                try group.start([exe, "worker", "--coordinator", coordinator.endpoint, "--rank", String(r), "--bind", "127.0.0.1"] + workerFlags,
                                environment: childEnvironment, name: "rank \(r)", prefix: "[rank \(r)] ")
            }
        } catch {
            group.stopAll()
            return .failed(rank: nil, host: nil, message: "\(error)")
        }
        var outcome: Coordinator.Outcome?
        let finished = DispatchSemaphore(value: 0)
        Threads.detach {
            outcome = coordinator.run()
            finished.signal()
        }
        // Watch the children and the user while the coordinator runs the job.
        while finished.wait(timeout: .now() + .milliseconds(50)) == .timedOut {
            if interrupted.fired { coordinator.requestStop("interrupted (Ctrl-C)") }
            if let (child, code) = group.waitAny(timeout: 0), code != 0 {
                coordinator.processExited(pid: Int(child.pid), description: "worker process exited with \(describe(code))")
                // Elastic: a replacement joins the survivors at their next step boundary — if
                // enough survive to go on (below the minimum the job fails, and a restart from
                // disk is what the remaining --max-restarts are for).
                if let m = minWorkers, group.running >= m, replacements < maxRestarts, !interrupted.fired {
                    replacements += 1
                    let name = "worker \(workers - 1 + replacements)"
                    RunLog.warning("[launch] \(child.name) exited with \(describe(code)); starting \(name) to take its place (\(replacements)/\(maxRestarts))")
                    do {
                        try group.start([exe, "worker", "--coordinator", coordinator.endpoint, "--bind", "127.0.0.1"] + workerFlags,
                                        environment: childEnvironment, name: name, prefix: "[\(name)] ")
                    } catch { RunLog.warning("[launch] cannot start \(name): \(error)") }
                }
            }
        }
        // Workers leave on DONE or ABORT; anything still running after a grace period is stopped.
        let deadline = monotonicSeconds() + 10
        while group.running > 0 && monotonicSeconds() < deadline { _ = group.waitAny(timeout: 0.1) }
        group.stopAll(grace: 2)
        return outcome ?? .failed(rank: nil, host: nil, message: "coordinator ended without an outcome")
    }
}

/// "code 3", "signal 9 (killed)".
func describe(_ code: Int32) -> String {
    if code > 128 {
        let sig = code - 128
        return "signal \(sig)" + (sig == SIGKILL ? " (killed)" : sig == SIGSEGV ? " (crashed)" : "")
    }
    return "code \(code)"
}

/// SIGINT/SIGTERM turned into a flag the launcher polls.
final class Interrupts: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private var flag = false
    var fired: Bool { flag }

    init() {
        let q = DispatchQueue(label: "ringtrain.signals")
        var s: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: q)
            s.append(src)
        }
        sources = s
        for src in sources {
            src.setEventHandler { [unowned self] in flag = true }
            src.resume()
        }
    }
}
