import CSupport
import Dispatch
import Glibc
import TensorCore

/// Child processes started and supervised together: output relayed line by line with a prefix,
/// and everything stopped when one fails or the parent is interrupted (no orphans: each child
/// also gets PR_SET_PDEATHSIG through `ringtrain`'s own start-up when it sees RINGTRAIN_PARENT).
public final class ProcessGroup {
    public struct Child {
        public let name: String
        public let pid: pid_t
    }

    public private(set) var children: [Child] = []
    private var status: [pid_t: Int32] = [:]
    private let lock = DispatchQueue(label: "ringtrain.processgroup")
    private let relays = DispatchGroup()
    /// Where relayed lines go (default: stdout, flushed per line).
    public var output: (String) -> Void = { line in
        print(line)
        fflush(stdout)
    }

    public init() {}

    /// Path of the running executable (to start workers from the same build).
    public static var currentExecutable: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(cString: buf) : CommandLine.arguments[0]
    }

    /// Starts `argv` with extra environment variables; stdout and stderr are relayed with
    /// `prefix` in front of each line.
    @discardableResult
    public func start(_ argv: [String], environment: [String: String] = [:], name: String, prefix: String) throws -> Child {
        var out: [Int32] = [0, 0]
        // Close-on-exec: a child started meanwhile by another thread must not inherit this pipe
        // (dup2 into the child's stdout/stderr clears the flag there).
        guard ringtrain_pipe_cloexec(&out) == 0 else { throw ProcessError("pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, out[1], 2)
        posix_spawn_file_actions_addclose(&actions, out[0])
        var env = environmentDictionary()
        env["RINGTRAIN_PARENT"] = String(getpid())
        for (k, v) in environment { env[k] = v }
        let cargs = argv.map { strdup($0) } + [nil]
        let cenv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cargs.forEach { free($0) }; cenv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, cenv)
        close(out[1])
        guard rc == 0 else {
            close(out[0])
            throw ProcessError("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        let child = Child(name: name, pid: pid)
        lock.sync { children.append(child) }
        relay(fd: out[0], prefix: prefix)
        return child
    }

    private func relay(fd: Int32, prefix: String) {
        relays.enter()
        let sink = output
        DispatchQueue.global().async { [relays] in
            var pending: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending += buf[0..<n]
                while let nl = pending.firstIndex(of: 10) {
                    sink(prefix + String(decoding: pending[..<nl], as: UTF8.self))
                    pending.removeSubrange(...nl)
                }
            }
            if !pending.isEmpty { sink(prefix + String(decoding: pending, as: UTF8.self)) }
            close(fd)
            relays.leave()
        }
    }

    /// Sends `signal` to every child still running.
    public func signalAll(_ signal: Int32) {
        for c in lock.sync(execute: { children }) where lock.sync(execute: { status[c.pid] == nil }) {
            kill(c.pid, signal)
        }
    }

    /// Waits for any of this group's children to exit (up to `timeout` seconds); returns it
    /// with its exit code (128 + signal for a signal), or nil on timeout or when none is left.
    /// Only this group's own children are reaped, so several groups can live in one process.
    public func waitAny(timeout: Double) -> (child: Child, code: Int32)? {
        let deadline = monotonicSeconds() + timeout
        while true {
            let live = lock.sync { children.filter { status[$0.pid] == nil } }
            if live.isEmpty { return nil }
            for c in live {
                var st: Int32 = 0
                if waitpid(c.pid, &st, WNOHANG) == c.pid {
                    let code = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
                    lock.sync { status[c.pid] = code }
                    return (c, code)
                }
            }
            if monotonicSeconds() > deadline { return nil }
            usleep(20_000)
        }
    }

    /// Exit code of each child that has exited.
    public var exitCodes: [pid_t: Int32] { lock.sync { status } }

    public var running: Int { lock.sync { children.count - status.count } }

    /// Stops every child: SIGTERM, then SIGKILL after `grace` seconds; reaps them all.
    public func stopAll(grace: Double = 3) {
        signalAll(SIGTERM)
        let deadline = monotonicSeconds() + grace
        while running > 0 {
            if waitAny(timeout: max(0, deadline - monotonicSeconds())) == nil { break }
        }
        if running > 0 {
            signalAll(SIGKILL)
            while running > 0, waitAny(timeout: 5) != nil {}
        }
        relays.wait()
    }

    /// Waits for the output relays to drain (after every child has exited).
    public func flush() { relays.wait() }
}

public struct ProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension ProcessGroup {
    /// In a child started by a ProcessGroup: die with the parent (SIGKILL on its death), so a
    /// killed launcher leaves no workers behind.
    public static func bindToParent() {
        guard let p = getenv("RINGTRAIN_PARENT"), let parent = pid_t(String(cString: p)) else { return }
        _ = ringtrain_set_parent_death_signal(SIGKILL)
        if getppid() != parent { exit(1) }   // the parent died before prctl took effect
    }
}
