/* The verbs that do not start a VM: down, status, console, cmdline; and argument helpers. */
#include "launcher/accel.h"
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/clock.h"
#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"
#include "launcher/state.h"
#include "netsetup/netsetup.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>

int cli_parse(int argc, char **argv, unsigned flags, struct cli_args *ret)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"detach", no_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *verb = argv[0];
    *ret = (struct cli_args){0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+c:dh", opts, NULL)) >= 0) {
        switch (c) {
        case 'c':
            ret->config = optarg;
            break;
        case 'd':
            if (!(flags & CLI_DETACH))
                goto bad;
            ret->detach = true;
            break;
        case 'j':
            if (!(flags & CLI_JSON))
                goto bad;
            ret->json = true;
            break;
        case 'h':
            fprintf(stderr, "see: ocvm --help\n");
            return EXIT_USAGE;
        default:
        bad:
            fprintf(stderr, "ocvm %s: unknown or misplaced option \"%s\"\n", verb,
                    argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        ret->name = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "ocvm %s: unexpected argument \"%s\"\n", verb, argv[optind]);
        return EXIT_USAGE;
    }
    if (ret->name && ret->config) {
        fprintf(stderr, "ocvm %s: give a NAME or --config FILE, not both\n", verb);
        return EXIT_USAGE;
    }
    if (!ret->name && !ret->config && !(flags & CLI_NAME_OPTIONAL)) {
        fprintf(stderr, "ocvm %s: which VM? give a NAME or --config FILE\n", verb);
        return EXIT_USAGE;
    }
    if (ret->name && !config_name_is_valid(ret->name)) {
        fprintf(stderr, "ocvm %s: \"%s\" is not a VM name (1-32 of A-Z a-z 0-9 - _)\n", verb,
                ret->name);
        return EXIT_USAGE;
    }
    return 0;
}

int cli_load_config(const char *name, const char *config_path, struct vm_config **ret)
{
    _cleanup_free_ char *path = NULL;
    if (!config_path) {
        if (config_path_for_name(name, &path) < 0)
            return EXIT_USAGE;
        config_path = path;
    }
    _cleanup_free_ char *error = NULL;
    int r = config_load(config_path, ret, &error);
    if (r < 0) {
        fprintf(stderr, "ocvm: %s\n", error ? error : strerror(-r));
        return EXIT_USAGE;
    }
    if (name && strcmp((*ret)->name, name) != 0) {
        fprintf(stderr, "ocvm: %s: \"name\" is \"%s\", but the file is for VM \"%s\"\n",
                config_path, (*ret)->name, name);
        vm_config_free(TAKE_PTR(*ret));
        return EXIT_USAGE;
    }
    return 0;
}

int cli_vm_name(const char *name, const char *config_path, char **name_ret)
{
    if (name)
        return (*name_ret = strdup(name)) ? 0 : EXIT_FAILED;
    struct vm_config *c;
    int r = cli_load_config(NULL, config_path, &c);
    if (r)
        return r;
    *name_ret = strdup(c->name);
    vm_config_free(c);
    return *name_ret ? 0 : EXIT_FAILED;
}

/* ---- down ---- */

static int wait_gone(pid_t pid, unsigned timeout_s)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? 0 : negative_errno();
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r = poll(&p, 1, (int)timeout_s * 1000);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : negative_errno();
}

/* Reads the supervisor's network record in DIR: 1 if there is one, 0 if none, -EINVAL if it
 * cannot be read (*path names the file). */
static int read_net_record(const char *dir, struct netsetup_state *ret, char **path)
{
    if (asprintf(path, "%s/netsetup.json", dir) < 0) {
        *path = NULL;
        return -ENOMEM;
    }
    _cleanup_fclose_ FILE *f = fopen(*path, "re");
    char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (n == 0)
        return 0;
    buf[n] = '\0';
    return netsetup_state_from_json(buf, ret) < 0 ? -EINVAL : 1;
}

static void undo_stale_network(const char *name, const char *dir)
{
    _cleanup_free_ char *path = NULL, *error = NULL;
    struct netsetup_state ns;
    int r = read_net_record(dir, &ns, &path);
    if (r == -EINVAL)
        fprintf(stderr, "ocvm: %s: %s is not readable: its network is left as it is\n", name, path);
    if (r <= 0)
        return;
    r = netsetup_cleanup(&ns, &error);
    if (r < 0)
        fprintf(stderr, "ocvm: %s: netsetup: undo the network of a dead supervisor: %s\n", name,
                error ? error : strerror(-r));
    else
        fprintf(stderr, "ocvm: %s: removed the network a dead supervisor left\n", name);
}

int verb_down(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(argc, argv, 0, &a);
    if (r)
        return r;
    _cleanup_free_ char *name = NULL, *dir = NULL, *state_path = NULL;
    if ((r = cli_vm_name(a.name, a.config, &name)))
        return r;
    unsigned timeout_s = 30 + 5 + 10; /* shutdown_s default + quit grace + margin */
    struct vm_config *c = NULL;
    _cleanup_free_ char *cfg_path = NULL, *err = NULL;
    if (!a.config && config_path_for_name(name, &cfg_path) == 0 &&
        config_load(cfg_path, &c, &err) == 0)
        timeout_s = c->timeouts.shutdown_s + 15;
    else if (a.config && config_load(a.config, &c, &err) == 0)
        timeout_s = c->timeouts.shutdown_s + 15;
    vm_config_free(c);
    if (runtime_dir_path(name, &dir) < 0 || asprintf(&state_path, "%s/state.json", dir) < 0) {
        fprintf(stderr, "ocvm: %s: no runtime directory (set XDG_RUNTIME_DIR or run as root)\n",
                name);
        return EXIT_FAILED;
    }
    r = runtime_dir_is_locked(dir);
    if (r <= 0) {
        undo_stale_network(name, dir); /* a supervisor that was killed left its network */
        int s = runtime_dir_clean_stale(dir);
        if (s < 0 && s != -ENOENT)
            fprintf(stderr, "ocvm: %s: remove stale %s: %s\n", name, dir, strerror(-s));
        printf("%s: not running\n", name);
        return EXIT_OK;
    }
    struct vm_state st;
    if ((r = state_read(state_path, &st)) < 0 || st.supervisor_pid <= 1) {
        fprintf(stderr, "ocvm: %s: cannot read %s: %s\n", name, state_path, strerror(-r));
        return EXIT_FAILED;
    }
    if (kill(st.supervisor_pid, SIGTERM) < 0) {
        if (errno != ESRCH) {
            fprintf(stderr, "ocvm: %s: signal supervisor %d: %s\n", name, (int)st.supervisor_pid,
                    strerror(errno));
            return EXIT_FAILED;
        }
        /* the supervisor died; what it left is letting go of the lock: wait, then clean up */
        for (int i = 0; i < 100 && runtime_dir_is_locked(dir) > 0; i++)
            usleep(100000);
        if (runtime_dir_is_locked(dir) > 0) {
            fprintf(stderr, "ocvm: %s: supervisor %d is gone but %s/lock is still held\n", name,
                    (int)st.supervisor_pid, dir);
            return EXIT_FAILED;
        }
        undo_stale_network(name, dir);
        r = runtime_dir_clean_stale(dir);
        printf("%s: not running (cleaned up after a dead supervisor)\n", name);
        return r < 0 && r != -ENOENT ? EXIT_FAILED : EXIT_OK;
    }
    fprintf(stderr, "ocvm: %s: stopping (supervisor pid %d)...\n", name, (int)st.supervisor_pid);
    r = wait_gone(st.supervisor_pid, timeout_s);
    if (r < 0) {
        fprintf(stderr, "ocvm: %s: supervisor %d did not stop within %u s: %s\n", name,
                (int)st.supervisor_pid, timeout_s, strerror(-r));
        return EXIT_FAILED;
    }
    printf("%s: stopped\n", name);
    return EXIT_OK;
}

/* ---- status ---- */

static void format_duration(uint64_t s, char *buf, size_t size)
{
    if (s >= 86400)
        snprintf(buf, size, "%llud %02lluh", (unsigned long long)s / 86400,
                 (unsigned long long)s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, size, "%lluh %02llum", (unsigned long long)s / 3600,
                 (unsigned long long)s % 3600 / 60);
    else
        snprintf(buf, size, "%llum %02llus", (unsigned long long)s / 60,
                 (unsigned long long)s % 60);
}

/* The links and the table the supervisor made, from its record in the runtime directory. */
static void print_network(const char *dir)
{
    _cleanup_free_ char *path = NULL;
    struct netsetup_state ns;
    int r = read_net_record(dir, &ns, &path);
    if (r == -EINVAL)
        printf("  network: %s is not readable\n", path);
    if (r <= 0)
        return;
    printf("  network: bridge %s (%s), TAP %s, uplink %s, nft table %s\n", ns.bridge,
           ns.bridge_created ? "created by ocvm" : "adopted", ns.tap_ifindex ? ns.tap : "none",
           ns.uplink, ns.table_applied ? "applied" : "not applied");
}

/* Prints one VM; returns 1 when it is running. */
static int show_one(const char *name, bool as_json, json_t *json_list)
{
    _cleanup_free_ char *dir = NULL, *state_path = NULL;
    if (runtime_dir_path(name, &dir) < 0 || asprintf(&state_path, "%s/state.json", dir) < 0)
        return -ENOMEM;
    struct vm_state st = {0};
    bool running = runtime_dir_is_locked(dir) > 0 && state_read(state_path, &st) == 0;
    uint64_t up_s = running && st.qemu_started_at_us
                        ? (clock_usec(CLOCK_REALTIME) - st.qemu_started_at_us) / 1000000u
                        : 0;
    if (as_json) {
        json_t *stages = json_array();
        for (unsigned i = 0; running && i < st.n_stages; i++)
            json_array_append_new(stages, json_pack("{s:s,s:I}", "name", st.stages[i].name, "ms",
                                                    (json_int_t)st.stages[i].ms));
        json_t *relay =
            json_pack("{s:I,s:I,s:I,s:I,s:I}", "open", (json_int_t)st.relay.open, "accepted",
                      (json_int_t)st.relay.accepted, "bytes_to_guest",
                      (json_int_t)st.relay.bytes_to_guest, "bytes_to_host",
                      (json_int_t)st.relay.bytes_to_host, "errors", (json_int_t)st.relay.errors);
        json_t *o = running
                        ? json_pack("{s:s,s:b,s:s,s:i,s:i,s:I,s:i,s:s,s:s,s:o,s:s,s:s,s:o}", "name",
                                    name, "running", 1, "phase", st.phase, "supervisor_pid",
                                    (int)st.supervisor_pid, "qemu_pid", (int)st.qemu_pid,
                                    "uptime_s", (json_int_t)up_s, "restarts", (int)st.restarts,
                                    "accel", st.accel, "vsock", st.vsock, "stages", stages,
                                    "last_exit", st.last_exit, "runtime_dir", dir, "relay", relay)
                        : json_pack("{s:s,s:b,s:s,s:o}", "name", name, "running", 0, "phase",
                                    "stopped", "stages", stages);
        if (!running)
            json_decref(relay);
        json_array_append_new(json_list, o);
        return running;
    }
    if (!running) {
        printf("%s: stopped\n", name);
        return 0;
    }
    char up[32];
    format_duration(up_s, up, sizeof(up));
    printf("%s: %s\n", name, st.phase);
    printf("  supervisor pid %d, QEMU pid %d (accel %s, vsock %s)\n", (int)st.supervisor_pid,
           (int)st.qemu_pid, st.accel, st.vsock);
    printf("  up %s, restarts %u%s%s\n", up, st.restarts, *st.last_exit ? ", last exit: " : "",
           st.last_exit);
    if (strcmp(st.vsock, "none") != 0)
        printf("  relay: %llu open, %llu accepted, %llu bytes to the guest, %llu to the host, "
               "%llu errors\n",
               (unsigned long long)st.relay.open, (unsigned long long)st.relay.accepted,
               (unsigned long long)st.relay.bytes_to_guest,
               (unsigned long long)st.relay.bytes_to_host, (unsigned long long)st.relay.errors);
    print_network(dir);
    printf("  stages:");
    for (unsigned i = 0; i < st.n_stages; i++)
        printf("%s %s %.3fs", i ? "," : "", st.stages[i].name, (double)st.stages[i].ms / 1000.0);
    printf("\n  runtime: %s\n", dir);
    return 1;
}

int verb_status(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(argc, argv, CLI_JSON | CLI_NAME_OPTIONAL, &a);
    if (r)
        return r;
    json_t *list = json_array();
    if (!list)
        return EXIT_FAILED;
    int running = 0, shown = 0;
    if (a.name || a.config) {
        _cleanup_free_ char *name = NULL;
        if ((r = cli_vm_name(a.name, a.config, &name))) {
            json_decref(list);
            return r;
        }
        running = show_one(name, a.json, list);
        shown = 1;
    } else {
        _cleanup_free_ char *base = NULL;
        DIR *d = runtime_dir_base(&base) == 0 ? opendir(base) : NULL;
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (de->d_name[0] != '.' && config_name_is_valid(de->d_name)) {
                running += show_one(de->d_name, a.json, list) > 0;
                shown++;
            }
        if (d)
            closedir(d);
        if (!shown && !a.json)
            printf("no VMs are running\n");
    }
    if (a.json) {
        json_t *out = (a.name || a.config) ? json_array_get(list, 0) : list;
        json_dumpf(out, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(list);
    if (running < 0)
        return EXIT_FAILED;
    return (a.name || a.config) && !running ? EXIT_NOT_RUNNING : EXIT_OK;
}

/* ---- console ---- */

enum { CONSOLE_ESCAPE = 0x1d }; /* Ctrl-] */

static int console_pump(int sock)
{
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    char buf[4096];
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (p[1].revents) {
            ssize_t n = read(sock, buf, sizeof(buf));
            if (n <= 0)
                return n < 0 ? negative_errno() : -ECONNRESET;
            if (write(STDOUT_FILENO, buf, (size_t)n) != n)
                return -EIO;
        }
        if (p[0].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0)
                return 0; /* end of input: detach */
            char *esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
            size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
            if (len && send(sock, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
                return negative_errno();
            if (esc)
                return 0;
        }
    }
}

int verb_console(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(argc, argv, 0, &a);
    if (r)
        return r;
    _cleanup_free_ char *name = NULL, *dir = NULL;
    if ((r = cli_vm_name(a.name, a.config, &name)))
        return r;
    if (runtime_dir_path(name, &dir) < 0 || runtime_dir_is_locked(dir) <= 0) {
        fprintf(stderr, "ocvm: %s: not running\n", name);
        return EXIT_FAILED;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console.sock", dir) >=
        (int)sizeof(sa.sun_path)) {
        fprintf(stderr, "ocvm: %s: console socket path too long\n", name);
        return EXIT_FAILED;
    }
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "ocvm: %s: connect %s: %s\n", name, sa.sun_path, strerror(errno));
        return EXIT_FAILED;
    }
    struct termios saved, raw;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        fprintf(stderr, "Connected to %s's console. Press Ctrl-] to detach.\r\n", name);
    }
    r = console_pump(fd);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        fprintf(stderr, "\nDetached from %s's console.\n", name);
    }
    if (r < 0 && r != -ECONNRESET) {
        fprintf(stderr, "ocvm: %s: console: %s\n", name, strerror(-r));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- cmdline ---- */

int verb_cmdline(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(argc, argv, 0, &a);
    if (r)
        return r;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    enum accel accel;
    enum vsock_backend vsock = VSOCK_BACKEND_USER;
    const char *why;
    _cleanup_free_ char *dir = NULL;
    if (accel_resolve(c->machine.accel, &accel, &why) < 0 ||
        (c->vsock.enabled && accel_vsock_resolve(c->vsock.backend, &vsock, &why) < 0)) {
        fprintf(stderr, "ocvm: %s: %s\n", c->name, why);
        vm_config_free(c);
        return EXIT_FAILED;
    }
    if (runtime_dir_path(c->name, &dir) < 0) {
        fprintf(stderr, "ocvm: %s: no runtime directory (set XDG_RUNTIME_DIR or run as root)\n",
                c->name);
        vm_config_free(c);
        return EXIT_FAILED;
    }
    struct qemu_plan plan = {.accel = accel,
                             .vsock = vsock,
                             .runtime_dir = dir,
                             .qmp_fd = -1,
                             .console_fd = -1,
                             .tap_queues = qemu_tap_queues(c),
                             .tsc_khz = accel == ACCEL_TCG ? accel_tsc_khz() : 0};
    struct argv av;
    argv_init(&av);
    r = qemu_argv_build(c, &plan, &av);
    if (r < 0)
        fprintf(stderr, "ocvm: %s: build QEMU command line: %s\n", c->name, strerror(-r));
    else
        for (size_t i = 0; i < av.n; i++)
            printf("%s\n", av.v[i]);
    argv_done(&av);
    vm_config_free(c);
    return r < 0 ? EXIT_FAILED : EXIT_OK;
}
