/* `ocvm down NAME`: ask the VM's supervisor to stop it (SIGTERM: ACPI power-off, QMP quit,
 * SIGKILL), wait for it, and clean up after a supervisor that died. */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/error.h"
#include "launcher/runtime_dir.h"
#include "launcher/state.h"
#include "netsetup/netsetup.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int wait_gone(pid_t pid, unsigned timeout_s)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? 0 : negative_errno();
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r = poll(&p, 1, (int)timeout_s * 1000);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : negative_errno();
}

/* How long the supervisor may take: the config's timeouts.shutdown_s plus the QMP quit grace and
 * a margin; the default when the config cannot be read (down still works once it is gone). */
static unsigned stop_timeout_s(const char *name, const char *config_path)
{
    _cleanup_free_ char *path = NULL, *error = NULL;
    if (!config_path && config_path_for_name(name, &path) == 0)
        config_path = path;
    struct vm_config *c;
    unsigned s = 30 + 5 + 10; /* shutdown_s default + quit grace + margin */
    if (config_path && config_load(config_path, &c, &error) == 0) {
        s = c->timeouts.shutdown_s + 15;
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

/* The supervisor is gone without cleaning up: wait for its lock to be released, then do it. */
static int clean_after_dead_supervisor(const char *name, const char *dir, pid_t pid)
{
    for (int i = 0; i < 100 && runtime_dir_is_locked(dir) > 0; i++)
        usleep(100000);
    if (runtime_dir_is_locked(dir) > 0) {
        log_error(NULL, "supervisor %d is gone but %s/%s is still held", (int)pid, dir,
                  runtime_file_name(RUNTIME_LOCK));
        return EXIT_FAILED;
    }
    undo_stale_network(name, dir);
    int r = runtime_dir_clean_stale(dir);
    printf("%s: not running (cleaned up after a dead supervisor)\n", name);
    return r < 0 && r != -ENOENT ? EXIT_FAILED : EXIT_OK;
}

static int verb_down(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_down, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    _cleanup_free_ char *name = NULL, *dir = NULL, *state_path = NULL;
    if ((r = cli_vm_name(a.name, a.config, &name)))
        return r;
    unsigned timeout_s = stop_timeout_s(name, a.config);
    if (runtime_dir_path(name, &dir) < 0 || !(state_path = runtime_file_path(dir, RUNTIME_STATE))) {
        log_error(NULL, "no runtime directory (set XDG_RUNTIME_DIR or run as root)");
        return EXIT_FAILED;
    }
    r = runtime_dir_is_locked(dir);
    if (r <= 0) {
        undo_stale_network(name, dir); /* a supervisor that was killed left its network */
        int s = runtime_dir_clean_stale(dir);
        if (s < 0 && s != -ENOENT)
            log_error(NULL, "remove stale %s: %s", dir, strerror(-s));
        printf("%s: not running\n", name);
        return EXIT_OK;
    }
    struct vm_state st;
    if ((r = state_read(state_path, &st)) < 0 || st.supervisor_pid <= 1) {
        log_error(NULL, "cannot read %s: %s", state_path, strerror(-r));
        return EXIT_FAILED;
    }
    if (kill(st.supervisor_pid, SIGTERM) < 0) {
        if (errno == ESRCH)
            return clean_after_dead_supervisor(name, dir, st.supervisor_pid);
        log_error(NULL, "signal supervisor %d: %s", (int)st.supervisor_pid, strerror(errno));
        return EXIT_FAILED;
    }
    log_notice(NULL, "stopping (supervisor pid %d)...", (int)st.supervisor_pid);
    r = wait_gone(st.supervisor_pid, timeout_s);
    if (r < 0) {
        log_error(NULL, "supervisor %d did not stop within %u s: %s", (int)st.supervisor_pid,
                  timeout_s, strerror(-r));
        return EXIT_FAILED;
    }
    printf("%s: stopped\n", name);
    return EXIT_OK;
}

const struct cli_verb cli_verb_down = {
    .name = "down",
    .synopsis = "down NAME|--config FILE",
    .summary = "stop it: ACPI power-off, then QMP quit, then SIGKILL (bounded)",
    .help = "usage: ocvm down NAME|--config FILE\n"
            "Stop the VM: ACPI power-off, then QMP quit, then SIGKILL, each bounded in\n"
            "time; then remove its runtime directory and the network ocvm made for it.\n",
    .run = verb_down,
};
