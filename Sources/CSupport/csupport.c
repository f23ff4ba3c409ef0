#include "csupport.h"
#include <sys/prctl.h>

int ringtrain_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
}
