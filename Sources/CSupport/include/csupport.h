#ifndef RINGTRAIN_CSUPPORT_H
#define RINGTRAIN_CSUPPORT_H

/// Asks the kernel to send `sig` to this process when its parent dies (Linux prctl
/// PR_SET_PDEATHSIG; the C call is variadic, which Swift cannot call directly).
/// Returns 0 on success.
int ringtrain_set_parent_death_signal(int sig);

#endif
