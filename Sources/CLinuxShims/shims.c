// The one wrapper that needs _GNU_SOURCE, which the shared header must not define (it would change
// the system headers Swift's Glibc module has already imported).
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CLinuxShims.h"

int small_db_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
