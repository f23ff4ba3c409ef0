import Formats
import Glibc

/// Where one run keeps everything it writes:
///
///     runs/<job name>-<yyyymmdd-hhmmss>/
///         job.yaml                    the fully resolved job (rewritten when the run is resumed)
///         log.txt                     every progress line, appended
///         metrics.jsonl               one JSON object per step, epoch and final test
///         events.out.tfevents.*       the same scalars for TensorBoard (one file per start)
///         checkpoints/step-N.safetensors
///
/// A new run never writes into another run's directory: a chosen `--run-dir` that already
/// holds a run is refused (resume it instead), and default names get a suffix when two runs
/// start in the same second. `RINGTRAIN_RUNS` moves the root (default `runs`).
public struct RunDirectory: Equatable, Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public static var defaultRoot: String {
        if let r = getenv("RINGTRAIN_RUNS"), r.pointee != 0 { return String(cString: r) }
        return "runs"
    }

    public var jobFile: String { "\(path)/job.yaml" }
    public var logFile: String { "\(path)/log.txt" }
    public var metricsFile: String { "\(path)/metrics.jsonl" }

    /// Writes the resolved job (what makes the directory a run's: `--resume` finds it).
    public func writeJob(_ job: JobConfig) throws {
        try FileIO.makeDirectories(path)
        try FileIO.writeAtomically(jobFile, bytes: Array(YAML.string(job.configValue).utf8))
    }

    /// Whether `path` is a run directory (it holds a job.yaml).
    public static func isRun(_ path: String) -> Bool { FileIO.isRegularFile("\(path)/job.yaml") }

    /// The directory `job`'s checkpoints go to: `checkpoint.dir` inside the run directory when
    /// relative, as given when absolute; nil when checkpoints are off (empty).
    public func checkpointDirectory(_ job: JobConfig) -> String? {
        let d = job.checkpoint.dir
        if d.isEmpty { return nil }
        return d.hasPrefix("/") ? d : "\(path)/\(d)"
    }

    /// A fresh directory for a run of `job`: `explicit` when given (it must not hold a run
    /// already), else `<root>/<name>-<yyyymmdd-hhmmss>` (with -2, -3, … when taken).
    public static func create(for job: JobConfig, explicit: String? = nil, root: String = defaultRoot,
                              now: time_t = time(nil)) throws -> RunDirectory {
        if let e = explicit {
            guard !e.isEmpty else { throw FileError("--run-dir", "must not be empty") }
            if FileIO.exists(e) && !FileIO.isDirectory(e) { throw FileError(e, "is a file, not a run directory") }
            if isRun(e) || !Checkpoint.list(in: "\(e)/checkpoints").isEmpty {
                throw FileError(e, "already holds a run; resume it with --resume \(e), or choose another --run-dir")
            }
            try FileIO.makeDirectories(e)
            return RunDirectory(path: e)
        }
        let base = "\(root)/\(job.name)-\(timestamp(now))"
        var p = base, k = 2
        try FileIO.makeDirectories(root)
        // mkdir is the claim: of two runs starting in the same second, one gets the -2.
        while mkdir(p, 0o755) != 0 {
            guard errno == EEXIST else { throw FileError(p, "cannot create the run directory: \(String(cString: strerror(errno)))") }
            p = "\(base)-\(k)"
            k += 1
        }
        return RunDirectory(path: p)
    }

    /// "20261201-152210" in local time.
    static func timestamp(_ t: time_t) -> String {
        var t = t
        var tm = tm()
        localtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)\(two(tm.tm_mon + 1))\(two(tm.tm_mday))-\(two(tm.tm_hour))\(two(tm.tm_min))\(two(tm.tm_sec))"
    }

    /// The run under `root` started or resumed most recently (its job.yaml is the newest).
    public static func last(root: String = defaultRoot) throws -> RunDirectory {
        var best: (mtime: Double, path: String)?
        for name in FileIO.list(root) where isRun("\(root)/\(name)") {
            var st = stat()
            guard stat("\(root)/\(name)/job.yaml", &st) == 0 else { continue }
            let m = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
            if best.map({ m > $0.mtime }) ?? true { best = (m, "\(root)/\(name)") }
        }
        guard let best else {
            throw FileError(root, "--resume last: no run directory here (set RINGTRAIN_RUNS or pass a run directory)")
        }
        return RunDirectory(path: best.path)
    }

    /// What `--resume X` names: a checkpoint file, a run directory (its newest checkpoint),
    /// `last` (the newest run's newest checkpoint), or a directory of checkpoints. The run
    /// directory comes back when the checkpoint belongs to one, so the run goes on writing there.
    public static func resolveResume(_ arg: String, root: String = defaultRoot) throws -> (checkpoint: String, run: RunDirectory?) {
        if arg == "last" || FileIO.isDirectory(arg) {
            let dir = arg == "last" ? try last(root: root).path : arg
            if isRun(dir) {
                let run = RunDirectory(path: dir)
                let job = try JobConfig.load(path: run.jobFile)
                guard let ckDir = run.checkpointDirectory(job) else {
                    throw FileError(dir, "this run wrote no checkpoints (checkpoint.dir is empty), so it cannot be resumed")
                }
                guard let newest = Checkpoint.list(in: ckDir).last else {
                    throw FileError(dir, "this run has no checkpoint yet (\(ckDir) holds none), so it cannot be resumed; start it again")
                }
                return (newest, run)
            }
            guard let newest = Checkpoint.list(in: dir).last else {
                throw FileError(dir, "neither a run directory (no job.yaml) nor a directory of checkpoints (no step-*.safetensors)")
            }
            return (newest, nil)
        }
        guard FileIO.exists(arg) else { throw FileError(arg, "no such checkpoint, run directory or 'last'") }
        let parent = FileIO.directory(of: arg)
        let runDir = FileIO.directory(of: parent)
        if parent.hasSuffix("/checkpoints") || parent == "checkpoints", isRun(runDir) {
            return (arg, RunDirectory(path: runDir))
        }
        return (arg, nil)
    }
}
