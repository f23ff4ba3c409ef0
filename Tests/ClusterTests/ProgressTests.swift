import Formats
import Glibc
import TensorCore
import Testing
import TestSupport

private let haveTmux = Fixtures.run(["sh", "-c", "command -v tmux"]).status == 0

/// The progress bar in a real terminal (a tmux pane, 100 columns): drawn in place while an
/// epoch runs (bar, step count, samples/s, loss, lr, ETA; at most the pane's width), the epoch
/// lines above it, nothing of it left at the end; coloured unless NO_COLOR is set.
@Test(.enabled(if: haveTmux, "tmux is not installed (scripts/bootstrap --test installs it)"), .timeLimit(.minutes(10)),
      arguments: [false, true])
func progressBarInATerminal(noColor: Bool) throws {
    let dir = Fixtures.tempDirectory("tmux")
    let job = try writeJob(dir, epochs: 3, samples: 4096)
    let socket = "ringtrain-test-\(getpid())-\(noColor)"
    let tmux = ["tmux", "-L", socket]
    let command = "cd \(dir) && \(noColor ? "export NO_COLOR=1" : "unset NO_COLOR") && RINGTRAIN_RUNS=\(dir)/runs \(Fixtures.ringtrain) train \(job) --checkpoint-dir ''; echo EXIT $?; sleep 60"
    #expect(Fixtures.run(tmux + ["new-session", "-d", "-s", "t", "-x", "100", "-y", "40", command]).status == 0)
    defer { _ = Fixtures.run(tmux + ["kill-server"]) }
    var bars: [String] = [], colored = false, screen = ""
    let deadline = monotonicSeconds() + 240
    while monotonicSeconds() < deadline {
        screen = Fixtures.run(tmux + ["capture-pane", "-p", "-t", "t"]).output
        let raw = Fixtures.run(tmux + ["capture-pane", "-p", "-e", "-t", "t"]).output
        if raw.contains("\u{1B}[32m") { colored = true }
        bars += screen.split(separator: "\n").filter { $0.hasPrefix("epoch ") && $0.contains("━") && $0.contains("ETA") }.map(String.init)
        if screen.contains("EXIT ") { break }
        usleep(30_000)
    }
    let lines = screen.split(separator: "\n").map(String.init)
    #expect(lines.contains("EXIT 0"), "\(screen)")
    #expect(!bars.isEmpty, "no bar seen while training:\n\(screen)")
    for b in bars {
        #expect(b.count <= 100 && b.contains("/128") && b.contains("samples/s") && b.contains("loss ") && b.contains("lr "), "\(b)")
    }
    // The epoch summaries stand above where the bar was; no bar is left on the final screen.
    #expect(lines.filter { $0.hasPrefix("epoch ") && $0.contains("train_loss") }.count == 3, "\(screen)")
    #expect(!lines.contains { $0.contains("━") }, "a bar was left behind:\n\(screen)")
    #expect(colored == !noColor, "colour \(colored) with NO_COLOR \(noColor)")
}
