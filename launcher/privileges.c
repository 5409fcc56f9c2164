/* The supervisor's capabilities after start; see privileges.h. */
#include "launcher/privileges.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/virtiofsd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* capabilities(7)'s names, by number */
static const char *const cap_names[] = {
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
};

uint64_t privileges_supervisor_set(const struct privileges_needs *n)
{
    uint64_t set = 0;
    if (n->network)
        set |= CAPS_BIT(CAP_NET_ADMIN);
    if (n->other_user)
        set |= CAPS_BIT(CAP_SETUID) | CAPS_BIT(CAP_SETGID) | CAPS_BIT(CAP_SETPCAP) |
               CAPS_BIT(CAP_KILL);
    if (n->virtiofsd_ro)
        set |= virtiofsd_user_caps(true);
    if (n->virtiofsd_rw)
        set |= virtiofsd_user_caps(false);
    return set;
}

int privileges_format(uint64_t set, char **ret)
{
    char *s = NULL;
    size_t len = 0;
    _cleanup_fclose_ FILE *f = open_memstream(&s, &len);
    if (!f)
        return -ENOMEM;
    bool first = true;
    for (unsigned c = 0; c < 64; c++) {
        if (!(set & CAPS_BIT(c)))
            continue;
        if (c < ELEMENTSOF(cap_names))
            fprintf(f, "%s%s", first ? "" : ",", cap_names[c]);
        else
            fprintf(f, "%scap_%u", first ? "" : ",", c);
        first = false;
    }
    if (first)
        fputs("none", f);
    if (fclose(TAKE_PTR(f)) != 0) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

int privileges_effective(uint64_t *ret)
{
    struct caps c;
    int r = caps_get(&c);
    if (r < 0)
        return r;
    *ret = c.effective;
    return 0;
}

#define STEP(what, expr)                                                                           \
    do {                                                                                           \
        int r_ = (expr);                                                                           \
        if (r_ < 0) {                                                                              \
            *ret_step = (what);                                                                    \
            return r_;                                                                             \
        }                                                                                          \
    } while (0)

int privileges_drop(uint64_t set, uint64_t *ret_kept, const char **ret_step)
{
    struct caps c;
    STEP("capget", caps_get(&c));
    uint64_t keep = set & c.permitted;
    /* Without CAP_SETPCAP the bounding set stays as it is: no_new_privs below still keeps an
     * exec from gaining anything beyond the permitted set. */
    if (c.effective & CAPS_BIT(CAP_SETPCAP))
        STEP("drop the bounding set", caps_drop_bounding(keep));
    STEP("clear the ambient set",
         prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL
             ? negative_errno()
             : 0);
    STEP("capset", caps_set(&(struct caps){.effective = keep, .permitted = keep}));
    STEP("PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? negative_errno() : 0);
    /* what the kernel says now, not what we asked for */
    STEP("capget", caps_get(&c));
    if (c.effective != keep || c.permitted != keep || c.inheritable) {
        *ret_step = "verify the capability sets";
        return -EPERM;
    }
    *ret_kept = keep;
    return 0;
}

/* In the child: become the owner of directory PFD (an O_PATH fd: we could not reach it by its
 * path as that user, its parent being root's 0700 runtime directory), unlink what it holds. */
static _Noreturn void empty_as(int pfd, uid_t uid, gid_t gid)
{
    if (caps_change_user(uid, gid) < 0)
        _exit(1);
    int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d)
        _exit(1);
    int failed = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
            failed = 1;
    _exit(failed);
}

int privileges_empty_dir_as_owner(const char *dir)
{
    _cleanup_close_ int pfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (pfd < 0)
        return errno == ENOENT ? 0 : negative_errno();
    if (fstat(pfd, &st) < 0)
        return negative_errno();
    if (st.st_uid == geteuid())
        return 0; /* ours: the runtime directory's removal empties it */
    pid_t pid = fork();
    if (pid < 0)
        return negative_errno();
    if (pid == 0)
        empty_as(pfd, st.st_uid, st.st_gid);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return negative_errno();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EACCES;
}

int privileges_supervisor_drop(const struct vm_config *c, const char *qemu_user)
{
    if (geteuid() != 0)
        return 0; /* an unprivileged supervisor holds nothing to drop */
    if (!qemu_user) {
        log_msg(LOG_NOTICE, NULL,
                "QEMU runs as root (machine.unsafe_qemu_as_root): the supervisor keeps its "
                "capabilities");
        return 0;
    }
    struct privileges_needs n = {.network = c->network != NULL, .other_user = true};
    for (size_t i = 0; i < c->n_shares; i++)
        if (c->shares[i].proto == SHARE_VIRTIOFS) {
            n.virtiofsd_ro |= c->shares[i].read_only;
            n.virtiofsd_rw |= !c->shares[i].read_only;
        }
    uint64_t kept;
    const char *step = "";
    int r = privileges_drop(privileges_supervisor_set(&n), &kept, &step);
    if (r < 0) {
        log_msg(LOG_ERR, NULL, "drop the supervisor's capabilities: %s: %s", step, strerror(-r));
        return r;
    }
    _cleanup_free_ char *names = NULL;
    if (privileges_format(kept, &names) == 0)
        log_msg(LOG_INFO, NULL, "privileges: the supervisor keeps %s (uid 0, no_new_privs)", names);
    return 0;
}
