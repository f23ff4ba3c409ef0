import Glibc

/// Plain POSIX threads for the few long-lived helpers (batch prefetch, communication control
/// loops), where a thread of our own is clearer than borrowing one from a pool.
public enum Threads {
    /// Starts `body` on a new detached thread.
    public static func detach(_ body: @escaping () -> Void) {
        final class Box { let f: () -> Void; init(_ f: @escaping () -> Void) { self.f = f } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().f()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(tid)
    }

    public static func sleep(seconds: Double) { usleep(UInt32(max(0, min(seconds, 4000)) * 1_000_000)) }
}
