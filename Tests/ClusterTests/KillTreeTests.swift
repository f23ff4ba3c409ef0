import Formats
import Glibc
import Testing
import TestSupport
import Train

/// SIGKILL of a whole `launch` tree (the launcher; its workers die with it through the
/// parent-death signal) at different moments — while the workers meet, as training starts,
/// between checkpoints — leaves nothing the next run trips over: resuming the run directory
/// finishes the job with exactly the result of an undisturbed run (or, killed before any
/// checkpoint, says there is nothing to resume), and the first checkpoint of the resumed run
/// removes the temporary file a writer killed mid-checkpoint leaves.
@Test(.timeLimit(.minutes(10)), arguments: ["waiting for 2 workers", "[rank 0] training cluster-test", "[rank 0] checkpoint "])
func killingTheWholeTreeLeavesNothingBehind(at moment: String) throws {
    let dir = Fixtures.tempDirectory("kill-tree")
    let job = try writeJob(dir, epochs: 3, samples: 4096, extra: "")
    let rt = Fixtures.ringtrain
    let clean = Fixtures.run([rt, "launch", "--workers", "2", job, "--checkpoint-dir", "checkpoints", "--run-dir", "\(dir)/clean"])
    try #require(clean.status == 0, "\(clean.output)")

    let run = "\(dir)/killed"
    let p = try Started([rt, "launch", "--workers", "2", job, "--checkpoint-dir", "checkpoints", "--run-dir", run])
    #expect(p.waitFor(moment, timeout: 60), "\(p.text)")
    kill(p.pid, SIGKILL)
    _ = p.wait(timeout: 30)
    usleep(500_000)   // the workers' parent-death signal

    // What a writer killed mid-checkpoint leaves (its pid is not running).
    try FileIO.makeDirectories("\(run)/checkpoints")
    let stale = "\(run)/checkpoints/step-00000006.safetensors.tmp-\(Int32.max - 7)"
    try FileIO.writeAtomically(stale, bytes: [1, 2, 3])
    let resumed = Fixtures.run([rt, "launch", "--workers", "2", "--resume", run])
    if Checkpoint.list(in: "\(run)/checkpoints").isEmpty {
        #expect(resumed.status != 0 && resumed.output.contains("has no checkpoint yet"), "\(resumed.output)")
        let again = Fixtures.run([rt, "launch", "--workers", "2", job, "--checkpoint-dir", "checkpoints", "--run-dir", "\(dir)/again"])
        #expect(again.status == 0 && finalAccuracy(again.output) == finalAccuracy(clean.output), "\(again.output)")
    } else {
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(finalAccuracy(resumed.output) != nil && finalAccuracy(resumed.output) == finalAccuracy(clean.output),
                "resumed \(finalAccuracy(resumed.output) ?? -1) vs undisturbed \(finalAccuracy(clean.output) ?? -1): \(resumed.output)")
        #expect(!FileIO.exists(stale) && resumed.output.contains("removed \(stale)"), "\(resumed.output)")
    }
}
