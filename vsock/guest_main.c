/* ocvm-guest: the small static helper that runs inside the guest (from the initramfs /init).
 * One binary, one verb per job, looked up in a table:
 *   notify [VAR=VALUE ...]  tell the host supervisor we are READY (sd_notify text over vsock)
 *   power-button            power the machine off when the ACPI power button is pressed
 * Add a verb: write `static int verb_NAME(int argc, char **argv)` and one line in `verbs[]`. */
#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/input.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/caps.h"
#include "common/error.h"
#include "common/parse.h"
#include "common/clock.h"
#include "common/log.h"
#include "vsock/guest_cmdline.h"
#include "vsock/relay.h"

#define CMDLINE_MAX 8192 /* x86 COMMAND_LINE_SIZE is 2048; anything past 8 KiB is ignored */
#define NOTIFY_MAX 4096  /* one sd_notify message */
#define INPUT_DIR "/dev/input"
#define INPUT_MAX 32        /* event devices watched at once */
#define STOP_GRACE_MS 10000 /* SIGTERM → SIGKILL for the other processes */

/* ---- small helpers ---------------------------------------------------------------------- */

/* Reads at most max-1 bytes of a file into buf, NUL-terminated; returns the length. */
static int read_small_file(const char *path, char *buf, size_t max)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;

    if (fd < 0)
        return negative_errno();
    while (n < max - 1) {
        ssize_t r = read(fd, buf + n, max - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return negative_errno();
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return (int)n;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return negative_errno();
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static uint64_t now_ms(void)
{
    return clock_usec(CLOCK_MONOTONIC) / 1000u;
}

/* ---- notify ------------------------------------------------------------------------------ */

/* Connects a vsock stream to CID:PORT and sends msg, then closes it. */
static int notify_send(uint32_t cid, uint32_t port, const char *msg, size_t len)
{
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
    _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r;

    if (fd < 0)
        return negative_errno();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return negative_errno();
    r = write_all(fd, msg, len);
    if (r < 0)
        return r;
    (void)shutdown(fd, SHUT_WR);
    return 0;
}

static int verb_notify(int argc, char **argv)
{
    char msg[NOTIFY_MAX];
    size_t len = 0;
    char cmdline[CMDLINE_MAX];
    uint32_t cid, port;
    int r;

    /* sd_notify text: VAR=VALUE assignments, one per line. */
    if (argc < 2) {
        len = (size_t)snprintf(msg, sizeof(msg), "READY=1\n");
    } else {
        for (int i = 1; i < argc; i++) {
            const char *eq = strchr(argv[i], '=');
            if (!eq || eq == argv[i] || strchr(argv[i], '\n')) {
                log_error("notify", "not a VAR=VALUE assignment: %s", argv[i]);
                return 2;
            }
            r = snprintf(msg + len, sizeof(msg) - len, "%s\n", argv[i]);
            if (r < 0 || (size_t)r >= sizeof(msg) - len) {
                log_error("notify", "message longer than %d bytes", NOTIFY_MAX);
                return 2;
            }
            len += (size_t)r;
        }
    }

    r = read_small_file("/proc/cmdline", cmdline, sizeof(cmdline));
    if (r < 0) {
        log_error("notify", "read /proc/cmdline: %s", strerror(-r));
        return 1;
    }
    r = guest_cmdline_notify_socket(cmdline, &cid, &port);
    if (r == -ENOENT) {
        log_error("notify", "no %s... on the kernel command line", GUEST_CMDLINE_NOTIFY_SOCKET);
        return 1;
    }
    if (r < 0) {
        log_error("notify", "malformed %s... (want vsock-stream:CID:PORT)",
                  GUEST_CMDLINE_NOTIFY_SOCKET);
        return 1;
    }
    r = notify_send(cid, port, msg, len);
    if (r < 0) {
        log_error("notify", "vsock %" PRIu32 ":%" PRIu32 ": %s", cid, port, strerror(-r));
        return 1;
    }
    return 0;
}

/* ---- power-button ------------------------------------------------------------------------ */

struct input_set {
    struct pollfd pfd[INPUT_MAX + 1]; /* [0] is the inotify fd on INPUT_DIR, or -1 */
    char name[INPUT_MAX + 1][16];     /* "eventN", to open each device once */
    size_t n;                         /* entries in use, including [0] */
};

static bool input_set_has(const struct input_set *s, const char *name)
{
    for (size_t i = 1; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return true;
    return false;
}

/* Opens every /dev/input/eventN not yet open that can report KEY_POWER. */
static int input_set_scan(struct input_set *s)
{
    DIR *d = opendir(INPUT_DIR);
    struct dirent *de;

    if (!d)
        return negative_errno();
    while ((de = readdir(d)) && s->n < ELEMENTSOF(s->pfd)) {
        unsigned long keys[KEY_MAX / (8 * sizeof(unsigned long)) + 1] = {0};
        char path[64];
        int fd;

        if (strncmp(de->d_name, "event", 5) != 0 || strlen(de->d_name) >= sizeof(s->name[0]) ||
            input_set_has(s, de->d_name))
            continue;
        if (snprintf(path, sizeof(path), INPUT_DIR "/%s", de->d_name) >= (int)sizeof(path))
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            continue;
        if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0 ||
            !(keys[KEY_POWER / (8 * sizeof(unsigned long))] &
              (1UL << (KEY_POWER % (8 * sizeof(unsigned long)))))) {
            close(fd);
            continue;
        }
        s->pfd[s->n] = (struct pollfd){.fd = fd, .events = POLLIN};
        memcpy(s->name[s->n], de->d_name, strlen(de->d_name) + 1); /* length checked above */
        s->n++;
    }
    closedir(d);
    return 0;
}

/* True when /proc/PID is a process running user code (kernel threads and zombies have no
 * /proc/PID/exe). */
static bool pid_is_user_process(pid_t pid)
{
    char path[64], target[8];

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    return readlink(path, target, sizeof(target)) >= 0;
}

/* Lists the user processes other than PID 1 and us, at most max of them; returns the count. */
static size_t user_processes(pid_t *pids, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t n = 0;

    if (!d)
        return 0;
    while (n < max && (de = readdir(d))) {
        long pid = strtol(de->d_name, NULL, 10);
        if (pid > 1 && pid != (long)getpid() && pid_is_user_process((pid_t)pid))
            pids[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* Stops the other processes gently (SIGTERM, and SIGHUP for shells, then SIGKILL after a grace
 * period), syncs and powers the machine off. Does not return. */
static void power_off(void)
{
    pid_t pids[1024];
    size_t n = user_processes(pids, ELEMENTSOF(pids));
    uint64_t deadline = now_ms() + STOP_GRACE_MS;

    log_notice(NULL, "power button pressed, powering off");
    (void)kill(-1, SIGTERM); /* everyone but PID 1 and us */
    (void)kill(-1, SIGHUP);
    (void)kill(-1, SIGCONT);
    /* Wait for the processes signalled, not for new ones (init respawns the console shell). */
    for (size_t i = 0; i < n; i++)
        while (pid_is_user_process(pids[i]) && now_ms() < deadline)
            usleep(20 * 1000);
    (void)kill(-1, SIGKILL);
    sync();
    /* Measured with QEMU 7.2 `-M microvm,acpi=on` (hardware-reduced ACPI: S5 through the GED's
     * sleep registers) and the Debian 6.1 cloud kernel: RB_POWER_OFF ends QEMU within ~0.1 s
     * (SHUTDOWN event, reason guest-shutdown); q35 powers off through its PM registers. Without
     * ACPI power-off the kernel would make this a halt and QEMU would run on, but then there is
     * no ACPI power button either, so this verb never gets here. */
    (void)reboot(RB_POWER_OFF);
    /* Not reached unless CAP_SYS_BOOT is missing. */
    log_error("power-button", "reboot: %s", strerror(errno));
    _exit(1);
}

/* Waits for KEY_POWER on the input devices; returns 1 when pressed, -errno on failure. */
static int input_set_wait_power(struct input_set *s)
{
    for (;;) {
        if (poll(s->pfd, s->n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (s->pfd[0].fd >= 0 && (s->pfd[0].revents & POLLIN)) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            (void)read(s->pfd[0].fd, buf, sizeof(buf)); /* any change: rescan */
            (void)input_set_scan(s);
        }
        for (size_t i = 1; i < s->n; i++) {
            struct input_event ev[64];
            ssize_t r;

            if (!(s->pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            r = read(s->pfd[i].fd, ev, sizeof(ev));
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) { /* device gone: stop polling it (poll ignores negative fds) */
                close(s->pfd[i].fd);
                s->pfd[i].fd = -1;
                s->name[i][0] = '\0';
                continue;
            }
            for (size_t k = 0; k < (size_t)r / sizeof(ev[0]); k++)
                if (ev[k].type == EV_KEY && ev[k].code == KEY_POWER && ev[k].value == 1)
                    return 1;
        }
    }
}

static int verb_power_button(int argc, char **argv)
{
    struct input_set s = {.n = 1};
    int r;

    if (argc > 1) {
        log_error("power-button", "takes no arguments");
        return 2;
    }
    s.pfd[0] = (struct pollfd){.fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), .events = POLLIN};
    if (s.pfd[0].fd >= 0 && inotify_add_watch(s.pfd[0].fd, INPUT_DIR, IN_CREATE) < 0) {
        close(s.pfd[0].fd);
        s.pfd[0].fd = -1;
    }
    r = input_set_scan(&s);
    if (r < 0 || s.n == 1) {
        log_error("power-button",
                  "no input device reports KEY_POWER%s%s (are the button and evdev modules "
                  "loaded?)",
                  r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
        if (s.pfd[0].fd < 0)
            return 1;
    }
    r = input_set_wait_power(&s);
    if (r < 0) {
        log_error("power-button", "poll: %s", strerror(-r));
        return 1;
    }
    power_off();
    return 1;
}

/* ---- verbs ------------------------------------------------------------------------------- */

struct verb {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(int argc, char **argv); /* argv[0] is the verb; returns the exit status */
};

/* ---- relay ------------------------------------------------------------------------------- */

#define RELAY_MAX 32

/* Adds one LISTEN CONNECT pair; the one error line names what is wrong. */
static int relay_add(struct relay *r, const char *listen, const char *connect)
{
    struct endpoint l, c;
    const char *why;
    if (endpoint_parse(listen, &l, &why) < 0 || l.kind == ENDPOINT_HYBRID) {
        log_error("relay", "LISTEN \"%s\": %s", listen,
                  l.kind == ENDPOINT_HYBRID ? "cannot listen on hybrid" : why);
        return -EINVAL;
    }
    if (endpoint_parse(connect, &c, &why) < 0) {
        log_error("relay", "CONNECT \"%s\": %s", connect, why);
        return -EINVAL;
    }
    int e = relay_add_forward(r, &l, &c);
    if (e < 0)
        log_error("relay", "listen on %s: %s", listen, strerror(-e));
    else
        log_info("relay", "%s -> %s", listen, connect);
    return e;
}

/* Every `ocvm.relay=LISTEN,CONNECT` on the kernel command line (the host puts them there). */
static int relay_from_cmdline(struct relay *r, const char *cmdline)
{
    int n = 0, e;
    struct guest_relay_param prm;
    for (const char *p = cmdline; (e = guest_cmdline_next_relay(&p, &prm)) != 0; n++) {
        if (e == -ENAMETOOLONG) {
            log_error("relay", "%.*s: too long", (int)prm.len, prm.text);
            return -EINVAL;
        }
        if (e < 0) {
            log_error("relay", "\"%s\": expected LISTEN,CONNECT", prm.pair);
            return -EINVAL;
        }
        e = relay_add(r, prm.pair, prm.connect);
        if (e < 0)
            return e;
    }
    return n;
}

/* Tells a systemd service manager (a unit of Type=notify) that the listeners are open. Only a
 * unix NOTIFY_SOCKET (a path, or @ for the abstract namespace) is supported. */
static void notify_service_manager(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
        log_error("relay", "NOTIFY_SOCKET \"%s\": not a unix socket path", path);
        return;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    char msg[48];
    int m = snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, (size_t)m, MSG_NOSIGNAL, (struct sockaddr *)&sa,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_error("relay", "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

#define RELAY_RESPAWN_MS 1000
#define RELAY_COMM                                                                                 \
    "ocvm-relay" /* the relay's process name (pidof ocvm-relay); its keeper's stays */

static volatile sig_atomic_t keeper_stop;

static void on_keeper_signal(int sig)
{
    keeper_stop = sig;
}

static void on_keeper_child(int sig)
{
    (void)sig; /* only wakes sigsuspend() */
}

/* In a child: the relay on duplicates of the keeper's listeners, until it dies or is stopped.
 * OLD_MASK: the signal mask to run with (the keeper's blocks SIGTERM, SIGINT and SIGCHLD). */
static _Noreturn void relay_child(struct relay *kept, const sigset_t *old_mask)
{
    struct relay *r;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    (void)prctl(PR_SET_NAME, RELAY_COMM);
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* it ends with its keeper */
    int e = relay_new_like(kept, &r);
    relay_free(kept); /* our copy: the keeper keeps the listeners open */
    if (e < 0) {
        log_error("relay", "%s", strerror(-e));
        _exit(1);
    }
    e = relay_run(r);
    if (e < 0)
        log_error("relay", "%s", strerror(-e));
    relay_free(r);
    _exit(e < 0 ? 1 : 0);
}

/* --background: keeps R's listening sockets open (clients wait in the backlog, never refused)
 * and runs the relay in a child, started again RELAY_RESPAWN_MS after it dies, with a line;
 * SIGTERM or SIGINT stops the child and then the keeper. Returns the exit status. */
static int relay_keep(struct relay *r)
{
    /* SIGTERM, SIGINT and SIGCHLD are blocked but while sigsuspend() waits: a stop that comes
     * at any moment (during fork() too) is seen, and the child is always told. */
    struct sigaction sa = {.sa_handler = on_keeper_signal}, sc = {.sa_handler = on_keeper_child};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sc, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (unsigned started = 0; !keeper_stop; started++) {
        pid_t pid = fork();
        if (pid < 0) {
            log_error("relay", "fork: %s; trying again in %d ms", strerror(errno),
                      RELAY_RESPAWN_MS);
            sigprocmask(SIG_SETMASK, &old, NULL);
            usleep(RELAY_RESPAWN_MS * 1000);
            sigprocmask(SIG_BLOCK, &block, NULL);
            continue;
        }
        if (pid == 0)
            relay_child(r, &old);
        if (started)
            log_notice("relay", "relay started again (pid %d)", (int)pid);
        int status = 0;
        bool told = false;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) {
            if (keeper_stop && !told) {
                (void)kill(pid, SIGTERM); /* then wait for it */
                told = true;
            }
            if (w == 0)
                sigsuspend(&old);
        }
        if (keeper_stop)
            break;
        if (WIFSIGNALED(status))
            log_warning("relay",
                        "the relay (pid %d) was killed by signal %s; starting it again "
                        "in %d ms",
                        (int)pid, strsignal(WTERMSIG(status)), RELAY_RESPAWN_MS);
        else
            log_warning("relay",
                        "the relay (pid %d) exited with status %d; starting it again "
                        "in %d ms",
                        (int)pid, WEXITSTATUS(status), RELAY_RESPAWN_MS);
        sigprocmask(SIG_SETMASK, &old, NULL);
        usleep(RELAY_RESPAWN_MS * 1000); /* a signal cuts it short; the loop then ends */
        sigprocmask(SIG_BLOCK, &block, NULL);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    log_info("relay", "stopped (%s)", strsignal((int)keeper_stop));
    return 0;
}

/* The user the relay runs as once its sockets are open (when started as root): nobody. */
#define RELAY_DEFAULT_ID 65534u

/* --user UID[:GID] (GID defaults to UID): numeric, as the guest's /etc/passwd is not ours. */
static int parse_relay_user(const char *arg, uid_t *uid, gid_t *gid)
{
    const char *colon = strchr(arg, ':');
    size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);
    uint32_t u, g;
    if (decimal_u32(arg, ulen, UINT32_MAX - 1, &u) < 0 ||
        (colon && decimal_u32(colon + 1, strlen(colon + 1), UINT32_MAX - 1, &g) < 0)) {
        log_error("relay", "--user \"%s\": expected UID[:GID], numbers", arg);
        return -EINVAL;
    }
    if (u == 0 || (colon && g == 0)) {
        log_error("relay", "--user \"%s\": the relay does not run as root (uid or gid 0)", arg);
        return -EINVAL;
    }
    *uid = u;
    *gid = colon ? g : u;
    return 0;
}

/* Once every socket is open: as root, to UID:GID with no supplementary groups, no capability
 * (the bounding set emptied first, while it may), no_new_privs; then proves root cannot come
 * back. Not root: nothing to drop (an explicit --user must then be ours). In both the keeper and
 * its relay child: the keeper only forks, waits and signals its own child. */
static int relay_drop_privileges(uid_t uid, gid_t gid, bool explicit_user)
{
    if (geteuid() != 0) {
        if (explicit_user && (geteuid() != uid || getegid() != gid)) {
            log_error("relay", "--user %u:%u: only root can change to another user", (unsigned)uid,
                      (unsigned)gid);
            return -EPERM;
        }
        return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? negative_errno() : 0;
    }
    const char *step = "drop the bounding set";
    int e = caps_drop_bounding(0);
    if (e == 0 && (step = "setgroups", setgroups(0, NULL) < 0))
        e = negative_errno();
    if (e == 0 && (step = "setresgid", setresgid(gid, gid, gid) < 0))
        e = negative_errno();
    if (e == 0 && (step = "setresuid", setresuid(uid, uid, uid) < 0))
        e = negative_errno();
    if (e == 0 && (step = "PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0))
        e = negative_errno();
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    struct caps c;
    if (e == 0) {
        step = "verify";
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
            e = negative_errno();
        if (e == 0)
            e = caps_get(&c);
        if (e == 0 && (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
                       c.permitted || c.effective || setuid(0) == 0 || setgid(0) == 0 ||
                       setgroups(0, NULL) == 0))
            e = -EPERM; /* root is still within reach */
    }
    if (e < 0) {
        log_error("relay", "drop to uid %u gid %u: %s: %s", (unsigned)uid, (unsigned)gid, step,
                  strerror(-e));
        return e;
    }
    log_info("relay", "running as uid %u gid %u, no capabilities, no_new_privs", (unsigned)uid,
             (unsigned)gid);
    return 0;
}

static int verb_relay(int argc, char **argv)
{
    /* --background: return once every listener is open (an init script then knows that a
     * READY=1 it sends next cannot reach the host before the relay listens), and keep the relay
     * running: a keeper process holds the listeners and starts it again when it dies */
    bool background = false, explicit_user = false;
    uid_t uid = RELAY_DEFAULT_ID;
    gid_t gid = RELAY_DEFAULT_ID;
    for (;;) {
        if (argc > 1 && strcmp(argv[1], "--background") == 0)
            background = true;
        else if (argc > 2 && strcmp(argv[1], "--user") == 0) {
            if (parse_relay_user(argv[2], &uid, &gid) < 0)
                return 2;
            explicit_user = true;
            argv++;
            argc--;
        } else if (argc > 1 && strncmp(argv[1], "--user=", 7) == 0) {
            if (parse_relay_user(argv[1] + 7, &uid, &gid) < 0)
                return 2;
            explicit_user = true;
        } else
            break;
        argv++;
        argc--;
    }
    if (argc % 2 == 0 || argc - 1 > 2 * RELAY_MAX) {
        fprintf(stderr,
                "usage: ocvm-guest relay [--background] [--user UID[:GID]] [LISTEN CONNECT ...]\n"
                "  (none given: every ocvm.relay=LISTEN,CONNECT on the kernel command line;\n"
                "  started as root it runs as --user, default 65534:65534, once it listens)\n");
        return 2;
    }
    /* a guest may be small: a quarter of the host relay's budget for growing rings */
    struct relay_options o = {.log_stage = "relay", .ring_budget = 16u << 20};
    struct relay *r;
    relay_raise_fd_limit();
    int e = relay_new(&o, &r);
    if (e < 0) {
        log_error("relay", "%s", strerror(-e));
        return 1;
    }
    int n = 0;
    for (int i = 1; i + 1 < argc && e >= 0; i += 2, n++)
        e = relay_add(r, argv[i], argv[i + 1]);
    if (argc == 1) {
        char cmdline[CMDLINE_MAX];
        e = read_small_file("/proc/cmdline", cmdline, sizeof(cmdline));
        if (e >= 0)
            e = n = relay_from_cmdline(r, cmdline);
        if (e == 0) {
            log_error("relay", "no ocvm.relay= on the kernel command line");
            e = -ENOENT;
        }
    }
    if (e >= 0 && background) {
        pid_t pid = fork();
        if (pid < 0)
            e = negative_errno();
        else if (pid > 0)
            _exit(0); /* the listeners are open: the caller goes on */
        else
            setsid();
        if (e < 0)
            log_error("relay", "fork: %s", strerror(-e));
    }
    if (e >= 0) {
        notify_service_manager();
        e = relay_drop_privileges(uid, gid, explicit_user);
    }
    if (e >= 0) {
        e = background ? relay_keep(r) : relay_run(r);
    }
    relay_free(r);
    return e < 0 ? (e == -EINVAL ? 2 : 1) : 0;
}

static const struct verb verbs[] = {
    {"relay", "[--background] [--user UID[:GID]] [LISTEN CONNECT ...]",
     "relay vsock <-> local TCP (default: ocvm.relay= pairs)", verb_relay},
    {"notify", "[VAR=VALUE ...]", "send sd_notify assignments (default READY=1) to the host",
     verb_notify},
    {"power-button", "", "power off when the ACPI power button is pressed", verb_power_button},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ocvm-guest VERB [ARGS]\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        fprintf(f, "  %-13s %-16s %s\n", verbs[i].name, verbs[i].args, verbs[i].help);
}

int main(int argc, char **argv)
{
    log_setup("ocvm-guest");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    log_error(NULL, "unknown verb: %s", argv[1]);
    usage(stderr);
    return 2;
}
