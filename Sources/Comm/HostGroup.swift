import CSupport
import Glibc
import TensorCore

/// The ranks of the job on one host, reducing in each other's memory.
///
/// Buffers handed out by `RingCommunicator.allocateBuffer` (the trainer puts its gradient arena
/// there) are shared-memory objects that all of the host's ranks map. An all-reduce of a slice
/// of one is a single pass: rank r owns segment r of the slice; it sums that segment across all N buffers
/// (in rank order, block by block in L1) and writes the result back into all N. Each buffer is
/// read once and written once, about 8× the slice through memory for N = 4, where the ring
/// (copies into slots, adds, copies back) moves about 15×; and no rank waits on a neighbour
/// mid-pass, which matters when there are more processes than cores.
///
///     rank 0's buffer  [ s0 | s1 | s2 | s3 ]      rank r: for block in segment r:
///     rank 1's buffer  [ s0 | s1 | s2 | s3 ]        t = Σ_q buf_q[block]   (× 1/N for a mean)
///     rank 2's buffer  [ s0 | s1 | s2 | s3 ]        buf_q[block] = t        for every q
///     rank 3's buffer  [ s0 | s1 | s2 | s3 ]
///
/// When the job spans hosts (`HostGroup` then holds this host's ranks), the pass is
/// hierarchical. With `lanes` = the fewest ranks any host has, the slice is cut into `lanes`
/// segments: local rank k < lanes sums segment k across the host's buffers into its own buffer,
/// all-reduces it with local rank k of every other host (a ring per lane, `across`), then
/// writes the result into the host's other buffers; a host's further ranks only wait. Each
/// host's link carries 2(H−1)/H of the buffer instead of the flat ring's 2(N−1)/N.
///
/// Two counters per rank in a control block order the pass: `arrived` (this rank's data for
/// collective `seq` is in place) and `done` (its segment is written everywhere). A rank starts
/// once all have arrived and returns once all are done, so nobody reads a buffer still being
/// filled or hands back one still being written. Waits spin briefly, then sleep on a futex; a
/// peer that exits (checked by pid) or stalls past the timeout, or a rank that fails, sets the
/// control block's abort word, and every rank's wait fails naming the same rank.
final class HostGroup {
    /// This host's ranks (global numbers, ascending) and this rank's index among them.
    let members: [Int]
    let local: Int
    /// In a job spanning hosts: how many of each host's ranks (local 0..<lanes) join a ring
    /// across hosts — the fewest ranks any host has. nil when the job runs on this host alone.
    let lanes: Int?
    private var rank: Int { members[local] }
    private var size: Int { members.count }
    private let control: SharedMapping
    /// The owning ring's: a cancelled wait gives up at once.
    let cancellation: Cancellation
    private let scratch: UnsafeMutablePointer<Float>
    private var regions: [Region] = []

    /// Control block: one 64-byte line per field so writers do not share lines.
    ///     0        magic, world size
    ///     64       bell (incremented and futex-woken on every change)
    ///     128      abort word: 0, or culprit rank (global) + 1
    ///     192+64q  local rank q: pid, arrived, done, region, offset (2 words), count (2 words)
    static let magic: UInt32 = 0x5254_4847   // "RTHG"
    static func controlBytes(world: Int) -> Int { 192 + 64 * world }
    static let blockFloats = 1024

    /// A buffer the host's ranks allocated together: `buffers[q]` is local rank q's copy, mapped here.
    final class Region {
        let index: Int
        let count: Int
        let mappings: [SharedMapping]
        let buffers: [UnsafeMutablePointer<Float>]
        init(index: Int, count: Int, mappings: [SharedMapping]) {
            self.index = index
            self.count = count
            self.mappings = mappings
            buffers = mappings.map { $0.base.assumingMemoryBound(to: Float.self) }
        }
    }

    init(members: [Int], local: Int, lanes: Int?, control: SharedMapping, cancellation: Cancellation = Cancellation()) {
        precondition(lanes.map { (1...members.count).contains($0) } ?? true)
        self.cancellation = cancellation
        self.members = members
        self.local = local
        self.lanes = lanes
        self.control = control
        scratch = .allocate(capacity: Self.blockFloats)
    }

    deinit { scratch.deallocate() }

    // MARK: control block

    private var bell: UnsafeMutablePointer<UInt32> { control.word(64) }
    private var abortWord: UnsafeMutablePointer<UInt32> { control.word(128) }
    private func line(_ r: Int) -> UnsafeMutablePointer<UInt32> { control.word(192 + 64 * r) }

    /// The host's first rank stamps a fresh control block; the others check it.
    static func initialize(_ control: SharedMapping, world: Int) {
        control.word(0)[1] = UInt32(world)
        ringtrain_store_release(control.word(0), magic)
    }

    static func isValid(_ control: SharedMapping, world: Int) -> Bool {
        ringtrain_load_acquire(control.word(0)) == magic && control.word(0)[1] == UInt32(world)
    }

    func publishPid() { ringtrain_store_release(line(local), UInt32(bitPattern: getpid())) }

    private func pid(_ r: Int) -> Int32 { Int32(bitPattern: ringtrain_load_acquire(line(r))) }

    private func ring() {
        _ = ringtrain_fetch_add(bell, 1)
        _ = ringtrain_futex_wake(bell)
    }

    /// The rank (global) whose failure this host's ranks are giving up for, if any.
    var abortedBy: Int? {
        let a = ringtrain_load_acquire(abortWord)
        return a == 0 ? nil : Int(a) - 1
    }

    /// Records the first failure for every rank to see (later calls keep the first culprit).
    func abort(culprit: Int) {
        _ = ringtrain_compare_exchange(abortWord, 0, UInt32(culprit + 1))
        ring()
    }

    // MARK: buffers

    var regionCount: Int { regions.count }

    func add(_ region: Region) { regions.append(region) }

    /// The region and offset of `buffer` if it lies inside one of this rank's shared buffers.
    func locate(_ buffer: UnsafeMutableBufferPointer<Float>) -> (region: Region, offset: Int)? {
        guard let p = buffer.baseAddress else { return nil }
        for r in regions {
            let mine = r.buffers[local]
            if p >= mine && p + buffer.count <= mine + r.count { return (r, mine.distance(to: p)) }
        }
        return nil
    }

    // MARK: all-reduce

    /// In place over `count` floats at `offset` of `region` on every rank (same slice on all).
    /// `scale` multiplies the sum (1/N for a mean). In a hierarchical group, `across` (given on
    /// local ranks below `lanes`, and only there) all-reduces this rank's locally summed segment
    /// with the other hosts.
    func allReduce(_ region: Region, offset: Int, count: Int, scale: Float, seq: UInt64, timeout: Double, what: String,
                   across: ((UnsafeMutableBufferPointer<Float>) throws -> Void)? = nil) throws {
        let s = UInt32(truncatingIfNeeded: seq)
        let me = line(local)
        me[3] = UInt32(region.index)
        me[4] = UInt32(truncatingIfNeeded: offset); me[5] = UInt32(truncatingIfNeeded: offset >> 32)
        me[6] = UInt32(truncatingIfNeeded: count); me[7] = UInt32(truncatingIfNeeded: count >> 32)
        ringtrain_store_release(me + 1, s)
        ring()
        try wait(field: 1, seq: s, timeout: timeout, what: what)
        // Local rank 0's slice is the reference, so every rank blames the same one.
        let ref = line(0)
        if let q = (1..<size).first(where: { q in (3...7).contains { line(q)[$0] != ref[$0] } }) {
            let l = line(q)
            abort(culprit: members[q])
            throw CommError(.badFrame, rank: rank, peer: members[q],
                            "rank \(members[q]) entered \(what) with region \(l[3]), offset \(Int(l[4]) | Int(l[5]) << 32), "
                            + "count \(Int(l[6]) | Int(l[7]) << 32); rank \(members[0]) with region \(ref[3]), offset \(Int(ref[4]) | Int(ref[5]) << 32), "
                            + "count \(Int(ref[6]) | Int(ref[7]) << 32)")
        }
        let bufs = region.buffers.map { $0 + offset }
        precondition((across != nil) == (lanes.map { local < $0 } ?? false), "across goes with the lane ranks of a hierarchical group")
        if let lanes, let across {
            // Sum into this rank's buffer only, combine with the other hosts, then hand out.
            let own = (local * count / lanes)..<((local + 1) * count / lanes)
            if size > 1 { reduceOwned(bufs, own, scale: 1, into: local) }
            let mine = UnsafeMutableBufferPointer(start: bufs[local] + own.lowerBound, count: own.count)
            try across(mine)
            if scale != 1 { for i in mine.indices { mine[i] *= scale } }
            for q in bufs.indices where q != local { (bufs[q] + own.lowerBound).update(from: mine.baseAddress!, count: own.count) }
        } else if lanes == nil {
            reduceOwned(bufs, (local * count / size)..<((local + 1) * count / size), scale: scale, into: nil)
        }
        ringtrain_store_release(me + 2, s)
        ring()
        try wait(field: 2, seq: s, timeout: timeout, what: what)
    }

    /// Shape: bufs[q][range] for q in 0..<L → bufs[q][i] = scale · Σ_q bufs[q][i] for every q
    /// (or only for q = `into`). Blocks of 4 KiB: the sum builds up in L1 scratch, then goes out.
    private func reduceOwned(_ bufs: [UnsafeMutablePointer<Float>], _ range: Range<Int>, scale: Float, into: Int?) {
        let t = scratch
        var start = range.lowerBound
        while start < range.upperBound {
            let m = min(Self.blockFloats, range.upperBound - start)
            t.update(from: bufs[0] + start, count: m)
            for q in 1..<bufs.count { addFloats(from: bufs[q] + start, into: t, count: m) }
            if scale != 1 {
                let v = Vec8(repeating: scale)
                var i = 0
                while i + 8 <= m { t.store8(i, t.load8(i) * v); i += 8 }
                while i < m { t[i] *= scale; i += 1 }
            }
            if let q = into {
                (bufs[q] + start).update(from: t, count: m)
            } else {
                for q in bufs.indices { (bufs[q] + start).update(from: t, count: m) }
            }
            start += m
        }
    }

    /// Waits until every rank's word `field` has reached `seq` (wrapping compare): a few yields
    /// (a peer sharing this core gets to run), then futex naps; the abort word, peers' pids and
    /// the timeout are checked on the way.
    private func wait(field: Int, seq: UInt32, timeout: Double, what: String) throws {
        let start = monotonicSeconds()
        var lastLiveness = start
        var spins = 0
        while true {
            let b = ringtrain_load_acquire(bell)
            let a = ringtrain_load_acquire(abortWord)
            if a != 0 {
                let culprit = Int(a) - 1   // a global rank
                throw CommError(.aborted, rank: rank, peer: culprit, "rank \(culprit) failed; \(what) abandoned")
            }
            guard let waiting = (0..<size).first(where: {
                Int32(bitPattern: ringtrain_load_acquire(line($0) + field) &- seq) < 0
            }) else { return }
            // After the check above: work that has completed is kept. Local only: the other
            // ranks are told to stop by the coordinator too.
            if cancellation.isCancelled { throw CommError(.cancelled, rank: rank, peer: nil, "\(what) cancelled") }
            let now = monotonicSeconds()
            if now - lastLiveness > 0.05 {
                lastLiveness = now
                for q in 0..<size where q != local && ringtrain_process_alive(pid(q)) == 0 {
                    abort(culprit: members[q])
                    throw CommError(.peerLost, rank: rank, peer: members[q], "rank \(members[q]) (pid \(pid(q))) exited during \(what)")
                }
            }
            if now - start > timeout {
                abort(culprit: members[waiting])
                throw CommError(.timeout, rank: rank, peer: members[waiting],
                                "no progress from rank \(members[waiting]) for \(fmtSeconds(now - start)) in \(what) (seq \(seq))")
            }
            spins += 1
            if spins < 20 {
                sched_yield()
            } else {
                _ = ringtrain_futex_wait(bell, b, 5)
            }
        }
    }
}
