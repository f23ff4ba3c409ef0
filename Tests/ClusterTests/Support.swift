import Cluster
import Dispatch
import Formats
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// A job file on synthetic data in `dir` (written with the data).
func writeJob(_ dir: String, epochs: Int, batch: Int = 32, samples: Int = 1024, extra: String = "") throws -> String {
    try Fixtures.writeSyntheticFashionMNIST(dir, train: samples, test: 256)
    let path = "\(dir)/job.yaml"
    try FileIO.writeAtomically(path, bytes: Array("""
        name: cluster-test
        model:
          input: [1, 28, 28]
          layers: [flatten, {type: linear, out: 32}, relu, {type: linear, out: 10}]
        data: {path: \(dir)}
        train: {epochs: \(epochs), batch_size: \(batch), log_every: 4, check_every: 8}
        scaling: {base_batch: 64}
        checkpoint: {dir: \(dir)/ckpt, every_steps: 8, keep: 2}
        comm: {heartbeat: 0.5, heartbeat_timeout: 3, timeout: 5}
        \(extra)
        """.utf8))
    return path
}

/// Lines appended from several threads.
final class Lines: @unchecked Sendable {
    private let lock = DispatchQueue(label: "lines")
    private var items: [String] = []
    func append(_ s: String) { lock.sync { items.append(s) } }
    var all: [String] { lock.sync { items } }
}

/// A process started by a test, its output collected line by line.
final class Started: @unchecked Sendable {
    let group = ProcessGroup()
    private let lines = Lines()
    let pid: pid_t

    init(_ argv: [String], environment: [String: String] = [:]) throws {
        Fixtures.useTemporaryRunsRoot()
        let lines = self.lines
        group.output = { lines.append($0) }
        pid = try group.start(argv, environment: environment, name: "test", prefix: "").pid
    }

    var output: [String] { lines.all }
    var text: String { output.joined(separator: "\n") }

    /// Waits for exit; returns the exit code (nil on timeout).
    func wait(timeout: Double) -> Int32? {
        guard let (_, code) = group.waitAny(timeout: timeout) else { return nil }
        group.flush()
        return code
    }

    /// Waits until some output line contains `s`.
    func waitFor(_ s: String, timeout: Double) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if output.contains(where: { $0.contains(s) }) { return true }
            usleep(20_000)
        }
        return false
    }

    func kill(_ sig: Int32 = SIGKILL) { Glibc.kill(pid, sig) }
}

/// Child processes of `pid` whose command line contains `match`.
func children(of pid: pid_t, matching match: String) -> [pid_t] {
    FileIO.list("/proc").compactMap { pid_t($0) }.filter { p in
        guard let stat = try? FileIO.readText("/proc/\(p)/stat"),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, pid_t(fields[1]) == pid else { return false }
        let cmd = (try? FileIO.read("/proc/\(p)/cmdline")).map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? ""
        return cmd.contains(match)
    }.sorted()
}

/// Whether any process still runs with `match` in its command line and `dir` in it too.
func stillRunning(_ match: String) -> [pid_t] {
    FileIO.list("/proc").compactMap { pid_t($0) }.filter { p in
        let cmd = (try? FileIO.read("/proc/\(p)/cmdline")).map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? ""
        return cmd.contains(match)
    }
}
