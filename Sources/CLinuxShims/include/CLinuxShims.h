// The Linux interfaces Swift's Glibc module does not expose: epoll, eventfd, the few socket
// options the server sets, and the CPU affinity count. Headers, static inline wrappers, and one function in shims.c; every
// other line is Swift.
#ifndef SMALL_DB_C_LINUX_SHIMS_H
#define SMALL_DB_C_LINUX_SHIMS_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>

// struct epoll_event is packed on x86-64; these wrappers keep its layout on the C side.

static inline int small_db_epoll_ctl(int epoll, int operation, int descriptor, uint32_t events, uint64_t data) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epoll, operation, descriptor, &event);
}

/// One ready descriptor, unpacked.
typedef struct {
    uint32_t events;
    uint64_t data;
} small_db_ready_event;

/// Waits like epoll_wait and copies up to `capacity` events into `ready`.
static inline int small_db_epoll_wait(int epoll, small_db_ready_event *ready, int capacity, int timeout_ms) {
    struct epoll_event events[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epoll, events, capacity, timeout_ms);
    for (int index = 0; index < count; index++) {
        ready[index].events = events[index].events;
        ready[index].data = events[index].data.u64;
    }
    return count;
}

/// accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC) (defined in shims.c).
int small_db_accept_nonblocking(int listener);

/// The CPUs this process may run on (sched_getaffinity: taskset, a container's cpuset), or -1.
int small_db_usable_cpu_count(void);

#endif
