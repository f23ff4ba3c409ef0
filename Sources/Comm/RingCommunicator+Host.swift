import Dispatch
import TensorCore

/// Shared memory on a host: ring edges between co-located neighbours, and the buffers that
/// ranks on one host all-reduce in place (`HostGroup`), hierarchically when the job spans hosts.
extension RingCommunicator {
    /// Switches edges between processes on the same host to shared memory. Every step is
    /// agreed through all-gathers over TCP, so both ends of an edge switch together, and any
    /// rank's failure leaves the whole ring on TCP.
    func setUpSharedMemory() throws {
        // Host identities, and rank 0's random tag: names stay unique even when two jobs on
        // this host share a run id.
        let gathered = try allGather(Array("\(UInt64.random(in: 1...UInt64.max))|\(hostIdentity(forced: options.hostID))".utf8))
            .map { String(decoding: $0, as: UTF8.self) }
        shmTag = String(gathered[0].prefix { $0 != "|" })
        let ids = gathered.map { $0.drop { $0 != "|" } }
        try setUpEdges(useIn: ids[predecessor] == ids[rank], useOut: ids[successor] == ids[rank])
        if options.sharedBuffers { try setUpHostGroup(ids: ids.map(String.init)) }
    }

    /// Shared-memory ring edges to the neighbours on this host (all ranks agree, or none uses them).
    private func setUpEdges(useIn: Bool, useOut: Bool) throws {
        let slotBytes = (max(4, options.sharedMemoryChunkBytes) + 63) / 64 * 64
        let slots = max(2, options.sharedMemorySlots)
        func name(_ r: Int) -> String { sharedName(String(r)) }
        var own: SharedSegment?
        var ok = true
        if useIn || useOut {
            do { own = try SharedSegment.create(name(rank), slots: slots, slotBytes: slotBytes) } catch { ok = false }
        }
        // Everyone has created its segment (or failed) once this returns.
        guard try agree(ok) else { own?.unlink(); return }
        var out: SharedSegment?, pred: SharedSegment?
        do {
            if useOut { out = try SharedSegment.open(name(successor), slots: slots, slotBytes: slotBytes) }
            if useIn { pred = try SharedSegment.open(name(predecessor), slots: slots, slotBytes: slotBytes) }
        } catch { ok = false }
        let agreed = try agree(ok)
        own?.unlink()   // mapped by everyone who needs it: the name is no longer needed
        guard agreed else { return }
        queue.sync {
            mine = own
            inbox = useIn ? own : nil
            predSegment = pred
            outbox = out
        }
    }

    private func sharedName(_ suffix: String) -> String { "/ringtrain-\(String(runID, radix: 16))-\(shmTag)-\(suffix)" }

    /// In-place all-reduce among the ranks of each host: when every rank is on one host, or when
    /// the job spans hosts and some host has two ranks or more — then also a ring per lane (local
    /// index below the fewest ranks any host has) across hosts. The host's first rank creates
    /// the control block, the others map it.
    private func setUpHostGroup(ids: [String]) throws {
        var hosts: [String] = []
        for id in ids where !hosts.contains(id) { hosts.append(id) }
        let byHost = hosts.map { h in (0..<worldSize).filter { ids[$0] == h } }
        let host = hosts.firstIndex(of: ids[rank])!
        let members = byHost[host], local = members.firstIndex(of: rank)!
        // With one rank per host the hierarchy would be the flat ring plus copies.
        guard hosts.count == 1 || byHost.contains(where: { $0.count >= 2 }) else { return }
        let lanes = hosts.count == 1 ? nil : byHost.map(\.count).min()
        let name = sharedName("host\(host)"), bytes = HostGroup.controlBytes(world: members.count)
        var control: SharedMapping?
        if local == 0 {
            control = try? SharedMapping.create(name, bytes: bytes)
            if let c = control { HostGroup.initialize(c, world: members.count) }
        }
        guard try agree(local != 0 || control != nil) else { control?.unlink(); return }
        if local != 0 {
            control = (try? SharedMapping.open(name, bytes: bytes)).flatMap { HostGroup.isValid($0, world: members.count) ? $0 : nil }
        }
        let group = control.map { HostGroup(members: members, local: local, lanes: lanes, control: $0, cancellation: cancellation) }
        group?.publishPid()
        let mapped = try agree(group != nil)
        if local == 0 { control?.unlink() }   // every member has mapped it (or none will use it)
        guard mapped, let group else { return }
        var across: (ring: RingCommunicator, members: [Int])?
        if let lanes {
            // Every lane rank binds one more input on the interface of its ring input.
            let inLane = local < lanes
            let ring = inLane ? byHost.map { $0[local] } : []
            let sub = inLane ? try? RingListener(bind: Self.anyPort(listener.endpoint), curve: listener.curve, plain: listener.plain) : nil
            if let s = options.secret { sub?.authorize(secret: s) }
            // The lane's keys are allowed before anyone learns the endpoint: a CURVE client
            // turned away once may never try again (seen with libzmq 4.3), hanging the lane.
            if !peerKeys.isEmpty { sub?.authorize(ring.map { peerKeys[$0] }) }
            let endpoints = try allGather(Array((sub?.endpoint ?? "").utf8)).map { String(decoding: $0, as: UTF8.self) }
            if let sub, !ring.contains(where: { endpoints[$0].isEmpty }) {
                var o = options
                o.sharedMemory = false
                o.sharedBuffers = false
                across = (try? RingCommunicator(listener: sub, rank: host, peers: ring.map { endpoints[$0] },
                                                runID: runID &+ UInt64(local + 1), options: o,
                                                peerKeys: peerKeys.isEmpty ? [] : ring.map { peerKeys[$0] },
                                                labels: ring, externalAbort: { [weak group] in group?.abortedBy },
                                                cancellation: cancellation)).map { ($0, ring) }
            }
            guard try agree(!inLane || across != nil) else { return }
        }
        queue.sync { hostGroup = group; acrossHosts = across }
    }

    /// `tcp://host:port` → `tcp://host:*`.
    static func anyPort(_ endpoint: String) -> String {
        guard let colon = endpoint.lastIndex(of: ":") else { return endpoint }
        return String(endpoint[..<colon]) + ":*"
    }

    /// True if `ok` holds on every rank (an all-gather, so every rank gets the same answer).
    private func agree(_ ok: Bool) throws -> Bool {
        try allGather([ok ? 1 : 0]).allSatisfy { $0 == [1] }
    }

    /// Whether buffers from `allocateBuffer` are shared with this host's other ranks (and
    /// all-reduced in place, across hosts through a ring per local index).
    public var sharesBuffers: Bool { queue.sync { hostGroup != nil } }

    /// Whether in-place all-reduces also cross hosts (hierarchical; this rank itself joins a
    /// ring across hosts only if it is one of its host's first `lanes` ranks).
    public var isHierarchical: Bool { queue.sync { hostGroup?.lanes != nil } }

    /// The hierarchical pass's middle: sum this rank's part with the same local index on every
    /// other host. Errors name global ranks.
    func reduceAcross(_ a: (ring: RingCommunicator, members: [Int]), _ part: UnsafeMutableBufferPointer<Float>,
                      bucket: Int, compress: Bool) throws {
        do {
            if compress { try a.ring.allReduceAsync(part, mean: false, bucket: bucket).wait() } else { try a.ring.allReduceSum(part) }
        } catch let e as CommError {
            throw CommError(e.reason, rank: rank, peer: e.peer, "across hosts: \(e.message)")
        }
    }

    /// `count` zeroed floats for collectives; a collective call (every rank, same order and
    /// count). With in-place all-reduce set up (`sharesBuffers`) the buffer lives in shared
    /// memory that this host's ranks all map, and all-reduces of slices of it run in place
    /// (`HostGroup`); otherwise it is private.
    public func allocateBuffer(count: Int) throws -> FloatStorage {
        guard let group = queue.sync(execute: { hostGroup }), count > 0 else { return FloatStorage(count: count) }
        let index = queue.sync { group.regionCount }
        func name(_ r: Int) -> String { sharedName("b\(index)-\(r)") }
        let bytes = (count * 4 + 4095) / 4096 * 4096
        let own = try? SharedMapping.create(name(rank), bytes: bytes)
        guard try agree(own != nil) else { own?.unlink(); return FloatStorage(count: count) }
        let mappings = group.members.map { r in r == rank ? own : try? SharedMapping.open(name(r), bytes: bytes) }
        let agreed = try agree(!mappings.contains { $0 == nil })
        own?.unlink()
        guard agreed, let own else { return FloatStorage(count: count) }
        let region = HostGroup.Region(index: index, count: count, mappings: mappings.map { $0! })
        queue.sync { group.add(region) }
        return FloatStorage(external: own.base.assumingMemoryBound(to: Float.self), count: count, owner: region)
    }
}
