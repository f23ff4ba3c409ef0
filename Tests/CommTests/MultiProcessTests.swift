import Comm
import Glibc
import TestSupport
import Testing

/// Real processes: `ringtrain comm-test` starts N `comm-worker` processes that check sum, mean,
/// broadcast from every root, barrier and all-gather against plain sums — over loopback TCP,
/// over shared-memory ring edges (the default between processes on one host), and in place in
/// communicator buffers (`shared`: what the trainer's gradients use).
@Test(.timeLimit(.minutes(10)), arguments: [1, 2, 3, 4, 5, 8], ["tcp", "auto", "shared"])
func multiProcessCollectivesEqualPlainSums(world: Int, transport: String) throws {
    guard world > 1 else {
        // World size 1 has no processes to start: the local communicator is the identity.
        var v: [Float] = [1, 2, 3]
        try v.withUnsafeMutableBufferPointer { try LocalCommunicator().allReduceMean($0) }
        #expect(v == [1, 2, 3])
        return
    }
    var args = [Fixtures.ringtrain, "comm-test", "--workers", String(world), "--chunk", "65536", "--timeout", "20",
                "--transport", transport == "tcp" ? "tcp" : "auto", "--buffers", transport == "shared" ? "shared" : "private"]
    for n in [0, 1, world - 1, world, world + 1, 1_000_003] { args += ["--size", String(n)] }
    let r = Fixtures.run(args)
    #expect(r.status == 0, "\(r.output)")
    let checks = Fixtures.records(r.output, "CHECK")
    #expect(checks.count == world, "\(r.output)")
    #expect(checks.allSatisfy { $0["transport"] == (transport == "tcp" ? "tcp/tcp" : "shm/shm") }, "\(r.output)")
    #expect(checks.allSatisfy { $0["in-place"] == String(transport == "shared") }, "\(r.output)")
    #expect(Fixtures.records(r.output, "EXIT").allSatisfy { $0["code"] == "0" }, "\(r.output)")
}

/// SIGKILL one of four ranks in the middle of a stream of all-reduces: every survivor's
/// collective fails with a CommError naming rank 2, within the 5 s timeout — and not through it:
/// the loss is seen (pid gone, connection closed) or heard of (abort), never waited out. The
/// bound is the timeout itself because on a loaded 2-core machine a survivor that is not
/// waiting but starved of CPU can take a second or two to reach its next check.
@Test(.timeLimit(.minutes(10)), arguments: ["tcp", "auto", "shared"])
func killedRankIsReportedByEverySurvivor(transport: String) throws {
    let r = Fixtures.run([Fixtures.ringtrain, "comm-test", "--workers", "4", "--mode", "soak",
                          "--transport", transport == "tcp" ? "tcp" : "auto", "--buffers", transport == "shared" ? "shared" : "private",
                          "--size", "2000000", "--timeout", "5", "--kill-rank", "2", "--kill-after", "1.5"])
    let killed = try #require(Fixtures.records(r.output, "KILLED").first, "\(r.output)")
    let killedAt = try #require(Double(killed["t"] ?? ""))
    let errors = Fixtures.records(r.output, "COMMERROR")
    #expect(Set(errors.compactMap { $0["rank"] }) == ["0", "1", "3"], "\(r.output)")
    for e in errors {
        #expect(e["peer"] == "2", "\(r.output)")
        let t = try #require(Double(e["t"] ?? ""))
        #expect(t - killedAt < 5, "rank \(e["rank"]!) took \(t - killedAt) s")
        #expect(e["reason"] != "timeout", "\(r.output)")
    }
    let exits = Fixtures.records(r.output, "EXIT")
    #expect(exits.first { $0["rank"] == "2" }?["code"] == "137")
    #expect(exits.filter { $0["rank"] != "2" }.allSatisfy { $0["code"] == "3" }, "\(r.output)")
}

/// Real processes over loopback TCP with bf16 on the wire: every element of every sum within
/// N·2⁻⁷ of the summed magnitudes of the exact sum (what bf16 rounding of each hop's message
/// allows; docs/comm.md), and the other collectives, which are not compressed, exact.
@Test(.timeLimit(.minutes(10)))
func multiProcessCompressedRing() throws {
    var args = [Fixtures.ringtrain, "comm-test", "--workers", "4", "--chunk", "65536", "--timeout", "20",
                "--transport", "tcp", "--compression", "bf16"]
    for n in [0, 1, 3, 4, 5, 1_000_003] { args += ["--size", String(n)] }
    let r = Fixtures.run(args)
    #expect(r.status == 0 && Fixtures.records(r.output, "CHECK").count == 4, "\(r.output)")
}

/// comm-test fails when a worker's check fails (rank 1 told to corrupt its first sum).
@Test(.timeLimit(.minutes(10)))
func commTestFailsWhenAWorkerFails() throws {
    let r = Fixtures.run([Fixtures.ringtrain, "comm-test", "--workers", "2", "--timeout", "5", "--size", "1000", "--fail-rank", "1"])
    #expect(r.status != 0, "\(r.output)")
    #expect(r.output.contains("rank 1: all-reduce of 1000 floats: element 0 is"), "\(r.output)")
    #expect(r.output.contains("comm-test: workers failed:") && r.output.contains("rank 1 exited with code 1"), "\(r.output)")
}

/// One machine acting as several hosts (RINGTRAIN_HOST_ID per rank, consecutive ranks
/// `perHost` to a host): buffers are reduced in place per host with a ring per lane across
/// hosts (hierarchical), exact sums, Float32 and bf16 — equal hosts, hosts of 3 and 2 ranks
/// (2 lanes, rank 2 only waits), hosts of 2, 2 and 1 (1 lane); and the flat ring over mixed
/// edges (shared memory within a host, TCP between).
@Test(.timeLimit(.minutes(10)), arguments: [(4, 2, "shared", "none"), (6, 3, "shared", "bf16"), (6, 2, "shared", "none"),
                                            (5, 3, "shared", "none"), (5, 2, "shared", "bf16"), (4, 2, "private", "none")])
func multiHostTopologies(world: Int, perHost: Int, buffers: String, compression: String) throws {
    var args = [Fixtures.ringtrain, "comm-test", "--workers", String(world), "--ranks-per-host", String(perHost),
                "--chunk", "65536", "--timeout", "20", "--buffers", buffers, "--compression", compression]
    for n in [0, 1, world - 1, world, world + 1, 1_000_003] { args += ["--size", String(n)] }
    let r = Fixtures.run(args)
    let checks = Fixtures.records(r.output, "CHECK")
    #expect(r.status == 0 && checks.count == world, "\(r.output)")
    #expect(checks.allSatisfy { $0["hierarchical"] == String(buffers == "shared") }, "\(r.output)")
    #expect(checks.allSatisfy { $0["in-place"] == String(buffers == "shared") }, "\(r.output)")
    #expect(Set(checks.compactMap { $0["transport"] }) == ["shm/tcp", "tcp/shm"] || perHost > 2 || world % perHost != 0,
            "\(r.output)")
}

/// SIGKILL one rank of a job spanning hosts in the hierarchical path: its host peers see it
/// exit, its cross-host peer sees the connection close, the rest hear through aborts — all name
/// the same rank within the 5 s timeout, none through it. Hosts of 2 + 2 ranks (rank 2: lane 0),
/// of 3 + 2 (rank 2: a rank outside the lanes; rank 4: lane 1 of the smaller host).
@Test(.timeLimit(.minutes(10)), arguments: [(4, 2, 2), (5, 3, 2), (5, 3, 4)])
func killedRankIsReportedAcrossHosts(world: Int, perHost: Int, victim: Int) throws {
    let r = Fixtures.run([Fixtures.ringtrain, "comm-test", "--workers", String(world), "--ranks-per-host", String(perHost),
                          "--mode", "soak", "--buffers", "shared", "--size", "2000000", "--timeout", "5",
                          "--kill-rank", String(victim), "--kill-after", "1.5"])
    let killedAt = try #require(Double(Fixtures.records(r.output, "KILLED").first?["t"] ?? ""), "\(r.output)")
    let errors = Fixtures.records(r.output, "COMMERROR")
    #expect(Set(errors.compactMap { $0["rank"] }) == Set((0..<world).filter { $0 != victim }.map(String.init)), "\(r.output)")
    for e in errors {
        #expect(e["peer"] == String(victim), "\(r.output)")
        #expect((Double(e["t"] ?? "") ?? .infinity) - killedAt < 5, "\(r.output)")
        #expect(e["reason"] != "timeout", "\(r.output)")
    }
}

/// A /dev/shm too small for the job (containers often mount 64 MiB; here 3 MiB in a private
/// mount namespace): creating a segment fails up front (pages are reserved), so the ring edges
/// stay on TCP and the large buffer falls back to private memory — correct sums, no SIGBUS.
@Test(.enabled(if: getuid() == 0 && Fixtures.run(["unshare", "-m", "true"]).status == 0, "needs root and unshare(1)"),
      .timeLimit(.minutes(10)))
func tooSmallDevShmFallsBackToPrivateMemory() throws {
    let r = Fixtures.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=3m tmpfs /dev/shm && exec \(Fixtures.ringtrain) "
                          + "comm-test --workers 2 --buffers shared --timeout 20 --size 5 --size 1000000"])
    let checks = Fixtures.records(r.output, "CHECK")
    #expect(r.status == 0 && checks.count == 2, "\(r.output)")
    #expect(checks.allSatisfy { $0["transport"] == "tcp/tcp" }, "\(r.output)")
    // Asked for shared buffers, the ranks got private ones: the fallback, not a crash.
    #expect(checks.allSatisfy { $0["in-place"] == "false" }, "\(r.output)")
}
