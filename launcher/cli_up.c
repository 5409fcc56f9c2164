/* `ocvm up`: validate, check the host can run this VM, optionally detach, then supervise. */
#include "launcher/cli.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/clock.h"
#include "launcher/host_facts.h"
#include "launcher/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* True when BIN names an executable (as a path, or found in $PATH). */
static bool executable_exists(const char *bin)
{
    if (strchr(bin, '/'))
        return access(bin, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    _cleanup_free_ char *copy = strdup(path);
    char *save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", d, bin) >= 0 && access(p, X_OK) == 0)
            return true;
    }
    return false;
}

/* The parent of `up -d`: passes on the supervisor's lines as they come, until its pipe LOG_FD
 * ends (at its verdict), then reads the one-byte verdict from FD. */
static int wait_for_detached(pid_t child, int log_fd, int fd, const char *name)
{
    char buf[4096], status = 0;
    ssize_t n;
    for (;;) {
        n = read(log_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (const char *b = buf; n > 0;) {
            ssize_t w = write(STDERR_FILENO, b, (size_t)n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break; /* our stderr is gone: read on, so the supervisor is never held */
            b += w;
            n -= w;
        }
    }
    close(log_fd);
    do
        n = read(fd, &status, 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n == 1 && status == 'R') {
        printf("%s: running in the background (ocvm status %s; ocvm down %s)\n", name, name, name);
        return EXIT_OK;
    }
    log_error(NULL, "failed to start (the lines above say why)");
    return EXIT_FAILED;
}

static int verb_up(int argc, char **argv)
{
    uint64_t t0 = clock_usec(CLOCK_MONOTONIC);
    struct cli_args a;
    int r = cli_parse(&cli_verb_up, argc, argv, CLI_DETACH, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    struct supervisor_options o = {.t0_usec = t0, .ready_fd = -1};
    if ((r = cli_enforce_policy(c)))
        goto out; /* before anything is made or started */
    r = EXIT_FAILED;
    if (!executable_exists(c->machine.qemu)) {
        log_error(NULL, "machine.qemu: \"%s\" is not an executable (install qemu-system-x86)",
                  c->machine.qemu);
        goto out;
    }
    struct host_facts hf;
    const char *key, *why;
    if ((r = host_facts_resolve(c, &hf, &key, &why)) < 0) {
        /* an explicit choice this host cannot honour (accel "kvm", vsock.backend "kernel"), or a
         * QEMU user that is missing */
        log_error(NULL, "%s is \"%s\" but %s", key,
                  strcmp(key, "machine.user") == 0    ? c->machine.user
                  : strcmp(key, "machine.accel") == 0 ? "kvm"
                                                      : "kernel",
                  why);
        r = EXIT_FAILED;
        goto out;
    }
    if (hf.tcg_why)
        log_notice(NULL, "using TCG (software emulation): %s", hf.tcg_why);
    if ((r = cli_plan_shares(c)))
        goto out;
    r = EXIT_FAILED;
    o.accel = hf.accel;
    o.vsock = hf.vsock;
    o.tsc_khz = hf.tsc_khz;
    o.qemu_user = hf.qemu_user;
    if (a.detach) {
        int p[2], lp[2]; /* the verdict; the supervisor's lines until then */
        if (pipe2(p, O_CLOEXEC) < 0) {
            log_error(NULL, "pipe: %s", strerror(errno));
            goto out;
        }
        if (pipe2(lp, O_CLOEXEC) < 0) {
            log_error(NULL, "pipe: %s", strerror(errno));
            close(p[0]);
            close(p[1]);
            goto out;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            log_error(NULL, "fork: %s", strerror(errno));
            close(p[0]);
            close(p[1]);
            close(lp[0]);
            close(lp[1]);
            goto out;
        }
        if (pid > 0) {
            close(p[1]);
            close(lp[1]);
            r = wait_for_detached(pid, lp[0], p[0], c->name);
            goto out;
        }
        close(p[0]);
        close(lp[0]);
        /* our stderr is the pipe until the supervisor moves it to its log (run_log.h), before it
         * starts any child */
        if (dup2(lp[1], STDERR_FILENO) < 0)
            _exit(EXIT_FAILED);
        close(lp[1]);
        setsid();
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
        o.ready_fd = p[1];
        o.detached = 1;
    }
    r = supervisor_run(c, &o);
out:
    vm_config_free(c);
    return r;
}

const struct cli_verb cli_verb_up = {
    .name = "up",
    .synopsis = "up [-d] NAME|--config FILE",
    .summary = "boot the VM and supervise it (-d: detach once it is ready)",
    .help = "usage: ocvm up [-d] NAME|--config FILE\n"
            "Boot the VM and supervise it until ocvm down, SIGTERM or Ctrl-C.\n"
            "  -d, --detach       return once the guest is ready, supervising in the\n"
            "                     background\n",
    .run = verb_up,
};
