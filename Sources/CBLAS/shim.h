#include <cblas.h>

/* A spin-wait hint for TensorCore's thread pool (PAUSE on x86: lets the sibling hyperthread
   run and saves power while a helper waits for the next parallel loop). */
static inline void ringtrain_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
