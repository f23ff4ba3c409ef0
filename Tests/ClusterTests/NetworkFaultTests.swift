import Formats
import Glibc
import TensorCore
import TestSupport
import Testing
import Train

/// A job of three workers on emulated hosts 1–3 (coordinator on host 0); `impair` runs once the
/// ring has formed (on the emulated LAN). Returns the coordinator's and the workers' output.
private func lanJob(_ tag: String, comm: String, epochs: Int = 2, coordinatorFlags: [String] = [],
                    impair: ((EmulatedLAN) -> Void)? = nil, afterwards: ((EmulatedLAN, [Started]) throws -> [Started])? = nil)
    throws -> (coordinator: Started, workers: [Started], codes: [Int32?]) {
    let dir = Fixtures.tempDirectory(tag)
    // 2,048 samples in global batches of 48: 42 steps an epoch, so faults land mid-training.
    let job = try writeJob(dir, epochs: epochs, batch: 16, samples: 2048)
    let text = try FileIO.readText(job)
    try FileIO.writeAtomically(job, bytes: Array(text.replacingOccurrences(of: "comm: {heartbeat: 0.5, heartbeat_timeout: 3, timeout: 5}",
                                                                            with: "comm: \(comm)").utf8))
    let net = try EmulatedLAN(hosts: 4, tag: tag, dir: dir, workers: ["w1", "w2", "w3"])
    let coordinator = try net.startCoordinator(job: job, workers: 3, extra: coordinatorFlags)
    var workers = try (1...3).map { try net.startWorker(onHost: $0, key: "w\($0)") }
    try #require(coordinator.waitFor("job cluster-test started", timeout: 120), "\(coordinator.text)")
    if let impair {
        // Once rank 0 reports its eighth step, whichever host it is on.
        let until = monotonicSeconds() + 120
        while !workers.contains(where: { $0.text.contains(" step 8/") }) && monotonicSeconds() < until { usleep(20_000) }
        impair(net)
    }
    // Workers started later are waited for too (they are last in the list).
    workers += try afterwards?(net, workers) ?? []
    let codes = workers.map { $0.wait(timeout: 300) }
    _ = coordinator.wait(timeout: 30)
    withExtendedLifetime(net) {}
    return (coordinator, workers, codes)
}

/// Whether this kernel can delay and reorder packets (tc netem; not every kernel has sch_netem).
private let haveNetem = netnsAvailable && Fixtures.run([Fixtures.packageRoot + "/cluster/netns/lan", "netem"]).status == 0

/// Runs the job on a clean LAN, then with `impair` applied to every worker's link: the same
/// result (TCP hides the faults; only the time changes, which is printed).
private func sameResultWith(_ what: String, tag: String, _ impair: @escaping (EmulatedLAN, Int) -> Void) throws {
    let comm = "{heartbeat: 0.5, heartbeat_timeout: 10, timeout: 30}"
    var t = monotonicSeconds()
    let clean = try lanJob("\(tag)c", comm: comm)
    let cleanSeconds = monotonicSeconds() - t
    #expect(clean.codes == [0, 0, 0], "\(clean.coordinator.text)")
    let reference = try #require(finalAccuracy(clean.coordinator.text), "\(clean.coordinator.text)")
    t = monotonicSeconds()
    let bad = try lanJob("\(tag)b", comm: comm) { net in for h in 1...3 { impair(net, h) } }
    #expect(bad.codes == [0, 0, 0], "\(what): \(bad.coordinator.text)")
    #expect(finalAccuracy(bad.coordinator.text) == reference, "\(what): \(bad.coordinator.text)")
    print("network faults: \(what): \(fmt(monotonicSeconds() - t, 1)) s against \(fmt(cleanSeconds, 1)) s on a clean link")
}

/// 1% and 5% packet loss on every worker's link (both directions): the same result as on a
/// clean link.
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"), .timeLimit(.minutes(15)),
      arguments: [1, 5])
func lossyLinksTrainToTheSameResult(percent: Int) throws {
    try sameResultWith("\(percent)% loss", tag: "nl\(percent)") { net, h in #expect(net.run(["loss", String(h), String(percent)]).status == 0) }
}

/// 50 ms of added delay with reordering (netem): the same result, slower.
@Test(.enabled(if: haveNetem, "this kernel has no sch_netem (CONFIG_NET_SCH_NETEM): delay and reordering cannot be emulated"),
      .timeLimit(.minutes(15)))
func delayedReorderingLinksTrainToTheSameResult() throws {
    try sameResultWith("50 ms delay, 25% reordered", tag: "nd") { net, h in
        #expect(net.run(["impair", String(h), "delay", "50ms", "10ms", "reorder", "25%", "50%"]).status == 0)
    }
}

/// A worker's link down for two seconds, then up: TCP and ZMTP carry on and the job ends as
/// it would have. Down for good: every survivor and the coordinator name the lost rank within
/// the heartbeat timeout.
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"), .timeLimit(.minutes(15)))
func aLinkDownBrieflyIsSurvivedAndForGoodIsNamed() throws {
    let comm = "{heartbeat: 0.5, heartbeat_timeout: 8, timeout: 20}"
    let clean = try lanJob("nlc", comm: comm)
    let reference = try #require(finalAccuracy(clean.coordinator.text), "\(clean.coordinator.text)")
    let flap = try lanJob("nlf", comm: comm) { net in
        #expect(net.run(["link", "2", "down"]).status == 0)
        usleep(2_000_000)
        #expect(net.run(["link", "2", "up"]).status == 0)
    }
    #expect(flap.codes == [0, 0, 0], "\(flap.coordinator.text)\n\(flap.workers.map(\.text).joined(separator: "\n"))")
    #expect(finalAccuracy(flap.coordinator.text) == reference, "\(flap.coordinator.text)")

    var downAt = 0.0
    let lost = try lanJob("nll", comm: comm) { net in
        #expect(net.run(["link", "3", "down"]).status == 0)
        downAt = monotonicSeconds()
    }
    let took = monotonicSeconds() - downAt
    #expect(lost.codes.allSatisfy { $0 != nil && $0 != 0 }, "\(lost.codes)")
    // The cut-off worker's rank, from its own last words ("rank R: the coordinator … silent").
    let own = lost.workers[2].text
    let r = try #require(own.range(of: "rank ").map { own[$0.upperBound...].prefix { $0.isNumber } }.flatMap { Int($0) }, "\(own)")
    let c = lost.coordinator.text
    #expect(c.contains("job failed: rank \(r)"), "\(c)")
    for w in lost.workers.prefix(2) { #expect(w.text.contains("rank \(r)"), "\(w.text)") }
    #expect(took < 8 + 20, "took \(took) s")
}

/// Elastic over the LAN (--min-workers 2): a host whose link goes down for good is left
/// behind once its heartbeats stop, the other two go on from memory, and a worker started
/// later on that host (link up again) joins them: the job ends in a world of three.
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"), .timeLimit(.minutes(15)))
func aLostHostIsLeftBehindAndAWorkerStartedLaterJoins() throws {
    let comm = "{heartbeat: 0.5, heartbeat_timeout: 4, timeout: 30}"
    let run = try lanJob("nle", comm: comm, epochs: 30, coordinatorFlags: ["--min-workers", "2"],
                         impair: { net in #expect(net.run(["link", "3", "down"]).status == 0) },
                         afterwards: { net, workers in
        // The cut-off worker gives up on its silent coordinator; then host 3 comes back with a new worker.
        #expect(workers[2].wait(timeout: 60).map { $0 != 0 } == true, "\(workers[2].text)")
        #expect(net.run(["link", "3", "up"]).status == 0)
        return [try net.startWorker(onHost: 3, key: "w3")]
    })
    let c = run.coordinator.text
    #expect(run.codes[0] == 0 && run.codes[1] == 0 && run.codes[3] == 0, "\(c)\n\(run.workers[3].text)")
    #expect(c.contains("lost: no heartbeat") && c.contains("going on with 2 workers"), "\(c)")
    // The newcomer joins the regroup under way or the next one: the job ends in a world of three.
    #expect(c.contains(" joins (ring ") && c.contains(" 3 workers (1 joined)"), "\(c)\n\(run.workers[3].text)")
    #expect(c.contains("finished:"), "\(c)")
}
