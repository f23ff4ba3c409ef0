import TensorCore

/// The collective algorithms, run on the communication thread. Sequence number 0 is the
/// ring's hello; collectives count from 1.
extension RingCommunicator {
    /// Segment i (mod N) of n elements: balanced to within one element for any n and N.
    @inline(__always)
    func segment(_ i: Int, _ n: Int) -> Range<Int> {
        let w = worldSize
        let m = ((i % w) + w) % w
        return (m * n / w)..<((m + 1) * n / w)
    }

    /// Reduce-scatter (N−1 steps: send segment r−s, add segment r−s−1 into place), optional
    /// 1/N scaling of the segment this rank now owns, then all-gather (N−1 steps: send segment
    /// r+1−s, copy segment r−s into place).
    func ringAllReduce(_ buf: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int, seq: UInt64) throws {
        let n = buf.count, w = worldSize
        guard n > 0, let base = buf.baseAddress else { return }
        func piecesOf(_ r: Range<Int>, output: Bool) -> [Piece] {
            pieces(UnsafeMutableRawPointer(base + r.lowerBound), r.count * 4, output: output)
        }
        let what = "all-reduce of \(n) floats, bucket \(bucket)"
        for s in 0..<(w - 1) {
            try exchange(seq: seq + 1, bucket: bucket, step: s, what: what,
                         send: piecesOf(segment(rank - s, n), output: true), recv: piecesOf(segment(rank - s - 1, n), output: false)) { p, data, _ in
                addFloats(from: data, into: p.base.assumingMemoryBound(to: Float.self), count: p.bytes / 4)
            }
        }
        if mean {
            let own = segment(rank + 1, n)
            let s = 1 / Float(w)
            for i in own { base[i] *= s }
        }
        for s in 0..<(w - 1) {
            try exchange(seq: seq + 1, bucket: bucket, step: w - 1 + s, what: what,
                         send: piecesOf(segment(rank + 1 - s, n), output: true), recv: piecesOf(segment(rank - s, n), output: false)) { p, data, _ in
                p.base.copyMemory(from: data, byteCount: p.bytes)
            }
        }
        try finishSends(what)
    }

    /// The same schedule with bfloat16 on the wire (`Options.compression`): each rank encodes
    /// what it sends and adds (or copies) what it receives in Float, so sums accumulate in Float
    /// and only each hop's message is rounded. Before the all-gather every owner rounds its
    /// finished segment to bf16, so every rank ends with the same bits.
    func ringAllReduceBF16(_ buf: UnsafeMutableBufferPointer<Float>, mean: Bool, bucket: Int, seq: UInt64) throws {
        let n = buf.count, w = worldSize
        guard n > 0, let base = buf.baseAddress else { return }
        // Each step's outgoing segment gets its own staging area: zero-copy frames of earlier
        // steps may still be queued until `finishSends`.
        let seg = (n + w - 1) / w
        let stage = staging.reserve(bytes: 2 * (w - 1) * seg * 2)
        func framed(_ count: Int, output: Bool, _ make: (Int, Int, Int) -> Piece) -> [Piece] {
            let k = max(2, edgeChunkBytes(output: output) / 4)   // as many floats per frame as uncompressed
            return stride(from: 0, to: count, by: k).enumerated().map { make($0.element, min(k, count - $0.element), $0.offset) }
        }
        func send(_ r: Range<Int>, step: Int) -> [Piece] {
            let out = stage + step * seg * 2
            BFloat16.encode(base + r.lowerBound, out, count: r.count)
            return framed(r.count, output: true) { Piece(base: out + 2 * $0, bytes: 2 * $1, index: $2) }
        }
        func recv(_ r: Range<Int>) -> [Piece] {
            framed(r.count, output: false) { Piece(base: UnsafeMutableRawPointer(base + r.lowerBound + $0), bytes: 2 * $1, index: $2) }
        }
        let what = "bf16 all-reduce of \(n) floats, bucket \(bucket)"
        for s in 0..<(w - 1) {
            try exchange(seq: seq + 1, bucket: bucket, step: s, what: what,
                         send: send(segment(rank - s, n), step: s), recv: recv(segment(rank - s - 1, n))) { p, data, count in
                BFloat16.add(data, into: p.base.assumingMemoryBound(to: Float.self), count: count / 2)
            }
        }
        let own = segment(rank + 1, n)
        if mean {
            let s = 1 / Float(w)
            for i in own { base[i] *= s }
        }
        BFloat16.round(base + own.lowerBound, count: own.count)
        for s in 0..<(w - 1) {
            try exchange(seq: seq + 1, bucket: bucket, step: w - 1 + s, what: what,
                         send: send(segment(rank + 1 - s, n), step: w - 1 + s), recv: recv(segment(rank - s, n))) { p, data, count in
                BFloat16.decode(data, into: p.base.assumingMemoryBound(to: Float.self), count: count / 2)
            }
        }
        try finishSends(what)
    }

    /// Pipelined chain from the root around the ring: each rank receives a chunk from its
    /// predecessor, stores it and forwards it to its successor (the rank before the root only
    /// receives).
    func ringBroadcast(_ buf: UnsafeMutableRawBufferPointer, root: Int, seq: UInt64) throws {
        guard buf.count > 0, let base = buf.baseAddress else { return }
        let w = worldSize
        let position = (rank - root + w) % w
        let what = "broadcast of \(buf.count) bytes from rank \(root)"
        // The two edges may frame differently (shared memory in, TCP out): an outgoing frame may
        // leave once the bytes it covers have arrived.
        let send = position == w - 1 ? [] : pieces(base, buf.count, output: true)
        var received = 0, allowed = 0
        try exchange(seq: seq + 1, bucket: 0, step: 0, what: what,
                     send: send,
                     recv: position == 0 ? [] : pieces(base, buf.count, output: false),
                     sendAllowed: position == 0 ? nil : {
                         while allowed < send.count && base.distance(to: send[allowed].base) + send[allowed].bytes <= received {
                             allowed += 1
                         }
                         return allowed
                     }) { p, data, _ in
            p.base.copyMemory(from: data, byteCount: p.bytes)
            received = base.distance(to: p.base) + p.bytes
        }
        try finishSends(what)
    }

    /// Ring all-gather of variable-size byte payloads: at step s a rank forwards the payload of
    /// rank r−s and receives that of rank r−s−1.
    func ringAllGather(_ payload: [UInt8], seq: UInt64) throws -> [[UInt8]] {
        let w = worldSize
        var out = [[UInt8]](repeating: [], count: w)
        out[rank] = payload
        // Payloads must stay put until sent: keep each in its own allocation.
        var storage: [UnsafeMutableRawBufferPointer] = []
        defer {
            _ = tracker.waitForAll(timeout: options.timeout)
            storage.forEach { $0.deallocate() }
        }
        func stable(_ b: [UInt8]) -> Piece {
            let m = UnsafeMutableRawBufferPointer.allocate(byteCount: max(b.count, 1), alignment: 8)
            m.copyBytes(from: b)
            storage.append(m)
            return Piece(base: m.baseAddress!, bytes: b.count, index: 0)
        }
        let limit = 64 << 20
        for s in 0..<(w - 1) {
            let from = ((rank - s - 1) % w + w) % w
            try exchange(seq: seq + 1, bucket: 0, step: s, what: "all-gather",
                         send: [stable(out[((rank - s) % w + w) % w])],
                         recv: [Piece(base: storage[0].baseAddress!, bytes: -1, index: 0)], anySize: true,
                         sharedMemory: false) { _, data, count in
                guard count <= limit else {
                    throw CommError(.badFrame, rank: label(rank), peer: label(predecessor), "all-gather payload of \(count) bytes exceeds \(limit)")
                }
                out[from] = Array(UnsafeRawBufferPointer(start: data, count: count))
            }
        }
        return out
    }

    /// Waits until libzmq no longer reads the caller's buffer (every zero-copy frame released).
    func finishSends(_ what: String) throws {
        guard tracker.waitForAll(timeout: options.timeout) else {
            throw CommError(.timeout, rank: label(rank), peer: label(successor), "rank \(label(successor)) did not take the last frames of \(what)")
        }
    }
}

/// dst[i] += src[i] for count floats (src may be unaligned).
@inline(__always)
func addFloats(from src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let v = src.loadUnaligned(fromByteOffset: i * 4, as: Vec8.self)
        dst.store8(i, dst.load8(i) + v)
        i += 8
    }
    while i < count {
        dst[i] += src.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        i += 1
    }
}
