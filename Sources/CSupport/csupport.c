#define _GNU_SOURCE
#include "csupport.h"
#include <malloc.h>
#include <sys/prctl.h>

int ringtrain_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
}

#include <stdio.h>
#include <string.h>

int ringtrain_process_alive(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    // "pid (comm) S ...": the state follows the last ')' (comm may itself contain parentheses).
    char *close = strrchr(buf, ')');
    if (!close || close[1] != ' ') return 1;
    char state = close[2];
    return state != 'Z' && state != 'X';
}

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int ringtrain_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno; }

void ringtrain_release_free_memory(void) { malloc_trim(0); }
