#include "csupport.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int map_fd(int fd, size_t bytes, void **out) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = (p == MAP_FAILED) ? errno : 0;
    close(fd);
    if (err) return err;
    *out = p;
    return 0;
}

int ringtrain_shm_create(const char *name, size_t bytes, void **out) {
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return errno;
    if (ftruncate(fd, (off_t)bytes) != 0) {
        int err = errno;
        close(fd);
        shm_unlink(name);
        return err;
    }
    // Reserve the pages now: a /dev/shm too small for the segment (containers often mount
    // 64 MiB) must fail here with ENOSPC, not with SIGBUS on a later write.
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err != 0) {
        close(fd);
        shm_unlink(name);
        return err;
    }
    return map_fd(fd, bytes, out);
}

int ringtrain_shm_open(const char *name, size_t bytes, void **out) {
    int fd = shm_open(name, O_RDWR, 0600);
    if (fd < 0) return errno;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < (off_t)bytes) {
        close(fd);
        return EINVAL;
    }
    return map_fd(fd, bytes, out);
}

int ringtrain_shm_unlink(const char *name) { return shm_unlink(name) == 0 ? 0 : errno; }

void ringtrain_shm_unmap(void *base, size_t bytes) { munmap(base, bytes); }

uint32_t ringtrain_load_acquire(const uint32_t *p) {
    return atomic_load_explicit((const _Atomic uint32_t *)p, memory_order_acquire);
}

void ringtrain_store_release(uint32_t *p, uint32_t v) {
    atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_release);
}

uint32_t ringtrain_fetch_add(uint32_t *p, uint32_t v) {
    return atomic_fetch_add_explicit((_Atomic uint32_t *)p, v, memory_order_acq_rel) + v;
}

int ringtrain_futex_wait(uint32_t *p, uint32_t expected, int timeout_ms) {
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    long rc = syscall(SYS_futex, p, FUTEX_WAIT, expected, &ts, NULL, 0);
    return rc == 0 ? 0 : errno;
}

int ringtrain_futex_wake(uint32_t *p) {
    long rc = syscall(SYS_futex, p, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
    return rc < 0 ? errno : 0;
}


int ringtrain_compare_exchange(uint32_t *p, uint32_t expected, uint32_t desired) {
    return atomic_compare_exchange_strong_explicit((_Atomic uint32_t *)p, &expected, desired,
                                                   memory_order_acq_rel, memory_order_acquire);
}
