/* `ocvm down NAME`: ask the VM's supervisor to stop it (SIGTERM: ACPI power-off, QMP quit,
 * SIGKILL; --force, SIGUSR1: QMP quit at once), wait for it, and escalate when it does not
 * answer: SIGTERM again (it hurries), then SIGKILL to its QEMU and to it, each bounded and logged.
 * A supervisor that died is cleaned up after, an orphan QEMU it left stopped. */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/error.h"
#include "launcher/qemu_proc.h"
#include "launcher/runtime_dir.h"
#include "launcher/vm_lookup.h"
#include "netsetup/netsetup.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* After a graceful stop's time: a second SIGTERM makes the supervisor quit QEMU and SIGKILL it
 * 5 s later (its KILL_GRACE_S); this much more, and it is not answering. */
enum { HURRY_WAIT_S = 8, KILL_WAIT_S = 5, ORPHAN_GRACE_MS = 2000, FIND_MAX = 8 };

static int wait_pidfd(int pidfd, unsigned timeout_s)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, (int)timeout_s * 1000);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : negative_errno();
}

static int send_signal(int pidfd, int sig)
{
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? negative_errno() : 0;
}

/* How long the supervisor may take: the config's timeouts.shutdown_s plus the QMP quit grace and
 * a margin (with --force, those two only); the default when the config cannot be read (down still
 * works once it is gone). */
static unsigned stop_timeout_s(const char *name, const char *config_path, bool force)
{
    if (force)
        return HURRY_WAIT_S;
    _cleanup_free_ char *path = NULL, *error = NULL;
    if (!config_path && config_path_for_name(name, &path) == 0)
        config_path = path;
    struct vm_config *c;
    unsigned s = 30 + HURRY_WAIT_S; /* shutdown_s default + quit grace and margin */
    if (config_path && config_load(config_path, &c, &error) == 0) {
        s = c->timeouts.shutdown_s + HURRY_WAIT_S;
        vm_config_free(c);
    }
    return s;
}

static void undo_stale_network(const char *name, const char *dir)
{
    _cleanup_free_ char *path = NULL, *error = NULL;
    struct netsetup_state ns;
    int r = cli_read_net_record(dir, &ns, &path);
    if (r == -EINVAL)
        log_error(NULL, "%s is not readable: its network is left as it is", path);
    if (r <= 0)
        return;
    r = netsetup_cleanup(&ns, &error);
    if (r < 0)
        log_error("netsetup", "undo the network of a dead supervisor: %s",
                  error ? error : strerror(-r));
    else
        log_info(NULL, "removed the network a dead supervisor left");
}

/* Stops QEMU PID of ID (verified through a pidfd: qemu_proc_stop()); false if it survived. */
static bool stop_qemu(const struct qemu_proc_id *id, pid_t pid, unsigned grace_ms, const char *what)
{
    log_warning(NULL, "%s QEMU (pid %d): %s", what, (int)pid, grace_ms ? "SIGTERM" : "SIGKILL");
    int r = qemu_proc_stop(id, pid, grace_ms);
    if (r == -ESRCH || r == 0)
        return true; /* gone, or not that QEMU any more */
    log_error(NULL, "stop QEMU (pid %d): %s", (int)pid, strerror(-r));
    return false;
}

/* Nobody holds the lock: stops the QEMUs a dead supervisor left, undoes its network, removes its
 * runtime directory. */
static int clean_stale(const struct qemu_proc_id *id, const struct vm_lookup *l)
{
    const char *name = id->name, *dir = id->rundir;
    int code = EXIT_OK;
    for (unsigned i = 0; i < l->n_orphans; i++)
        if (!stop_qemu(id, l->orphans[i], ORPHAN_GRACE_MS,
                       "stopping the orphan a dead supervisor left:"))
            code = EXIT_FAILED;
    undo_stale_network(name, dir); /* a supervisor that was killed left its network */
    int s = runtime_dir_clean_stale(dir);
    if (s < 0 && s != -ENOENT)
        log_error(NULL, "remove stale %s: %s", dir, strerror(-s));
    if (code == EXIT_OK)
        printf("%s: not running%s\n", name,
               l->n_orphans ? " (stopped the QEMU a dead supervisor left)" : "");
    return code;
}

/* The supervisor is gone without cleaning up: wait for its lock to be released, then do it. */
static int clean_after_dead_supervisor(const struct qemu_proc_id *id, pid_t pid)
{
    const char *dir = id->rundir;
    for (int i = 0; i < 100 && runtime_dir_is_locked(dir) > 0; i++)
        usleep(100000);
    if (runtime_dir_is_locked(dir) > 0) {
        log_error(NULL, "supervisor %d is gone but %s/%s is still held", (int)pid, dir,
                  runtime_file_name(RUNTIME_LOCK));
        return EXIT_FAILED;
    }
    struct vm_lookup l;
    if (vm_lookup(id, &l) < 0)
        l = (struct vm_lookup){0};
    return clean_stale(id, &l);
}

/* The supervisor does not answer: SIGKILL to its QEMU (qemu_proc_find()) and to it. */
static int kill_everything(const struct qemu_proc_id *id, int pidfd, pid_t sup, pid_t qemu)
{
    pid_t q[FIND_MAX];
    int n = qemu_proc_find(id, q, FIND_MAX);
    if (n <= 0 && qemu > 0) {
        q[0] = qemu;
        n = 1;
    }
    for (int i = 0; i < n; i++)
        stop_qemu(id, q[i], 0, "the supervisor does not answer: killing");
    log_warning(NULL, "supervisor %d does not answer: SIGKILL", (int)sup);
    int r = send_signal(pidfd, SIGKILL);
    if ((r < 0 && r != -ESRCH) || wait_pidfd(pidfd, KILL_WAIT_S) < 0) {
        log_error(NULL, "supervisor %d survived SIGKILL for %d s: %s", (int)sup, KILL_WAIT_S,
                  r < 0 ? strerror(-r) : "still running");
        return EXIT_FAILED;
    }
    int code = clean_after_dead_supervisor(id, sup);
    if (code == EXIT_OK)
        log_notice(NULL, "stopped by force: supervisor %d and its QEMU were killed", (int)sup);
    return code;
}

static int verb_down(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_down, argc, argv, CLI_FORCE, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    _cleanup_free_ char *name = NULL, *dir = NULL;
    if ((r = cli_vm_name(a.name, a.config, &name)))
        return r;
    unsigned timeout_s = stop_timeout_s(name, a.config, a.force);
    if (runtime_dir_path(name, &dir) < 0) {
        log_error(NULL, "no runtime directory (set XDG_RUNTIME_DIR or run as root)");
        return EXIT_FAILED;
    }
    struct vm_lookup l;
    _cleanup_(qemu_proc_id_done) struct qemu_proc_id id = {0};
    if ((r = vm_lookup_qemu_id(NULL, name, a.config, dir, &id)) < 0 ||
        (r = vm_lookup(&id, &l)) < 0) {
        log_error(NULL, "look up %s: %s", dir, strerror(-r));
        return EXIT_FAILED;
    }
    if (!l.running)
        return clean_stale(&id, &l);
    if (*l.why)
        log_notice(NULL, "%s", l.why);
    if (l.supervisor_pid <= 1) {
        log_error(NULL, "%s/%s is held, but not by a process found here: not stopping", dir,
                  runtime_file_name(RUNTIME_LOCK));
        return EXIT_FAILED;
    }
    pid_t sup = l.supervisor_pid;
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, sup, 0);
    if (pidfd < 0) {
        if (errno == ESRCH)
            return clean_after_dead_supervisor(&id, sup);
        log_error(NULL, "open supervisor %d: %s", (int)sup, strerror(errno));
        return EXIT_FAILED;
    }
    /* checked again now that the pidfd is open: from here on SUP cannot be another process */
    if (!vm_lookup_supervisor_is(&id, sup)) { /* it ended meanwhile, its pid maybe reused */
        log_notice(NULL, "supervisor %d is gone (its pid is not it now): not signalling it",
                   (int)sup);
        return clean_after_dead_supervisor(&id, sup);
    }
    /* SIGUSR1: the supervisor skips the ACPI power-off and quits QEMU at once */
    if ((r = send_signal(pidfd, a.force ? SIGUSR1 : SIGTERM)) < 0) {
        if (r == -ESRCH)
            return clean_after_dead_supervisor(&id, sup);
        log_error(NULL, "signal supervisor %d: %s", (int)sup, strerror(-r));
        return EXIT_FAILED;
    }
    log_notice(NULL, "stopping (supervisor pid %d%s)...", (int)sup,
               a.force ? ", --force: QMP quit at once, then SIGKILL" : "");
    if (wait_pidfd(pidfd, timeout_s) == 0) {
        printf("%s: stopped\n", name);
        return EXIT_OK;
    }
    if (!a.force) {
        log_warning(NULL,
                    "supervisor %d did not stop within %u s: SIGTERM again (QMP quit, then "
                    "SIGKILL of QEMU)",
                    (int)sup, timeout_s);
        if (send_signal(pidfd, SIGTERM) == 0 && wait_pidfd(pidfd, HURRY_WAIT_S) == 0) {
            printf("%s: stopped\n", name);
            return EXIT_OK;
        }
    }
    r = kill_everything(&id, pidfd, sup, l.qemu_pid);
    if (r == EXIT_OK)
        printf("%s: stopped (killed)\n", name);
    return r;
}

const struct cli_verb cli_verb_down = {
    .name = "down",
    .synopsis = "down [--force] NAME|--config FILE",
    .summary = "stop it: ACPI power-off, then QMP quit, then SIGKILL (bounded)",
    .help = "usage: ocvm down [--force] NAME|--config FILE\n"
            "Stop the VM: ACPI power-off (skipped while the guest is still booting), then QMP\n"
            "quit, then SIGKILL, each bounded in time; then remove its runtime directory and\n"
            "the network ocvm made for it. A supervisor that does not answer is sent SIGTERM\n"
            "again, then SIGKILL, and so is its QEMU. A QEMU left running by a dead supervisor\n"
            "is stopped. The VM is found by its lock when state.json is missing.\n"
            "  -f, --force        skip the ACPI power-off: QMP quit at once, then SIGKILL\n",
    .run = verb_down,
};
