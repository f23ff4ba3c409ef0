import CSupport
import Glibc

/// One POSIX shared-memory object mapped read-write: created (exclusively) by one rank and
/// opened by the others under the same name; unmapped when released. The name can be unlinked
/// as soon as everyone has mapped it, so nothing outlives the job.
final class SharedMapping {
    let name: String
    let base: UnsafeMutableRawPointer
    let bytes: Int

    private init(name: String, base: UnsafeMutableRawPointer, bytes: Int) {
        self.name = name
        self.base = base
        self.bytes = bytes
    }

    static func create(_ name: String, bytes: Int) throws -> SharedMapping {
        try map(name, bytes: bytes, verb: "create", ringtrain_shm_create)
    }

    static func open(_ name: String, bytes: Int) throws -> SharedMapping {
        try map(name, bytes: bytes, verb: "open", ringtrain_shm_open)
    }

    private static func map(_ name: String, bytes: Int, verb: String,
                            _ call: (UnsafePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32) throws -> SharedMapping {
        var p: UnsafeMutableRawPointer?
        let rc = call(name, bytes, &p)
        guard rc == 0, let base = p else { throw ShmError("cannot \(verb) shared memory \(name): \(String(cString: strerror(rc)))") }
        return SharedMapping(name: name, base: base, bytes: bytes)
    }

    func unlink() { _ = ringtrain_shm_unlink(name) }

    deinit { ringtrain_shm_unmap(base, bytes) }

    /// A 32-bit word at a byte offset (for atomics and futexes).
    func word(_ byteOffset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + byteOffset).assumingMemoryBound(to: UInt32.self)
    }
}

/// A rank's shared-memory segment, used instead of TCP for ring edges between processes on the
/// same host: a doorbell word the rank sleeps on (futex), and its inbox — a ring of slots its
/// predecessor writes frames into (header + payload, as on TCP) and it consumes in order.
///
///     0     bell u32        (rung by the predecessor after writing, by the successor after reading)
///     64    head u32        (frames written, by the predecessor)
///     128   tail u32        (frames consumed, by the owner)
///     192   magic, slots, slotBytes
///     4096  slot i: [64 bytes: FrameHeader][slotBytes: payload]
///
/// One copy per byte (into the slot) replaces the two kernel copies of loopback TCP.
final class SharedSegment {
    static let headerBytes = 4096
    static let magic: UInt32 = 0x5254_534D   // "RTSM"
    let mapping: SharedMapping
    let slots: UInt32
    let slotBytes: Int
    var base: UnsafeMutableRawPointer { mapping.base }

    var bell: UnsafeMutablePointer<UInt32> { mapping.word(0) }
    var head: UnsafeMutablePointer<UInt32> { mapping.word(64) }
    var tail: UnsafeMutablePointer<UInt32> { mapping.word(128) }
    private var meta: UnsafeMutablePointer<UInt32> { mapping.word(192) }

    private init(_ mapping: SharedMapping, slots: Int, slotBytes: Int) {
        self.mapping = mapping
        self.slots = UInt32(slots)
        self.slotBytes = slotBytes
    }

    static func size(slots: Int, slotBytes: Int) -> Int { headerBytes + slots * (64 + slotBytes) }

    /// Creates this rank's segment (fails if the name exists).
    static func create(_ name: String, slots: Int, slotBytes: Int) throws -> SharedSegment {
        let s = SharedSegment(try SharedMapping.create(name, bytes: size(slots: slots, slotBytes: slotBytes)),
                              slots: slots, slotBytes: slotBytes)
        s.meta[0] = magic
        s.meta[1] = UInt32(slots)
        s.meta[2] = UInt32(slotBytes)
        return s
    }

    /// Maps a neighbour's segment, checking that it has the expected layout.
    static func open(_ name: String, slots: Int, slotBytes: Int) throws -> SharedSegment {
        let s = SharedSegment(try SharedMapping.open(name, bytes: size(slots: slots, slotBytes: slotBytes)),
                              slots: slots, slotBytes: slotBytes)
        guard s.meta[0] == magic, s.meta[1] == UInt32(slots), s.meta[2] == UInt32(slotBytes) else {
            throw ShmError("shared memory \(name) has an unexpected layout")
        }
        return s
    }

    func unlink() { mapping.unlink() }

    func slot(_ index: UInt32) -> UnsafeMutableRawPointer {
        base + Self.headerBytes + Int(index % slots) * (64 + slotBytes)
    }

    func ring() {
        _ = ringtrain_fetch_add(bell, 1)
        _ = ringtrain_futex_wake(bell)
    }

    var bellValue: UInt32 { ringtrain_load_acquire(bell) }

    /// Waits until the bell moves from `seen` (or `ms` pass): a few yields first — a peer that
    /// shares this core gets to run, and a wake-up costs no system call — then a futex sleep.
    func sleep(seen: UInt32, ms: Int32) {
        for _ in 0..<Self.yieldsBeforeSleep {
            if ringtrain_load_acquire(bell) != seen { return }
            sched_yield()
        }
        _ = ringtrain_futex_wait(bell, seen, ms)
    }

    static let yieldsBeforeSleep = 20

    // MARK: producer side (the predecessor, on the owner's segment)

    /// Writes one frame if a slot is free.
    func tryWrite(_ header: FrameHeader, _ payload: UnsafeRawPointer, _ count: Int) -> Bool {
        let h = ringtrain_load_acquire(head)
        guard h &- ringtrain_load_acquire(tail) < slots else { return false }
        let s = slot(h)
        header.encode(into: s)
        (s + 64).copyMemory(from: payload, byteCount: count)
        ringtrain_store_release(head, h &+ 1)
        ring()
        return true
    }

    // MARK: consumer side (the owner)

    /// The oldest unread frame: (header bytes, payload), or nil if none.
    func peek() -> UnsafeMutableRawPointer? {
        let t = ringtrain_load_acquire(tail)
        return t == ringtrain_load_acquire(head) ? nil : slot(t)
    }

    /// Frees the oldest slot; the producer is woken through `producerBell`.
    func release(producer: SharedSegment) {
        ringtrain_store_release(tail, ringtrain_load_acquire(tail) &+ 1)
        producer.ring()
    }
}

struct ShmError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Which ranks count as one host: same machine (boot id), IPC and pid namespaces (peers'
/// liveness is checked by pid), network namespace (emulated hosts in separate namespaces use the
/// network) and user. Mount namespaces may differ (`ip netns exec` makes one per process): that
/// `/dev/shm` really is shared is proven when the others open the segments one rank created
/// (names carry a random tag); otherwise everything stays on TCP.
func hostIdentity(forced: String? = nil) -> String {
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, name.count)
    func link(_ p: String) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink(p, &buf, buf.count - 1)
        return n > 0 ? String(cString: buf) : "?"
    }
    var boot = "?"
    if let f = fopen("/proc/sys/kernel/random/boot_id", "r") {
        var buf = [CChar](repeating: 0, count: 64)
        if fgets(&buf, 64, f) != nil { boot = String(cString: buf).trimmingNewline }
        fclose(f)
    }
    // RINGTRAIN_HOST_ID splits one machine into several "hosts" (ranks with different values
    // talk over TCP), e.g. to exercise the multi-host paths on one machine.
    let forced = forced ?? getenv("RINGTRAIN_HOST_ID").map { String(cString: $0) } ?? ""
    return [forced, String(cString: name), boot, link("/proc/self/ns/net"),
            link("/proc/self/ns/ipc"), link("/proc/self/ns/pid"), String(getuid())].joined(separator: "|")
}

private extension String {
    var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
