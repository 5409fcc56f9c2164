#include "launcher/virtiofsd.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

enum { STOP_GRACE_MS = 3000 };

/* In the child: own mount namespace, the source read-only if asked, the socket at fd 3. */
static _Noreturn void exec_virtiofsd(const struct vm_share *s, int listen_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (s->read_only) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(s->source, s->source, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount(NULL, s->source, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
            fprintf(stderr, "virtiofsd: read-only bind mount of %s: %s\n", s->source,
                    strerror(errno));
            _exit(127);
        }
    }
    /* virtiofsd accept()s once and expects to block until QEMU comes */
    if (dup2(listen_fd, 3) < 0 || fcntl(3, F_SETFL, fcntl(3, F_GETFL) & ~O_NONBLOCK) < 0)
        _exit(127);
    syscall(SYS_close_range, 4, ~0U, 0);
    char source[4200];
    if (snprintf(source, sizeof(source), "source=%s", s->source) >= (int)sizeof(source))
        _exit(127);
    /* Its sandbox: sandbox=namespace (the default, said here so it cannot change under us):
     * new mount, pid and net namespaces, pivot_root into the source, a seccomp filter, and only
     * the capabilities it serves files with. A read-only share creates, chowns and chmods
     * nothing: it does without those, and keeps reading (dac_override, fowner) and the per-request
     * fsuid/fsgid (setuid, setgid). */
    char *argv[] = {VIRTIOFSD_PATH,
                    "--fd=3",
                    "-o",
                    source,
                    "-o",
                    "cache=auto",
                    "-o",
                    "sandbox=namespace",
                    s->read_only ? "-o" : NULL,
                    "modcaps=-chown:-fsetid:-mknod:-setfcap",
                    NULL};
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", VIRTIOFSD_PATH, strerror(errno));
    _exit(127);
}

int virtiofsd_start(const struct vm_config *c, const char *runtime_dir, struct virtiofsd_set *set,
                    char **error)
{
    *set = (struct virtiofsd_set){0};
    *error = NULL;
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
            exec_virtiofsd(s, fd);
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
