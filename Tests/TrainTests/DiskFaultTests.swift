import Formats
import Glibc
import TestSupport
import Testing
import Train

/// Mounting a small tmpfs needs root (as the namespace tests do).
private let canMount: Bool = {
    guard getuid() == 0 else { return false }
    let d = Fixtures.tempDirectory("mount-probe")
    defer { _ = Fixtures.run(["umount", d]) }
    return Fixtures.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d]).status == 0
}()

/// A tmpfs of `size` at a fresh directory (unmounted by the returned closure).
private func smallDisk(_ size: String) throws -> (path: String, unmount: () -> Void) {
    let d = Fixtures.tempDirectory("disk")
    let r = Fixtures.run(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", d])
    try #require(r.status == 0, "\(r.output)")
    return (d, { _ = Fixtures.run(["umount", "-l", d]) })
}

/// A disk that fills up, turns read-only or vanishes while checkpoints are written: a clear
/// error naming the path (checkpoint.on_error: stop), or a warning and training goes on
/// (warn); either way the previous checkpoint stays whole and loadable, and no temporary
/// file is left behind.
@Test(.enabled(if: canMount, "needs root to mount a small tmpfs"), .timeLimit(.minutes(10)))
func checkpointsSurviveFullReadOnlyAndVanishedDisks() throws {
    let dir = Fixtures.tempDirectory("disk-faults")
    var (job, data) = try smallJob(dir, epochs: 2)
    job.checkpoint.everySteps = 4
    job.checkpoint.keep = 1
    func intact(_ disk: String, step: Int) throws {
        let files = FileIO.list(disk)
        #expect(files == [Checkpoint.fileName(step: step)], "\(files)")
        let fresh = try quiet(job, data)
        try fresh.restore(try Checkpoint.load("\(disk)/\(Checkpoint.fileName(step: step))"))
        #expect(fresh.state.globalStep == step)
    }

    // Full: a checkpoint (model + momentum, ~200 KB) fits once in 300 KB, the next does not.
    let full = try smallDisk("300k")
    defer { full.unmount() }
    let t = try quiet(job, data)
    #expect { try t.run(checkpointDir: full.path) } throws: {
        "\($0)".contains("\(full.path)/\(Checkpoint.fileName(step: 8))") && "\($0)".contains("No space left on device")
    }
    try intact(full.path, step: 4)

    // The same with on_error: warn — the run finishes, saying so each time.
    let warnDisk = try smallDisk("300k")
    defer { warnDisk.unmount() }
    job.checkpoint.onError = .warn
    var lines: [String] = []
    let w = try Trainer(job: job, data: data, log: { lines.append($0) })
    let s = try w.run(checkpointDir: warnDisk.path)
    #expect(s.state.globalStep == 32 && !s.stopped)
    #expect(lines.filter { $0.hasPrefix("warning: checkpoint not written: \(warnDisk.path)/step-") && $0.contains("No space left") }.count >= 3,
            "\(lines)")
    try intact(warnDisk.path, step: 4)
    job.checkpoint.onError = .stop

    // Read-only after the first checkpoint.
    let ro = try smallDisk("1m")
    defer { ro.unmount() }
    let r = try quiet(job, data)
    r.stopAtStep = 4
    _ = try r.run(checkpointDir: ro.path)
    try r.saveCheckpoint(ro.path)
    #expect(Fixtures.run(["mount", "-o", "remount,ro", ro.path]).status == 0)
    r.stopAtStep = nil
    #expect { try r.run(checkpointDir: ro.path) } throws: { "\($0)".contains(ro.path) && "\($0)".contains("Read-only file system") }
    try intact(ro.path, step: 4)

    // The directory removed under the run: an error, not a new directory in its place.
    let gone = "\(dir)/gone"
    let v = try quiet(job, data)
    v.stopAtStep = 4
    _ = try v.run(checkpointDir: gone)
    try v.saveCheckpoint(gone)
    _ = Fixtures.run(["rm", "-rf", gone])
    v.stopAtStep = nil
    #expect { try v.run(checkpointDir: gone) } throws: { "\($0)".contains("\(gone): the checkpoint directory has vanished") }
    #expect(!FileIO.exists(gone))
}
