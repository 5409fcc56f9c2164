/* caps: this process's capability sets as 64-bit masks, read and set, and the bounding set
 * dropped: for each process of ocvm that gives up root's powers (the supervisor, the vsock
 * backend, the guest relay). Raw capget/capset, no libcap, so that the static ocvm-guest needs
 * nothing more. Header only, no state. */
#pragma once

#include "common/error.h"

#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Capability CAP as a bit of a mask. */
#define CAPS_BIT(cap) (UINT64_C(1) << (cap))

struct caps {
    uint64_t effective, permitted, inheritable;
};

/* This process's sets into *RET. */
static inline int caps_get(struct caps *ret)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return negative_errno();
    ret->effective = (uint64_t)d[0].effective | (uint64_t)d[1].effective << 32;
    ret->permitted = (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
    ret->inheritable = (uint64_t)d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    return 0;
}

/* Sets this process's sets to C (only ever less than it has). */
static inline int caps_set(const struct caps *c)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{.effective = (uint32_t)c->effective,
                                           .permitted = (uint32_t)c->permitted,
                                           .inheritable = (uint32_t)c->inheritable},
                                          {.effective = (uint32_t)(c->effective >> 32),
                                           .permitted = (uint32_t)(c->permitted >> 32),
                                           .inheritable = (uint32_t)(c->inheritable >> 32)}};
    return syscall(SYS_capset, &h, d) < 0 ? negative_errno() : 0;
}

/* Becomes UID and GID, real, effective and saved, with no supplementary group (needs CAP_SETUID
 * and CAP_SETGID), and checks that it did. */
static inline int caps_change_user(uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return negative_errno();
    uid_t ru, eu, su;
    if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
        return -EPERM;
    return 0;
}

/* Drops every capability outside KEEP from the bounding set (needs CAP_SETPCAP). */
static inline int caps_drop_bounding(uint64_t keep)
{
    for (unsigned long cap = 0; cap < 64; cap++) {
        int has = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (has < 0)
            return 0; /* EINVAL: past the last capability this kernel knows */
        if (has && !(keep & CAPS_BIT(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return negative_errno();
    }
    return 0;
}
