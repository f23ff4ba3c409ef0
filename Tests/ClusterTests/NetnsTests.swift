import Formats
import Glibc
import TensorCore
import TestSupport
import Testing

/// Emulated hosts need root and network namespaces (cluster/netns/lan check).
let netnsAvailable: Bool = {
    getuid() == 0 && Fixtures.run([Fixtures.packageRoot + "/cluster/netns/lan", "check"]).status == 0
}()

/// N emulated hosts (network namespaces named after this process, 1 Gbit/s links) for one test,
/// and CURVE key pairs in `dir`/keys, the workers' public keys authorised.
final class EmulatedLAN {
    let prefix: String
    let lan = Fixtures.packageRoot + "/cluster/netns/lan"
    let keys: String

    init(hosts: Int, tag: String, dir: String, workers: [String], others: [String] = []) throws {
        prefix = "\(tag)\(getpid() % 10000)"
        keys = "\(dir)/keys"
        let up = run(["up", String(hosts), "1gbit"])
        try #require(up.status == 0, "\(up.output)")
        for name in ["coordinator"] + workers + others {
            #expect(Fixtures.run([Fixtures.ringtrain, "keygen", "\(keys)/\(name)"]).status == 0)
        }
        try FileIO.makeDirectories("\(keys)/authorized")
        for w in workers {
            try FileIO.writeAtomically("\(keys)/authorized/\(w).pub", bytes: try FileIO.read("\(keys)/\(w).pub"))
        }
    }

    @discardableResult
    func run(_ args: [String]) -> (status: Int32, output: String) {
        Fixtures.run(["env", "RT_NETNS_PREFIX=\(prefix)", lan] + args)
    }

    /// `argv` run inside host i's namespace.
    func onHost(_ i: Int, _ argv: [String]) -> [String] { ["ip", "netns", "exec", "\(prefix)-h\(i)"] + argv }

    /// Where the coordinator listens: host 0.
    let endpoint = "tcp://198.18.0.10:29500"

    /// The coordinator on host 0 (CURVE on, the workers' keys authorized), waiting for `workers`.
    func startCoordinator(job: String, workers: Int, extra: [String] = []) throws -> Started {
        let c = try Started(onHost(0, [Fixtures.ringtrain, "coordinator", "--listen", endpoint, "--workers", String(workers), job,
                                       "--curve-key", "\(keys)/coordinator.key", "--authorized-keys", "\(keys)/authorized"] + extra))
        #expect(c.waitFor("waiting for \(workers) workers", timeout: 30), "\(c.text)")
        return c
    }

    /// A worker on host i with the key pair `key`.
    func startWorker(onHost i: Int, key: String) throws -> Started {
        try Started(onHost(i, [Fixtures.ringtrain, "worker", "--coordinator", endpoint, "--curve-key", "\(keys)/\(key).key",
                               "--coordinator-key", "\(keys)/coordinator.pub"]))
    }

    deinit { run(["down"]) }
}

/// Coordinator and three workers on four emulated hosts (network namespaces joined by 1 Gbit/s
/// links), every connection CURVE-encrypted; a worker with an unknown key is refused.
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"),
      .timeLimit(.minutes(10)))
func multiHostTrainingOverEmulatedLANWithCurve() throws {
    let dir = Fixtures.tempDirectory("lan")
    let job = try writeJob(dir, epochs: 3, batch: 16, samples: 4096)
    let net = try EmulatedLAN(hosts: 4, tag: "rtt", dir: dir, workers: ["w1", "w2", "w3"], others: ["intruder"])
    defer { withExtendedLifetime(net) {} }   // the namespaces live until the test ends
    let coordinator = try net.startCoordinator(job: job, workers: 3)
    let intruder = try net.startWorker(onHost: 1, key: "intruder")
    #expect(intruder.wait(timeout: 30) == 2, "\(intruder.text)")
    #expect(intruder.text.contains("refused this worker's CURVE key"), "\(intruder.text)")
    let workers = try (1...3).map { try net.startWorker(onHost: $0, key: "w\($0)") }
    for w in workers { #expect(w.wait(timeout: 240) == 0, "\(w.text)") }
    #expect(coordinator.wait(timeout: 30) == 0, "\(coordinator.text)")
    let log = coordinator.text
    #expect(log.contains("refused connections from 198.18.0.11: CURVE key"), "\(log)")
    #expect(log.contains("job cluster-test finished: 255 steps"), "\(log)")
    let rank0 = workers.map(\.text).joined(separator: "\n")
    #expect(rank0.contains("edges in tcp / out tcp, CURVE encryption on"), "\(rank0)")
    for i in 1...3 { #expect(log.contains("198.18.0.1\(i):"), "worker on host \(i) joined with its LAN address") }
}

/// Two emulated hosts with two workers each, CURVE on: gradients are all-reduced in place on
/// each host and through a ring per local index across hosts; the job finishes with replicas
/// identical at every check (every 8 steps).
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"),
      .timeLimit(.minutes(10)))
func hierarchicalTrainingOnTwoHostsWithTwoWorkersEach() throws {
    let dir = Fixtures.tempDirectory("lan2x2")
    let job = try writeJob(dir, epochs: 2, batch: 16, samples: 4096)
    let net = try EmulatedLAN(hosts: 3, tag: "rth", dir: dir, workers: ["w1", "w2", "w3", "w4"])
    defer { withExtendedLifetime(net) {} }   // the namespaces live until the test ends
    let coordinator = try net.startCoordinator(job: job, workers: 4)
    let workers = try (1...4).map { try net.startWorker(onHost: ($0 + 1) / 2, key: "w\($0)") }
    for w in workers { #expect(w.wait(timeout: 240) == 0, "\(w.text)") }
    #expect(coordinator.wait(timeout: 30) == 0, "\(coordinator.text)")
    #expect(coordinator.text.contains("job cluster-test finished: 128 steps"), "\(coordinator.text)")
    let logs = workers.map(\.text).joined(separator: "\n")
    #expect(logs.contains("gradients all-reduced in place per host, then across hosts"), "\(logs)")
    #expect(logs.contains("CURVE encryption on"), "\(logs)")
}

/// cluster/ssh-launch with a hostfile (one host with 1 slot, one with 2), "ssh" being
/// `cluster/netns/lan ssh`: the coordinator on host 0, three workers on two emulated hosts —
/// unequal hosts, so gradients go hierarchically with one lane (in place on host 2, then a
/// ring of 2 across the hosts) and the replicas must stay identical at every check.
@Test(.enabled(if: netnsAvailable, "needs root and `ip netns` (cluster/netns/lan check failed)"),
      .timeLimit(.minutes(10)))
func sshLauncherStartsWorkersFromAHostfile() throws {
    let root = Fixtures.packageRoot
    let dir = Fixtures.tempDirectory("sshlaunch")
    let job = try writeJob(dir, epochs: 1, batch: 16, samples: 1024)
    let prefix = "rts\(getpid() % 10000)"
    let env = ["env", "RT_NETNS_PREFIX=\(prefix)"]
    let up = Fixtures.run(env + [root + "/cluster/netns/lan", "up", "3", "1gbit"])
    try #require(up.status == 0, "\(up.output)")
    defer { _ = Fixtures.run(env + [root + "/cluster/netns/lan", "down"]) }
    try FileIO.writeAtomically("\(dir)/hosts", bytes: Array("# test hosts\n198.18.0.11 slots=1\n198.18.0.12 slots=2\n".utf8))
    let r = Fixtures.run(env + ["SSH=\(root)/cluster/netns/lan ssh", "ip", "netns", "exec", "\(prefix)-h0",
                                root + "/cluster/ssh-launch", "\(dir)/hosts", job, "--address", "198.18.0.10",
                                "--port", "29501", "--bin", Fixtures.ringtrain, "--", "--verbose"])
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("job cluster-test finished: 21 steps"), "\(r.output)")
    #expect(r.output.contains("[198.18.0.11] ring of 3: rank 0"), "\(r.output)")
    // Two workers share host 2: the edge between them (rank 1 → rank 2) is shared memory, the
    // edges to and from host 1 TCP (every rank prints its set-up with --verbose).
    #expect(r.output.contains("ring of 3: rank 0 on") && r.output.contains("edges in tcp / out tcp"), "\(r.output)")
    #expect(r.output.contains("ring of 3: rank 1 on") && r.output.contains("edges in tcp / out shm"), "\(r.output)")
    #expect(r.output.contains("ring of 3: rank 2 on") && r.output.contains("edges in shm / out tcp"), "\(r.output)")
    #expect(r.output.contains("gradients all-reduced in place per host, then across hosts"), "\(r.output)")
}

@Test(.timeLimit(.minutes(10)))
func torchrunStyleEnvironmentStartsAJob() throws {
    let dir = Fixtures.tempDirectory("torchrun")
    let job = try writeJob(dir, epochs: 1, batch: 32)
    let port = Fixtures.freePort()
    func worker(_ rank: Int) throws -> Started {
        try Started(["env", "RANK=\(rank)", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=\(port)",
                     Fixtures.ringtrain, "worker", job])
    }
    let w0 = try worker(0), w1 = try worker(1)
    #expect(w0.wait(timeout: 90) == 0, "\(w0.text)")
    #expect(w1.wait(timeout: 30) == 0, "\(w1.text)")
    #expect(w0.text.contains("[coordinator] job cluster-test finished: 16 steps"), "\(w0.text)")
}
