import CBLAS
import Glibc
import Synchronization

/// The cores' helper threads for `Parallel.forEach`: width − 1 threads that spin briefly
/// between loops (a training step runs hundreds of short parallel loops and products back to
/// back, and a futex wake-up per loop costs as much as a small kernel), then sleep, so an idle
/// process leaves the cores alone. One loop at a time: a caller that finds the pool taken (a
/// second trainer in the same process) runs its parts itself, in the same order.
///
/// A loop is published as a ticket (generation << 32 | parts << 16 | next part) in one atomic,
/// so a helper only ever claims parts of the loop whose body it read, and judges whether parts
/// are left by that loop's own count (a helper finishing loop g must not read loop g + 1's
/// count before g + 1's ticket exists: it would claim a part of g that was never there and run
/// g + 1's body on it twice).
final class ThreadPool: @unchecked Sendable {
    let helpers: Int
    private let ticket = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let taken = Atomic<Bool>(false)
    private var body: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// How long a helper spins for the next loop before it sleeps.
    static let spinSeconds = 0.0002

    init(helpers: Int) {
        self.helpers = helpers
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for _ in 0..<helpers {
            let box = Unmanaged.passRetained(self)
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                let pool = Unmanaged<ThreadPool>.fromOpaque(arg!).takeRetainedValue()
                pool.helperLoop()
                return nil
            }, box.toOpaque())
            precondition(rc == 0, "cannot start a compute thread (pthread_create: \(rc))")
            pthread_detach(thread)
        }
    }

    /// Runs body(0..<parts) across the helpers and the caller; false if another loop holds the pool.
    func run(_ parts: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard taken.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        precondition(parts < 1 << 16, "ThreadPool.run: \(parts) parts (at most 65535)")
        self.body = body
        finished.store(0, ordering: .relaxed)
        let generation = ((ticket.load(ordering: .relaxed) >> 32) + 1) & 0x7FFF_FFFF
        ticket.store(generation << 32 | parts << 16, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
        }
        Parallel.markInside(true)
        work(generation)
        Parallel.markInside(false)
        while finished.load(ordering: .acquiring) < parts { ringtrain_cpu_relax() }
        self.body = nil
        taken.store(false, ordering: .releasing)
        return true
    }

    /// Claims and runs parts of loop `generation` until none are left.
    private func work(_ generation: Int) {
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> 32 == generation, t & 0xFFFF < (t >> 16) & 0xFFFF else { return }
            guard ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing).exchanged else { continue }
            body!(t & 0xFFFF)
            finished.add(1, ordering: .releasing)
        }
    }

    private func helperLoop() {
        Parallel.markInside(true)
        var seen = 0
        while true {
            var spins = 0, start = 0.0
            while ticket.load(ordering: .acquiring) >> 32 == seen {
                spins += 1
                if spins & 255 == 0 {
                    let now = monotonicSeconds()
                    if start == 0 { start = now } else if now - start > Self.spinSeconds { sleep(until: seen); start = 0 }
                }
                ringtrain_cpu_relax()
            }
            seen = ticket.load(ordering: .acquiring) >> 32
            work(seen)
        }
    }

    private func sleep(until seen: Int) {
        pthread_mutex_lock(&mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen { pthread_cond_wait(&wake, &mutex) }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(&mutex)
    }
}
