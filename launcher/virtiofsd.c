#include "launcher/virtiofsd.h"

#include "common/caps.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/securebits.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

enum { STOP_GRACE_MS = 3000 };

/* What virtiofsd asks for once sandboxed (its setup_capabilities(): chown, dac_override,
 * fowner, fsetid, setgid, setuid, mknod, setfcap); it exits unless it holds each one it keeps,
 * so -o modcaps takes away what it is not given. Never mknod (device nodes on the host) nor
 * setfcap (file capabilities on the host). */
static const char modcaps_read_only[] =
    "modcaps=-chown:-dac_override:-fowner:-fsetid:-setgid:-setuid:-mknod:-setfcap";
static const char modcaps_read_write[] = "modcaps=-mknod:-setfcap";

uint64_t virtiofsd_user_caps(bool read_only)
{
    /* chroot(2) into the source, its sandbox; CAP_SETPCAP to empty its own bounding set after
     * (libcap-ng's capng_apply(), which otherwise fails, and virtiofsd exits). It drops both
     * itself once sandboxed. */
    uint64_t set = CAPS_BIT(CAP_SYS_CHROOT) | CAPS_BIT(CAP_SETPCAP);
    if (!read_only) /* to create files as the guest's uid and gid, whatever the modes */
        set |= CAPS_BIT(CAP_CHOWN) | CAPS_BIT(CAP_DAC_OVERRIDE) | CAPS_BIT(CAP_FOWNER) |
               CAPS_BIT(CAP_FSETID) | CAPS_BIT(CAP_SETUID) | CAPS_BIT(CAP_SETGID);
    return set;
}

/* Every system call that changes a file or a directory fails with EROFS; opening with
 * O_WRONLY, O_RDWR, O_CREAT or O_TRUNC too (one rule per flag: libseccomp has no "masked not
 * equal"). openat2's flags sit behind a pointer a filter cannot read: ENOSYS, which glibc and
 * virtiofsd do not use. */
static const int changes_files[] = {
    SCMP_SYS(creat),       SCMP_SYS(mkdir),        SCMP_SYS(mkdirat),      SCMP_SYS(mknod),
    SCMP_SYS(mknodat),     SCMP_SYS(unlink),       SCMP_SYS(unlinkat),     SCMP_SYS(rmdir),
    SCMP_SYS(rename),      SCMP_SYS(renameat),     SCMP_SYS(renameat2),    SCMP_SYS(link),
    SCMP_SYS(linkat),      SCMP_SYS(symlink),      SCMP_SYS(symlinkat),    SCMP_SYS(chmod),
    SCMP_SYS(fchmod),      SCMP_SYS(fchmodat),     SCMP_SYS(chown),        SCMP_SYS(fchown),
    SCMP_SYS(lchown),      SCMP_SYS(fchownat),     SCMP_SYS(truncate),     SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate),   SCMP_SYS(utime),        SCMP_SYS(utimes),       SCMP_SYS(utimensat),
    SCMP_SYS(futimesat),   SCMP_SYS(setxattr),     SCMP_SYS(lsetxattr),    SCMP_SYS(fsetxattr),
    SCMP_SYS(removexattr), SCMP_SYS(lremovexattr), SCMP_SYS(fremovexattr),
};
static const int write_flags[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC};

int virtiofsd_deny_writes(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; r == 0 && i < ELEMENTSOF(changes_files); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EROFS), changes_files[i], 0);
    for (size_t i = 0; r == 0 && i < ELEMENTSOF(write_flags); i++) {
        scmp_datum_t f = (scmp_datum_t)write_flags[i];
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EROFS), SCMP_SYS(open), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, f, f));
        if (r == 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EROFS), SCMP_SYS(openat), 1,
                                 SCMP_A2(SCMP_CMP_MASKED_EQ, f, f));
    }
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0);
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r;
}

/* As USER, with KEEP in the effective, permitted, inheritable and ambient sets (the ambient set
 * is what an exec of a file without capabilities keeps), and nothing else in the bounding set.
 * The securebits, locked, make its user changes leave the capability sets alone: a read-write
 * share's daemon switches each thread's effective uid to the guest's for every request and
 * back, and the kernel's fixup would otherwise empty that thread's effective set on the way
 * back (every request after the first then fails with EPERM). Nor does uid 0 ever give
 * capabilities to what it might exec. */
static int become(uid_t uid, gid_t gid, uint64_t keep)
{
    int r = caps_drop_bounding(keep);
    if (r < 0)
        return r;
    if (prctl(PR_SET_SECUREBITS,
              SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT |
                  SECBIT_NOROOT_LOCKED,
              0, 0, 0) < 0)
        return negative_errno();
    if ((r = caps_change_user(uid, gid)) < 0)
        return r;
    if ((r = caps_set(&(struct caps){.effective = keep, .permitted = keep, .inheritable = keep})) <
        0)
        return r;
    for (unsigned long cap = 0; cap < 64; cap++)
        if ((keep & CAPS_BIT(cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return negative_errno();
    return 0;
}

static _Noreturn void fail(const char *what, int r)
{
    fprintf(stderr, "virtiofsd: %s: %s\n", what, strerror(-r));
    _exit(127);
}

/* In the child, the socket at fd 3. Its sandbox is always sandbox=chroot, into the share (what
 * takes only CAP_SYS_CHROOT, no namespace and no mount); as USER (uid -1: as this process, root
 * with machine.unsafe_qemu_as_root) it gets that capability as an ambient one. A read-only
 * share's daemon is also refused every write by a seccomp filter of ocvm's. */
static _Noreturn void exec_virtiofsd(const struct vm_share *s, int listen_fd, uid_t uid, gid_t gid)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    bool as_user = uid != (uid_t)-1;
    /* virtiofsd accept()s once and expects to block until QEMU comes */
    if (dup2(listen_fd, 3) < 0 || fcntl(3, F_SETFL, fcntl(3, F_GETFL) & ~O_NONBLOCK) < 0)
        _exit(127);
    syscall(SYS_close_range, 4, ~0U, 0);
    /* it holds an O_PATH fd per inode the guest looked up: the whole hard limit, which it may
     * not raise itself once it is not root (--rlimit-nofile=0 below) */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* The source is open at fd 4: as the VM's user it could not reach it by its path (the staged
     * secrets are in root's 0700 runtime directory). It is opened as root (an O_PATH
     * open needs no right on the directory itself, which root without CAP_DAC_OVERRIDE may
     * lack: the secrets are the VM user's 0700), and its source is "/proc/self/fd/4/.", which
     * its lstat() and its chroot(2) resolve to that directory. (Not "." from a working
     * directory: it chdir("/")s before its chroot.) */
    int fd = open(s->source, O_PATH | O_DIRECTORY);
    if (fd < 0 || (fd != 4 && (dup2(fd, 4) < 0 || close(fd) < 0)))
        fail(s->source, negative_errno());
    int r;
    if (as_user && (r = become(uid, gid, virtiofsd_user_caps(s->read_only))) < 0)
        fail("change to the VM's user", r);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* after the user change, which clears it */
    if (s->read_only && (r = virtiofsd_deny_writes()) < 0)
        fail("seccomp filter against writes", r);
    const char *modcaps = s->read_only ? modcaps_read_only : modcaps_read_write;
    char *argv[16];
    size_t n = 0;
    argv[n++] = VIRTIOFSD_PATH;
    argv[n++] = "--fd=3";
    if (as_user)
        argv[n++] = "--rlimit-nofile=0";
    argv[n++] = "-o";
    argv[n++] = "source=/proc/self/fd/4/.";
    argv[n++] = "-o";
    argv[n++] = "cache=auto";
    argv[n++] = "-o";
    argv[n++] = "sandbox=chroot";
    argv[n++] = "-o";
    argv[n++] = (char *)modcaps;
    argv[n] = NULL;
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", VIRTIOFSD_PATH, strerror(errno));
    _exit(127);
}

int virtiofsd_start(const struct vm_config *c, const char *runtime_dir, const char *user,
                    struct virtiofsd_set *set, char **error)
{
    *set = (struct virtiofsd_set){0};
    *error = NULL;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    size_t n = 0;
    for (size_t i = 0; i < c->n_shares; i++)
        n += c->shares[i].proto == SHARE_VIRTIOFS;
    if (n == 0)
        return 0;
    if (access(VIRTIOFSD_PATH, X_OK) < 0) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s (install qemu-system-common)", VIRTIOFSD_PATH,
                          strerror(-r));
    }
    if (user) {
        struct passwd *pw = getpwnam(user);
        if (!pw)
            return error_setf(error, -ENOENT, "virtiofsd: no user %s", user);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (!(set->pids = calloc(n, sizeof(pid_t))))
        return -ENOMEM;
    for (size_t i = 0; i < c->n_shares; i++) {
        const struct vm_share *s = &c->shares[i];
        if (s->proto != SHARE_VIRTIOFS)
            continue;
        _cleanup_free_ char *path = runtime_virtiofs_socket_path(runtime_dir, s->tag);
        _cleanup_close_ int fd = -1;
        int r = path ? 0 : -ENOMEM;
        if (r == 0)
            r = runtime_dir_listen(path, &fd);
        pid_t pid = r == 0 ? fork() : -1;
        if (r == 0 && pid < 0)
            r = negative_errno();
        if (r < 0) {
            virtiofsd_stop(set);
            return error_setf(error, r, "shares \"%s\": start virtiofsd: %s", s->tag, strerror(-r));
        }
        if (pid == 0)
            exec_virtiofsd(s, fd, uid, gid);
        set->pids[set->n++] = pid;
    }
    return 0;
}

static bool any_running(const struct virtiofsd_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->pids[i] > 0)
            return true;
    return false;
}

static void reap_some(struct virtiofsd_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->pids[i] > 0 && waitpid(set->pids[i], NULL, WNOHANG) == set->pids[i])
            set->pids[i] = 0;
}

void virtiofsd_stop(struct virtiofsd_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->pids[i] > 0)
            kill(set->pids[i], SIGTERM);
    for (int waited = 0; any_running(set) && waited < STOP_GRACE_MS; waited += 20) {
        reap_some(set);
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    }
    for (size_t i = 0; i < set->n; i++)
        if (set->pids[i] > 0) {
            kill(set->pids[i], SIGKILL);
            waitpid(set->pids[i], NULL, 0);
            set->pids[i] = 0;
        }
    free(set->pids);
    *set = (struct virtiofsd_set){0};
}

bool virtiofsd_reaped(struct virtiofsd_set *set, pid_t pid)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->pids[i] == pid) {
            set->pids[i] = 0;
            return true;
        }
    return false;
}
