/* state: the supervisor's public record of one VM, RUNDIR/state.json, rewritten atomically on every
 * change and read by `ocvm status` and `ocvm down`. Only the supervisor writes it. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

enum { STATE_MAX_STAGES = 16, STATE_MAX_UNSAFE = 16 };

struct vm_stage {
    char name[64];
    uint64_t ms; /* since `ocvm up` started */
};

struct vm_state {
    char phase[16]; /* starting, ready, degraded, restarting, stopping */
    pid_t supervisor_pid, qemu_pid;
    uint64_t started_at_us;      /* CLOCK_REALTIME, when `up` began */
    uint64_t qemu_started_at_us; /* CLOCK_REALTIME, the current QEMU's start */
    unsigned restarts;
    char accel[8], vsock[8];
    struct vm_stage stages[STATE_MAX_STAGES];
    unsigned n_stages;
    char last_exit[160];
    struct vm_relay_figures {
        uint64_t open, accepted, bytes_to_guest, bytes_to_host, errors;
    } relay; /* the host relay; all zero without vsock */
    struct vm_child_state {
        pid_t pid;          /* 0: none runs (kernel backend, no vsock, or between restarts) */
        unsigned restarts;  /* started again after it died */
        char last_exit[96]; /* how the last one ended, or "" */
    } vsock_backend;        /* the user vsock backend's child process */
    struct vm_child_state host_relay;  /* the host relay's child process (launcher/relay_child.h) */
    char unsafe[STATE_MAX_UNSAFE][48]; /* the config's unsafe_* keys in use (policy/rules.h) */
    unsigned n_unsafe;
    struct vm_health {
        unsigned failures;    /* health probes after ready that failed in a row, now */
        char last_error[128]; /* why the last of them failed, or "" */
    } health;                 /* phase "degraded" says these made the VM unhealthy */
};

/* Writes PATH atomically: a temporary file beside it, fsync, rename, fsync of the directory.
 * -errno of the step that failed (-ENOSPC on a full file system); PATH is then unchanged. */
int state_write(const char *path, const struct vm_state *s);
/* Reads PATH strictly: -EINVAL when it is not a state file this version wrote. */
int state_read(const char *path, struct vm_state *ret);
