#ifndef RINGTRAIN_CSUPPORT_H
#define RINGTRAIN_CSUPPORT_H

/// Asks the kernel to send `sig` to this process when its parent dies (Linux prctl
/// PR_SET_PDEATHSIG; the C call is variadic, which Swift cannot call directly).
/// Returns 0 on success.
int ringtrain_set_parent_death_signal(int sig);

/// 1 while process `pid` exists and has not exited (a zombie counts as exited), else 0.
int ringtrain_process_alive(int pid);

/// pipe2(fds, O_CLOEXEC): a pipe no concurrently spawned child inherits. Returns 0 or errno.
int ringtrain_pipe_cloexec(int fds[2]);

/// malloc_trim(0): returns the heap's free memory to the system (after a large structure is freed).
void ringtrain_release_free_memory(void);


#include <stddef.h>
#include <stdint.h>

/// POSIX shared memory: create (exclusively) or open a segment of `bytes` and map it
/// read-write. Return 0, or an errno value.
int ringtrain_shm_create(const char *name, size_t bytes, void **out);
int ringtrain_shm_open(const char *name, size_t bytes, void **out);
int ringtrain_shm_unlink(const char *name);
void ringtrain_shm_unmap(void *base, size_t bytes);

/// Atomics on 32-bit words in shared memory (acquire loads, release stores).
uint32_t ringtrain_load_acquire(const uint32_t *p);
void ringtrain_store_release(uint32_t *p, uint32_t v);
uint32_t ringtrain_fetch_add(uint32_t *p, uint32_t v);
/// Stores `desired` if *p == expected; returns 1 if it did.
int ringtrain_compare_exchange(uint32_t *p, uint32_t expected, uint32_t desired);

/// futex(2) on a word shared between processes: wait while *p == expected (up to timeout_ms),
/// wake every waiter.
int ringtrain_futex_wait(uint32_t *p, uint32_t expected, int timeout_ms);
int ringtrain_futex_wake(uint32_t *p);

#endif
