// The one wrapper that needs _GNU_SOURCE, which the shared header must not define (it would change
// the system headers Swift's Glibc module has already imported).
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CLinuxShims.h"

int small_db_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

#include <sched.h>

int small_db_usable_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}
