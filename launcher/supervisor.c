#include "launcher/supervisor.h"

#include "launcher/child_lines.h"
#include "launcher/console_watch.h"
#include "launcher/health.h"
#include "launcher/liveness.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/clock.h"
#include "common/log.h"
#include "launcher/notify.h"
#include "launcher/qemu_argv.h"
#include "launcher/qemu_exec.h"
#include "launcher/qmp.h"
#include "launcher/run_log.h"
#include "launcher/runtime_dir.h"
#include "launcher/secrets.h"
#include "launcher/state.h"
#include "launcher/virtiofsd.h"
#include "launcher/vsock_host.h"
#include "launcher/vm_lookup.h"
#include "launcher/qemu_reaper.h"
#include "launcher/net_plan.h"
#include "launcher/privileges.h"
#include "netsetup/netsetup.h"
#include "policy/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

enum {
    KILL_GRACE_S = 5,
    STABLE_RESET_S = 60,
    PROBE_INTERVAL_MS = 300,
    PROBE_TIMEOUT_MS = 3000,
    RUNDIR_CHECK_S = 2, /* how often the runtime directory is checked (runtime_dir_check) */
};

/* DEGRADED: was ready, but gateway.probe_failures health probes in a row have failed since */
enum phase { PHASE_STARTING, PHASE_READY, PHASE_DEGRADED, PHASE_RESTARTING, PHASE_STOPPING };
static const char *const phase_table[] = {[PHASE_STARTING] = "starting",
                                          [PHASE_READY] = "ready",
                                          [PHASE_DEGRADED] = "degraded",
                                          [PHASE_RESTARTING] = "restarting",
                                          [PHASE_STOPPING] = "stopping"};

enum stop_step { STOP_NONE, STOP_POWERDOWN, STOP_QUIT, STOP_KILL };

struct supervisor {
    const struct vm_config *c;
    const struct supervisor_options *o;
    sd_event *event;
    struct runtime_dir rd;
    char *state_path, *qmp_path, *console_path;
    int qmp_listen_fd, console_listen_fd;
    pid_t qemu_pid;
    uint64_t boot_t0; /* CLOCK_MONOTONIC usec of this boot's start (the first: `up`'s start) */
    sd_event_source *child, *err_src, *timer, *ready_timer;
    struct child_lines err; /* QEMU's stderr, line by line into the log */
    char last_stderr[160];  /* QEMU's last line on stderr in this run: the likely exit reason */
    char restart_why[128];  /* why we killed this QEMU to restart it, or "" */
    struct qmp *qmp;
    struct vsock_host *vsock; /* NULL without vsock */
    struct netsetup net;      /* bridge, TAP fds, nft table; empty without a network */
    struct virtiofsd_set fsd; /* one virtiofsd per virtiofs share, per QEMU run */
    sd_event_source *reaper;  /* with machine.user: stops QEMU if we die (see qemu_reaper.h) */
    int reaper_fd;
    struct run_log *log; /* copies stderr to the kept log and the caller (see run_log.h) */
    bool net_up;
    struct health_wait *wait;        /* probing the gateway after the guest's READY */
    struct health_probe *probe;      /* after ready: the liveness probe in flight, or NULL */
    sd_event_source *probe_timer;    /* after ready: the next liveness probe */
    struct liveness live;            /* what the probes after ready add up to */
    sd_event_source *watchdog_timer; /* feeds systemd's watchdog while healthy, or NULL */
    uint64_t watchdog_usec;          /* WatchdogSec= as systemd passed it; 0: none */
    sd_event_source *stats_timer;
    sd_event_source *rundir_timer;       /* remakes a runtime directory removed under us */
    struct console_watch *console_watch; /* says when console.log cannot grow */
    bool guest_ready;
    bool state_failing;  /* the last state.json write failed (said once per failing streak) */
    bool rundir_failing; /* the runtime directory is gone and could not be made again */
    enum phase phase;
    enum stop_step stop;
    bool stop_at_once; /* skip the ACPI power-off */
    bool guest_powered_off, announced_ready;
    unsigned restarts;
    struct vm_state state;
    int exit_code;
};

static void begin_stop(struct supervisor *s, int code, bool force);

/* Writes state.json. A failure before the first ready stops the start (one error line); after
 * it, one warning per failing streak: the VM runs on, and status and down find it by its lock. */
static int save_state(struct supervisor *s)
{
    snprintf(s->state.phase, sizeof(s->state.phase), "%s", phase_table[s->phase]);
    s->state.qemu_pid = s->qemu_pid;
    s->state.restarts = s->restarts;
    if (s->vsock) /* the relay's figures, the backend's and the relay's processes */
        vsock_host_fill_state(s->vsock, &s->state);
    int r = state_write(s->state_path, &s->state);
    bool was_failing = s->state_failing;
    s->state_failing = r < 0;
    if (r >= 0) {
        if (was_failing)
            log_msg(LOG_NOTICE, NULL, "%s is written again", s->state_path);
        return 0;
    }
    if (s->phase == PHASE_STOPPING || was_failing)
        return r;
    if (!s->announced_ready) {
        log_msg(LOG_ERR, NULL, "write %s: %s: stopping the start", s->state_path, strerror(-r));
        if (s->event && sd_event_get_state(s->event) == SD_EVENT_RUNNING)
            begin_stop(s, 1, true);
        return r;
    }
    log_msg(LOG_WARNING, NULL, "write %s: %s (the VM runs on; said once until it works again)",
            s->state_path, strerror(-r));
    return r;
}

/* Records a readiness stage with its time since this boot began, prints it, and saves the state
 * (its result). */
static int stage(struct supervisor *s, const char *name)
{
    uint64_t ms = (clock_usec(CLOCK_MONOTONIC) - s->boot_t0) / 1000u;
    if (s->state.n_stages < STATE_MAX_STAGES) {
        struct vm_stage *st = &s->state.stages[s->state.n_stages++];
        snprintf(st->name, sizeof(st->name), "%s", name);
        st->ms = ms;
    }
    log_msg(LOG_INFO, NULL, "[%6.3fs] %s", (double)ms / 1000.0, name);
    notify_progress(name, !s->announced_ready); /* with EXTEND_TIMEOUT_USEC= until ready */
    return save_state(s);
}

static void tell_parent(struct supervisor *s, char status)
{
    if (s->o->ready_fd < 0)
        return;
    /* `up -d`: the caller has had our lines as they came (through its pipe); it gets the last
     * ones, then its pipe ends. Our children never held it: they would keep a `$(ocvm up -d)`
     * waiting for as long as they live. */
    if (status == 'F' && run_log_kept_path(s->log))
        log_msg(LOG_ERR, NULL, "the log of this run is kept in %s", run_log_kept_path(s->log));
    fflush(stderr);
    run_log_detach_caller(s->log);
    (void)!write(s->o->ready_fd, &status, 1);
    close(s->o->ready_fd);
    ((struct supervisor_options *)s->o)->ready_fd = -1;
}

static void finish(struct supervisor *s, int code)
{
    s->exit_code = code;
    if (code == 0 && s->announced_ready)
        tell_parent(s, 'R');
    /* a failure is told after teardown(): `up -d` returns with nothing of the VM left behind */
    sd_event_exit(s->event, code);
}

static int spawn_qemu(struct supervisor *s);
static void stop_reaper(struct supervisor *s);
static void stop_liveness(struct supervisor *s);

/* ---- stopping ---- */

static int on_stop_timer(sd_event_source *src, uint64_t usec, void *userdata);

static void arm_timer(struct supervisor *s, uint64_t delay_usec, sd_event_time_handler_t fn)
{
    s->timer = sd_event_source_disable_unref(s->timer);
    int r = sd_event_add_time_relative(s->event, &s->timer, CLOCK_MONOTONIC, delay_usec, 0, fn, s);
    if (r < 0)
        log_msg(LOG_ERR, NULL, "arm timer: %s", strerror(-r));
}

static void stop_step(struct supervisor *s)
{
    if (s->qemu_pid <= 0) {
        finish(s, s->exit_code);
        return;
    }
    switch (s->stop) {
    case STOP_NONE:
        s->stop = STOP_POWERDOWN;
        if (s->stop_at_once) /* down --force, a failed start, a guest still booting */
            goto quit;
        if (s->qmp && qmp_is_ready(s->qmp) &&
            qmp_call(s->qmp, "system_powerdown", NULL, NULL, NULL) == 0) {
            log_msg(LOG_INFO, NULL, "asking the guest to power off (up to %u s)",
                    s->c->timeouts.shutdown_s);
            arm_timer(s, (uint64_t)s->c->timeouts.shutdown_s * 1000000u, on_stop_timer);
            break;
        }
        /* no QMP: go straight to the next step */
        /* fall through */
    case STOP_POWERDOWN:
    quit:
        s->stop = STOP_QUIT;
        if (s->qmp && qmp_is_ready(s->qmp) && qmp_call(s->qmp, "quit", NULL, NULL, NULL) == 0)
            log_msg(LOG_WARNING, NULL, "guest did not power off in time: quitting QEMU");
        else {
            log_msg(LOG_WARNING, NULL, "no QMP: sending SIGTERM to QEMU");
            kill(s->qemu_pid, SIGTERM);
        }
        arm_timer(s, KILL_GRACE_S * 1000000u, on_stop_timer);
        break;
    case STOP_QUIT:
    case STOP_KILL:
        s->stop = STOP_KILL;
        log_msg(LOG_WARNING, NULL, "QEMU (pid %d) still running: SIGKILL", (int)s->qemu_pid);
        kill(s->qemu_pid, SIGKILL);
        break;
    }
}

static int on_stop_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    stop_step(userdata);
    return 0;
}

/* Stops the VM: ACPI power-off first, unless FORCE or the guest is still booting (it could not
 * act on the button yet): then QMP quit at once. */
static void begin_stop(struct supervisor *s, int code, bool force)
{
    if (s->phase == PHASE_STOPPING)
        return;
    bool booting = s->phase == PHASE_STARTING || s->phase == PHASE_RESTARTING;
    s->stop_at_once = force || booting;
    if (booting && !force && s->qemu_pid > 0)
        log_msg(LOG_INFO, NULL, "the guest is still booting (not ready): no ACPI power-off");
    s->phase = PHASE_STOPPING;
    s->exit_code = code;
    s->ready_timer = sd_event_source_disable_unref(s->ready_timer);
    s->timer = sd_event_source_disable_unref(s->timer);
    health_wait_free(TAKE_PTR(s->wait)); /* a stopping VM is not probed any more */
    stop_liveness(s);
    notify_stopping();
    save_state(s);
    stop_step(s);
}

/* SIGTERM, SIGINT: stop gracefully; the same again while stopping hurries to the next step
 * (power-off -> quit -> SIGKILL), so a second Ctrl-C does not wait shutdown_s. SIGUSR1 (`ocvm
 * down --force`): stop at once, QMP quit without the power-off. SIGHUP: ignored with a line: the
 * config is read once, at `up`, and there is nothing to reload. */
static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
    struct supervisor *s = userdata;
    const char *sig = strsignal((int)si->ssi_signo);
    if (si->ssi_signo == SIGHUP) {
        log_msg(LOG_NOTICE, NULL,
                "received %s: ignored (the config is read at `ocvm up` only; "
                "to apply a change, ocvm down and up)",
                sig);
        return 0;
    }
    if (s->phase == PHASE_STOPPING) {
        log_msg(LOG_NOTICE, NULL, "received %s again: hurrying the stop", sig);
        s->timer = sd_event_source_disable_unref(s->timer);
        stop_step(s);
        return 0;
    }
    bool force = si->ssi_signo == SIGUSR1;
    log_msg(LOG_INFO, NULL, "received %s: stopping%s", sig,
            force ? " at once (ocvm down --force: no ACPI power-off)" : "");
    begin_stop(s, 0, force);
    return 0;
}

/* ---- QMP ---- */

static void announce_ready(struct supervisor *s);
static void start_liveness(struct supervisor *s);

static void on_query_status(struct qmp *q, json_t *ret, const char *error_desc, void *userdata)
{
    struct supervisor *s = userdata;
    json_t *status = ret ? json_object_get(ret, "status") : NULL;
    if (!json_is_string(status)) {
        log_msg(LOG_ERR, NULL, "QMP query-status: %s",
                error_desc ? error_desc : "reply has no \"status\" string");
        return;
    }
    if (strcmp(json_string_value(status), "running") != 0) {
        log_msg(LOG_WARNING, NULL, "guest status is \"%s\"", json_string_value(status));
        return;
    }
    stage(s, "guest running");
    if (!s->vsock)
        announce_ready(s); /* no vsock: nothing more to wait for */
}

static void announce_ready(struct supervisor *s)
{
    if (s->phase != PHASE_STARTING)
        return;
    s->phase = PHASE_READY;
    s->ready_timer = sd_event_source_disable_unref(s->ready_timer);
    uint64_t ms = (clock_usec(CLOCK_MONOTONIC) - s->boot_t0) / 1000u;
    char status_line[128];
    snprintf(status_line, sizeof(status_line), "ready in %.2f s (QEMU pid %d)", (double)ms / 1000.0,
             (int)s->qemu_pid);
    if (s->vsock)
        log_msg(LOG_NOTICE, NULL,
                "%s; the gateway is reachable at http://%s/ (console: ocvm "
                "console %s)",
                status_line, s->c->gateway.host_listen, s->c->name);
    else
        log_msg(LOG_NOTICE, NULL, "%s; console: ocvm console %s", status_line, s->c->name);
    s->announced_ready = true;
    notify_ready(status_line);
    save_state(s);
    tell_parent(s, 'R');
    start_liveness(s);
}

static void on_qmp_ready(struct qmp *q, void *userdata)
{
    struct supervisor *s = userdata;
    stage(s, "QMP connected");
    int r = qmp_call(q, "query-status", NULL, on_query_status, s);
    if (r < 0)
        log_msg(LOG_ERR, NULL, "QMP query-status: %s", strerror(-r));
}

static void on_qmp_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
    struct supervisor *s = userdata;
    if (strcmp(name, "SHUTDOWN") != 0)
        return;
    json_t *reason = data ? json_object_get(data, "reason") : NULL;
    const char *why = json_is_string(reason) ? json_string_value(reason) : "unknown";
    log_msg(LOG_INFO, NULL, "QEMU is shutting down (%s)", why);
    if (strcmp(why, "guest-shutdown") == 0)
        s->guest_powered_off = true;
}

static void on_qmp_closed(struct qmp *q, int error, const char *why, void *userdata)
{
    if (error && error != -ECONNRESET)
        log_msg(LOG_ERR, NULL, "QMP: %s: dropping the connection", why);
}

static const struct qmp_handlers qmp_handlers = {
    .ready = on_qmp_ready, .event = on_qmp_event, .closed = on_qmp_closed};

static int connect_qmp(struct supervisor *s)
{
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd < 0)
        return negative_errno();
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->qmp_path);
    /* The listener is ours and already listening: this completes at once, QEMU accepts later. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return negative_errno();
    return qmp_new(s->event, TAKE_FD(fd), &qmp_handlers, s, &s->qmp);
}

/* ---- the gateway path: guest READY over vsock, then a health probe through the chain ---- */

/* The gateway answered through the whole chain: ready. (No deadline is given to the wait: the
 * ready timer bounds the boot and reads why the last probe failed.) */
static void on_gateway_healthy(bool ok, const char *why, void *userdata)
{
    struct supervisor *s = userdata;
    health_wait_free(TAKE_PTR(s->wait));
    if (!ok || s->phase != PHASE_STARTING || s->qemu_pid <= 0)
        return;
    stage(s, "gateway healthy");
    announce_ready(s);
}

static void stop_probing(struct supervisor *s)
{
    health_wait_free(TAKE_PTR(s->wait));
    s->guest_ready = false;
    vsock_host_guest_down(s->vsock); /* a socket-activated listener holds its clients again */
}

static void on_guest_notify(const struct guest_notify_msg *m, void *userdata)
{
    struct supervisor *s = userdata;
    if (*m->status)
        log_msg(LOG_INFO, "guest", "%s", m->status);
    if (*m->status && s->phase == PHASE_STARTING) { /* the boot's progress, for systemd too */
        char line[160];
        snprintf(line, sizeof(line), "guest: %s", m->status);
        notify_progress(line, !s->announced_ready);
    }
    if (*m->stage && s->phase == PHASE_STARTING && s->qemu_pid > 0 && !s->guest_ready) {
        char name[80];
        snprintf(name, sizeof(name), "guest: %s", m->stage);
        stage(s, name);
    }
    if (!m->ready || s->guest_ready || s->qemu_pid <= 0 || s->phase != PHASE_STARTING)
        return;
    s->guest_ready = true;
    stage(s, "guest ready");
    health_wait_free(TAKE_PTR(s->wait));
    int r =
        health_wait_start(s->event, vsock_host_gateway(s->vsock), s->c->gateway.health_path,
                          PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS, 0, on_gateway_healthy, s, &s->wait);
    if (r < 0)
        log_msg(LOG_ERR, NULL, "probe the gateway: %s", strerror(-r));
}

/* The user vsock backend's child died. QEMU 7.2 cannot reconnect its vhost-user-vsock device
 * (the chardev's reconnect= makes the device fail at start), so the guest's vsock is gone with
 * it: QEMU is restarted like after a crash (back-off, restart.max_restarts), and spawn_qemu()
 * starts a new backend first. Meanwhile the hybrid socket refuses, and so clients get a reset. */
static void on_backend_exit(pid_t pid, const char *how, void *userdata)
{
    struct supervisor *s = userdata;
    if (s->phase == PHASE_STOPPING || s->qemu_pid <= 0) {
        log_msg(s->phase == PHASE_STOPPING ? LOG_INFO : LOG_WARNING, "vsock-backend",
                "the backend (pid %d) %s%s", (int)pid, how,
                s->phase == PHASE_STOPPING ? "" : "; a new one starts with the next QEMU");
        save_state(s);
        return;
    }
    log_msg(LOG_WARNING, "vsock-backend",
            "the backend (pid %d) %s: restarting QEMU (pid %d) with a new one, as QEMU cannot "
            "reconnect its vhost-user-vsock device",
            (int)pid, how, (int)s->qemu_pid);
    snprintf(s->restart_why, sizeof(s->restart_why), "its vsock backend died (%s)", how);
    kill(s->qemu_pid, SIGKILL);
    save_state(s);
}

/* ---- after ready: liveness probes through the whole chain, and systemd's watchdog ---- */

static void stop_liveness(struct supervisor *s)
{
    health_probe_free(TAKE_PTR(s->probe));
    s->probe_timer = sd_event_source_disable_unref(s->probe_timer);
}

static int on_probe_timer(sd_event_source *src, uint64_t usec, void *userdata);

static void schedule_probe(struct supervisor *s)
{
    s->probe_timer = sd_event_source_disable_unref(s->probe_timer);
    if (!s->vsock || !s->c->gateway.probe_interval_s)
        return;
    int r = sd_event_add_time_relative(s->event, &s->probe_timer, CLOCK_MONOTONIC,
                                       (uint64_t)s->c->gateway.probe_interval_s * 1000000u, 0,
                                       on_probe_timer, s);
    if (r < 0)
        log_msg(LOG_ERR, NULL, "schedule the next health probe: %s", strerror(-r));
}

/* Healthy enough to feed systemd's watchdog: QEMU runs, the user backend's child runs (when
 * there is one), and the VM is not degraded. A boot in progress counts: timeouts.ready_s bounds
 * it; so does the back-off before a restart, which is ocvm healing the VM (restart.max_restarts
 * bounds it; restart.backoff_max_ms may exceed WatchdogSec=). A degraded VM whose config says
 * never to restart it (gateway.probe_restart_after 0) is not restarted by systemd either: the
 * watchdog then follows QEMU and the backend alone. */
static bool watchdog_may_feed(const struct supervisor *s)
{
    if (s->phase == PHASE_RESTARTING && s->qemu_pid <= 0)
        return true;
    if (s->qemu_pid <= 0 ||
        ((s->phase == PHASE_DEGRADED || s->live.degraded) && s->live.restart_after != 0))
        return false;
    if (s->vsock && s->o->vsock == VSOCK_BACKEND_USER) {
        struct vsock_host_stats st;
        vsock_host_get_stats(s->vsock, &st);
        if (st.backend.pid <= 0)
            return false;
    }
    return true;
}

static int on_watchdog_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    if (watchdog_may_feed(s))
        notify_watchdog();
    sd_event_source_set_time_relative(src, s->watchdog_usec / 2);
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
    return 0;
}

/* The verdict of one liveness probe: counted; degraded, recovered or restarted when it says so. */
static void on_liveness_probe(struct health_probe *p, bool ok, const char *why, void *userdata)
{
    struct supervisor *s = userdata;
    char reason[sizeof(s->live.why)], line[sizeof(s->live.why) + 64], status[sizeof(line) + 32];
    snprintf(reason, sizeof(reason), "%s", ok ? "" : why); /* WHY may live in the probe */
    health_probe_free(TAKE_PTR(s->probe)); /* safe: it is finished before it calls back */
    if (s->qemu_pid <= 0 || (s->phase != PHASE_READY && s->phase != PHASE_DEGRADED))
        return;
    unsigned before = s->live.failures;
    enum liveness_event ev = liveness_record(&s->live, ok, reason);
    liveness_describe(&s->live, line, sizeof(line));
    s->state.health.failures = s->live.failures;
    snprintf(s->state.health.last_error, sizeof(s->state.health.last_error), "%s", s->live.why);
    switch (ev) {
    case LIVENESS_HEALTHY:
        if (before)
            log_msg(LOG_INFO, NULL, "the gateway answers its health probe again");
        break;
    case LIVENESS_RECOVERED:
        s->phase = PHASE_READY;
        log_msg(LOG_NOTICE, NULL, "the gateway answers its health probe again: ready");
        notify_status("ready: the gateway answers again");
        if (s->watchdog_usec && watchdog_may_feed(s))
            notify_watchdog();
        break;
    case LIVENESS_FAILING:
        log_msg(LOG_WARNING, NULL, "health probe failed (%u of %u before degraded): %s",
                s->live.failures, s->live.degrade_after, reason);
        break;
    case LIVENESS_DEGRADED:
        s->phase = PHASE_DEGRADED;
        log_msg(LOG_ERR, NULL, "degraded: %s%s", line,
                s->live.restart_after ? "" : " (gateway.probe_restart_after is 0: no restart)");
        snprintf(status, sizeof(status), "degraded: %s", line);
        notify_status(status);
        break;
    case LIVENESS_STILL_DEGRADED:
        log_msg(LOG_WARNING, NULL, "still degraded: %s", line);
        snprintf(status, sizeof(status), "degraded: %s", line);
        notify_status(status);
        break;
    case LIVENESS_RESTART:
        s->phase = PHASE_DEGRADED;
        log_msg(LOG_ERR, NULL, "%s: restarting QEMU (pid %d) (gateway.probe_restart_after)", line,
                (int)s->qemu_pid);
        snprintf(status, sizeof(status), "degraded: %s; restarting", line);
        notify_status(status);
        if (snprintf(s->restart_why, sizeof(s->restart_why),
                     "the gateway failed %u health probes in a row (%s)", s->live.failures,
                     reason) >= (int)sizeof(s->restart_why)) /* shortened */
            memcpy(s->restart_why + sizeof(s->restart_why) - 5, "...)", 5);
        save_state(s);
        kill(s->qemu_pid, SIGKILL); /* on_child() restarts it, as after a crash */
        return;
    }
    if (ev != LIVENESS_HEALTHY || before)
        save_state(s);
    schedule_probe(s);
}

static int on_probe_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    s->probe_timer = sd_event_source_disable_unref(s->probe_timer);
    if (s->qemu_pid <= 0 || s->probe)
        return 0;
    int r = health_probe_start(s->event, vsock_host_gateway(s->vsock), s->c->gateway.health_path,
                               PROBE_TIMEOUT_MS, on_liveness_probe, s, &s->probe);
    if (r < 0) /* counted like any failed probe */
        on_liveness_probe(NULL, false, strerror(-r), s);
    return 0;
}

/* Ready: the gateway is probed every gateway.probe_interval_s from now on. */
static void start_liveness(struct supervisor *s)
{
    liveness_init(&s->live, s->c->gateway.probe_failures, s->c->gateway.probe_restart_after);
    schedule_probe(s);
}

/* Relay figures and the relay's process go to state.json for `ocvm status`, at most once a
 * second and only on change. */
static int on_stats_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    if (vsock_host_fill_state(s->vsock, &s->state))
        save_state(s);
    sd_event_source_set_time_relative(src, 1000000u);
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT); /* a fired one-shot timer is disabled */
    return 0;
}

/* ---- QEMU's stderr ---- */

/* One line of QEMU's stderr: logged, and kept as the likely reason if it exits. */
static void on_qemu_line(void *userdata, char *line, size_t len)
{
    struct supervisor *s = userdata;
    log_msg(LOG_WARNING, "qemu", "%s", line);
    snprintf(s->last_stderr, sizeof(s->last_stderr), "%s", line);
}

static int on_stderr(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
    struct supervisor *s = userdata;
    if (child_lines_read(&s->err, fd))
        s->err_src = sd_event_source_disable_unref(s->err_src);
    return 0;
}

/* ---- the QEMU child ---- */

static int on_restart_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    s->timer = sd_event_source_disable_unref(s->timer);
    s->boot_t0 = clock_usec(CLOCK_MONOTONIC);
    s->state.n_stages = 0;
    int r = spawn_qemu(s);
    if (r < 0) {
        log_msg(LOG_ERR, NULL, "restart QEMU: %s", strerror(-r));
        finish(s, 1);
    }
    return 0;
}

static int on_ready_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    s->ready_timer = sd_event_source_disable_unref(s->ready_timer);
    if (s->phase != PHASE_STARTING || s->qemu_pid <= 0)
        return 0;
    const char *waiting = !s->vsock         ? ""
                          : !s->guest_ready ? "; the guest never sent READY over vsock"
                                            : "; the gateway health check failed: ";
    log_msg(LOG_ERR, NULL, "not ready after %u s (timeouts.ready_s)%s%s: killing QEMU",
            s->c->timeouts.ready_s, waiting,
            s->vsock && s->guest_ready ? health_wait_why(s->wait) : "");
    snprintf(s->last_stderr, sizeof(s->last_stderr), "not ready after %u s",
             s->c->timeouts.ready_s);
    kill(s->qemu_pid, SIGKILL);
    return 0;
}

static int on_child(sd_event_source *src, const siginfo_t *si, void *userdata)
{
    struct supervisor *s = userdata;
    char how[64];
    child_exit_describe(si, how, sizeof(how));
    uint64_t ran_usec = clock_usec(CLOCK_MONOTONIC) - s->boot_t0;
    s->child = sd_event_source_disable_unref(s->child);
    s->ready_timer = sd_event_source_disable_unref(s->ready_timer);
    s->qemu_pid = 0;
    qmp_free(s->qmp);
    s->qmp = NULL;
    virtiofsd_stop(&s->fsd); /* they end with their QEMU; reap them (or make them end) */
    stop_reaper(s);
    if (s->vsock)
        stop_probing(s);
    stop_liveness(s);
    if (s->err_src) { /* its last words first */
        (void)child_lines_read(&s->err, sd_event_source_get_io_fd(s->err_src));
        child_lines_flush(&s->err);
        s->err_src = sd_event_source_disable_unref(s->err_src);
    }
    log_set_qemu_pid(0); /* after its last words, which are about it */
    if (s->phase == PHASE_STOPPING) {
        log_msg(LOG_INFO, NULL, "QEMU %s; stopped", how);
        finish(s, s->exit_code);
        return 0;
    }
    if (s->guest_powered_off) {
        log_msg(LOG_NOTICE, NULL, "the guest powered itself off (QEMU %s); stopping", how);
        finish(s, 0);
        return 0;
    }
    const char *reason = *s->restart_why ? s->restart_why : s->last_stderr;
    if (snprintf(s->state.last_exit, sizeof(s->state.last_exit), "QEMU %s%s%s", how,
                 *reason ? ": " : "", reason) >= (int)sizeof(s->state.last_exit))
        memcpy(s->state.last_exit + sizeof(s->state.last_exit) - 4, "...", 4); /* shortened */
    if (ran_usec >= STABLE_RESET_S * 1000000ull)
        s->restarts = 0; /* it had been running fine: a new failure starts a new count */
    if (s->restarts >= s->c->restart.max_restarts) {
        log_msg(LOG_ERR, NULL, "%s; giving up after %u restart(s) (restart.max_restarts)",
                s->state.last_exit, s->restarts);
        s->phase = PHASE_STOPPING;
        save_state(s);
        finish(s, 1);
        return 0;
    }
    uint64_t delay = s->c->restart.backoff_initial_ms;
    for (unsigned i = 0; i < s->restarts && delay < s->c->restart.backoff_max_ms; i++)
        delay *= 2;
    if (delay > s->c->restart.backoff_max_ms)
        delay = s->c->restart.backoff_max_ms;
    s->restarts++;
    s->phase = PHASE_RESTARTING;
    log_msg(LOG_WARNING, NULL, "%s; restart %u/%u in %llu ms", s->state.last_exit, s->restarts,
            s->c->restart.max_restarts, (unsigned long long)delay);
    save_state(s);
    arm_timer(s, delay * 1000u, on_restart_timer);
    return 0;
}

static int on_reaper_exit(sd_event_source *src, const siginfo_t *si, void *userdata)
{
    struct supervisor *s = userdata;
    s->reaper = sd_event_source_disable_unref(s->reaper); /* reaped by sd-event */
    return 0;
}

static void stop_reaper(struct supervisor *s)
{
    if (s->reaper_fd >= 0)
        close(s->reaper_fd);
    s->reaper_fd = -1;
    /* it ends by itself once QEMU has ended; its exit is reaped by its event source */
}

static void start_reaper(struct supervisor *s, pid_t qemu)
{
    pid_t pid;
    stop_reaper(s);
    int r = qemu_reaper_start(qemu, &pid, &s->reaper_fd);
    if (r == 0)
        r = sd_event_add_child(s->event, &s->reaper, pid, WEXITED, on_reaper_exit, s);
    if (r < 0)
        log_msg(LOG_WARNING, NULL,
                "QEMU reaper: %s: QEMU (running as %s) would outlive a "
                "killed supervisor",
                strerror(-r), s->o->qemu_user);
}

/* (Re)creates the QMP and console listeners: QEMU unlinks a socket's path when it exits. */
static int open_listeners(struct supervisor *s)
{
    int r;
    if (s->qmp_listen_fd >= 0)
        close(s->qmp_listen_fd);
    if (s->console_listen_fd >= 0)
        close(s->console_listen_fd);
    s->qmp_listen_fd = s->console_listen_fd = -1;
    if ((r = runtime_dir_listen(s->qmp_path, &s->qmp_listen_fd)) < 0 ||
        (r = runtime_dir_listen(s->console_path, &s->console_listen_fd)) < 0)
        log_msg(LOG_ERR, NULL, "listen in %s: %s", s->rd.path, strerror(-r));
    return r;
}

static int spawn_qemu(struct supervisor *s)
{
    int r = open_listeners(s);
    if (r < 0 || (r = qemu_exec_console_log(s->rd.path)) < 0)
        return r;
    s->last_stderr[0] = s->restart_why[0] = '\0';
    liveness_init(&s->live, s->c->gateway.probe_failures, s->c->gateway.probe_restart_after);
    s->state.health = (struct vm_health){0};
    /* the user vsock backend's child, again if it died: QEMU connects to it at start */
    if (s->vsock && (r = vsock_host_start_backend(s->vsock)) < 0) {
        log_msg(LOG_ERR, "vsock-backend", "start the backend: %s", strerror(-r));
        return r;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return negative_errno();
    _cleanup_close_ int err_read = pipefd[0], err_write = pipefd[1];
    struct qemu_plan plan = {
        .accel = s->o->accel,
        .vsock = s->o->vsock,
        .runtime_dir = s->rd.path,
        .qmp_fd = s->qmp_listen_fd,
        .console_fd = s->console_listen_fd,
        .tap_fds = s->net.tap_fds,
        .tap_queues = s->net.n_tap_fds,
        .tsc_khz = s->o->tsc_khz,
        .qemu_user = s->o->qemu_user,
    };
    struct argv a;
    argv_init(&a);
    r = qemu_argv_build(s->c, &plan, &a);
    if (r < 0) {
        argv_done(&a);
        return r;
    }
    s->guest_powered_off = false;
    s->stop = STOP_NONE;
    _cleanup_free_ char *fs_error = NULL;
    r = virtiofsd_start(s->c, s->rd.path, s->o->qemu_user, &s->fsd, &fs_error);
    if (r < 0) {
        log_msg(LOG_ERR, NULL, "%s", fs_error ? fs_error : strerror(-r));
        argv_done(&a);
        return r;
    }
    pid_t pid = fork();
    if (pid < 0) {
        r = negative_errno();
        argv_done(&a);
        virtiofsd_stop(&s->fsd);
        return r;
    }
    if (pid == 0)
        qemu_exec(&a, err_write);
    argv_done(&a);
    s->qemu_pid = pid;
    log_set_qemu_pid(pid); /* OCVM_PID_QEMU= in the journal */
    s->state.qemu_started_at_us = clock_usec(CLOCK_REALTIME);
    if (s->phase != PHASE_STOPPING)
        s->phase = PHASE_STARTING;
    fcntl(err_read, F_SETFL, O_NONBLOCK);
    if ((r = sd_event_add_child(s->event, &s->child, pid, WEXITED, on_child, s)) < 0 ||
        (r = sd_event_add_io(s->event, &s->err_src, err_read, EPOLLIN, on_stderr, s)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->qemu_pid = 0;
        log_set_qemu_pid(0);
        return r;
    }
    sd_event_source_set_io_fd_own(s->err_src, true);
    TAKE_FD(err_read);
    if (s->o->qemu_user)
        start_reaper(s, pid);
    if ((r = stage(s, "QEMU started")) < 0 && !s->announced_ready)
        return r; /* said; supervisor_run()'s teardown stops this QEMU */
    r = sd_event_add_time_relative(s->event, &s->ready_timer, CLOCK_MONOTONIC,
                                   (uint64_t)s->c->timeouts.ready_s * 1000000u, 0, on_ready_timeout,
                                   s);
    if (r < 0)
        return r;
    r = connect_qmp(s);
    if (r < 0)
        log_msg(LOG_ERR, NULL, "connect QMP %s: %s", s->qmp_path, strerror(-r));
    return 0;
}

/* ---- set-up and tear-down ---- */

/* RUNDIR/netsetup.json: what to undo should we crash. A failure to write it is not fatal (only a
 * crash of ours would need it): said, and 0; -ENOMEM. */
static int write_net_record(struct supervisor *s)
{
    _cleanup_free_ char *json = NULL, *path = NULL;
    if (!(path = runtime_dir_file(&s->rd, RUNTIME_NETSETUP)) ||
        netsetup_state_to_json(&s->net.state, &json) < 0)
        return -ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    _cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    if (!f || fputs(json, f) < 0 || fflush(f) != 0)
        log_msg(LOG_WARNING, NULL, "write %s: %s", path, strerror(errno));
    return 0;
}

/* Every RUNDIR_CHECK_S: a runtime directory removed under us is made again, with our lock (our
 * pid in it), state.json and network record, so that `status` and `down` still find the VM. The
 * sockets in it are not: see docs/reliability.md. */
static int on_rundir_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct supervisor *s = userdata;
    int r = runtime_dir_check(&s->rd);
    if (r > 0) {
        log_msg(LOG_WARNING, NULL,
                "%s was removed under the running VM: made it again (lock, state.json%s); its "
                "sockets (console, QMP, vsock) come back with the next QEMU",
                s->rd.path, s->net_up ? ", netsetup.json" : "");
        s->state_failing = false;
        save_state(s);
        if (s->net_up)
            write_net_record(s);
    } else if (r < 0 && !s->rundir_failing)
        log_msg(LOG_ERR, NULL, "%s was removed under the running VM and cannot be made again: %s",
                s->rd.path, strerror(-r));
    s->rundir_failing = r < 0;
    sd_event_source_set_time_relative(src, RUNDIR_CHECK_S * 1000000u);
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
    return 0;
}

/* Undoes the network a dead supervisor left (its record survived in the runtime dir), then sets
 * up ours and records it, so that a crash of this supervisor can be undone in turn. */
static int prepare_network(struct supervisor *s)
{
    const char *name = s->c->name;
    _cleanup_free_ char *error = NULL;
    int r;
    if (s->rd.stale_netsetup) {
        struct netsetup_state old;
        if (netsetup_state_from_json(s->rd.stale_netsetup, &old) == 0) {
            r = netsetup_cleanup(&old, &error);
            if (r < 0)
                log_msg(LOG_WARNING, "netsetup", "undo the last run's network: %s",
                        error ? error : strerror(-r));
            else
                log_msg(LOG_INFO, "netsetup", "removed the network a previous run left");
            free(TAKE_PTR(error));
        }
    }
    struct netsetup_plan plan;
    if ((r = net_plan_from_config(s->c, &plan)) <= 0)
        return r;
    r = netsetup_up(&plan, &s->net, &error);
    net_plan_done(&plan);
    if (r < 0) {
        log_msg(LOG_ERR, "netsetup", "%s", error ? error : strerror(-r));
        return r;
    }
    s->net_up = true;
    if ((r = write_net_record(s)) < 0)
        return r;
    log_msg(LOG_INFO, "netsetup", "bridge %s, TAP %s (%u queue%s), nft table inet ocvm_%s",
            s->c->network->bridge, s->c->network->tap, s->net.n_tap_fds,
            s->net.n_tap_fds == 1 ? "" : "s", name);
    return 0;
}

static int prepare(struct supervisor *s)
{
    const char *name = s->c->name;
    int r = runtime_dir_acquire(name, &s->rd);
    if (r == -EBUSY) {
        log_msg(LOG_ERR, NULL, "already running (runtime directory is locked)");
        return r;
    }
    if (r < 0) {
        log_msg(LOG_ERR, NULL, "runtime directory: %s", strerror(-r));
        return r;
    }
    { /* our stderr (before any child has it): to the caller, kept, and for `up -d` in
       * RUNDIR/supervisor.log */
        _cleanup_free_ char *log = runtime_dir_file(&s->rd, RUNTIME_SUPERVISOR_LOG);
        _cleanup_free_ char *error = NULL;
        if (!log)
            return -ENOMEM;
        if ((r = run_log_open(s->c->name, s->o->detached ? log : NULL, &s->log, &error)) < 0) {
            log_msg(LOG_ERR, NULL, "%s", error ? error : strerror(-r));
            return r;
        }
    }
    s->state_path = runtime_dir_file(&s->rd, RUNTIME_STATE);
    s->qmp_path = runtime_dir_file(&s->rd, RUNTIME_QMP);
    s->console_path = runtime_dir_file(&s->rd, RUNTIME_CONSOLE_SOCKET);
    if (!s->state_path || !s->qmp_path || !s->console_path)
        return -ENOMEM;
    s->state.supervisor_pid = getpid();
    s->state.started_at_us = clock_usec(CLOCK_REALTIME);
    snprintf(s->state.accel, sizeof(s->state.accel), "%s", accel_to_string(s->o->accel));
    snprintf(s->state.vsock, sizeof(s->state.vsock), "%s",
             s->c->vsock.enabled ? vsock_backend_to_string(s->o->vsock) : "none");
    struct policy_report pr; /* the unsafe_* keys in use, for `ocvm status` */
    if (policy_check(s->c, &pr) == 0) {
        for (char **u = pr.unsafe_in_use; *u && s->state.n_unsafe < STATE_MAX_UNSAFE; u++)
            snprintf(s->state.unsafe[s->state.n_unsafe++], sizeof(s->state.unsafe[0]), "%s", *u);
        policy_report_done(&pr);
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((r = sd_event_new(&s->event)) < 0 ||
        (r = sd_event_add_signal(s->event, NULL, SIGTERM, on_signal, s)) < 0 ||
        (r = sd_event_add_signal(s->event, NULL, SIGINT, on_signal, s)) < 0 ||
        (r = sd_event_add_signal(s->event, NULL, SIGHUP, on_signal, s)) < 0 ||
        (r = sd_event_add_signal(s->event, NULL, SIGUSR1, on_signal, s)) < 0)
        return r;
    /* a QEMU a killed supervisor left would hold the TAP, the sockets and the guest's disks */
    if ((r = vm_stop_orphans(s->c, s->rd.path)) < 0)
        return r;
    if ((r = prepare_network(s)) < 0)
        return r;
    if ((r = sd_event_add_time_relative(s->event, &s->rundir_timer, CLOCK_MONOTONIC,
                                        RUNDIR_CHECK_S * 1000000u, 0, on_rundir_timer, s)) < 0 ||
        (r = console_watch_new(s->event, s->rd.path, &s->console_watch)) < 0)
        return r;
    _cleanup_free_ char *secrets_error = NULL; /* names paths, never a secret */
    if (secrets_planned(s->c) &&
        (r = secrets_stage(s->c, s->rd.path, s->o->qemu_user, &secrets_error)) < 0) {
        log_msg(LOG_ERR, "secrets", "%s", secrets_error ? secrets_error : strerror(-r));
        return r;
    }
    if (s->c->vsock.enabled) {
        _cleanup_free_ char *error = NULL;
        struct vsock_host_options vo = {.backend = s->o->vsock,
                                        .runtime_dir = s->rd.path,
                                        .backend_user = s->o->qemu_user,
                                        .on_notify = on_guest_notify,
                                        .on_backend_exit = on_backend_exit,
                                        .userdata = s};
        r = vsock_host_new(s->event, s->c, &vo, &s->vsock, &error);
        if (r < 0) {
            log_msg(LOG_ERR, NULL, "%s", error ? error : strerror(-r));
            return r;
        }
        r = sd_event_add_time_relative(s->event, &s->stats_timer, CLOCK_MONOTONIC, 1000000u, 0,
                                       on_stats_timer, s);
        if (r < 0)
            return r;
    }
    if ((s->watchdog_usec = notify_watchdog_usec()) > 0) {
        r = sd_event_add_time_relative(s->event, &s->watchdog_timer, CLOCK_MONOTONIC,
                                       s->watchdog_usec / 2, 0, on_watchdog_timer, s);
        if (r < 0)
            return r;
        log_msg(LOG_INFO, NULL,
                "systemd watchdog: WATCHDOG=1 every %.1f s while QEMU runs and the VM is not "
                "degraded",
                (double)s->watchdog_usec / 2e6);
    }
    return stage(s, "config ok"); /* the first state.json: a failure stops here */
}

static void teardown(struct supervisor *s)
{
    if (s->qemu_pid > 0) { /* only on a set-up failure after spawning */
        kill(s->qemu_pid, SIGKILL);
        waitpid(s->qemu_pid, NULL, 0);
    }
    qmp_free(s->qmp);
    virtiofsd_stop(&s->fsd);
    stop_reaper(s);
    if (s->reaper) { /* QEMU is gone: the reaper ends at once */
        pid_t pid;
        if (sd_event_source_get_child_pid(s->reaper, &pid) >= 0)
            waitpid(pid, NULL, 0);
        sd_event_source_disable_unref(s->reaper);
    }
    health_wait_free(s->wait);
    stop_liveness(s);
    sd_event_source_disable_unref(s->watchdog_timer);
    sd_event_source_disable_unref(s->stats_timer);
    sd_event_source_disable_unref(s->rundir_timer);
    console_watch_free(s->console_watch);
    vsock_host_free(s->vsock);
    if (s->net_up)
        netsetup_down(&s->net);
    if (s->rd.path && secrets_planned(s->c)) { /* QEMU's user's: we may not enter it any more */
        _cleanup_free_ char *dir = runtime_dir_file(&s->rd, RUNTIME_SECRETS);
        if (dir && privileges_empty_dir_as_owner(dir) < 0)
            log_msg(LOG_WARNING, "secrets", "could not empty %s as its owner", dir);
    }
    sd_event_source_disable_unref(s->child);
    sd_event_source_disable_unref(s->err_src);
    sd_event_source_disable_unref(s->timer);
    sd_event_source_disable_unref(s->ready_timer);
    sd_event_unref(s->event);
    if (s->qmp_listen_fd >= 0)
        close(s->qmp_listen_fd);
    if (s->console_listen_fd >= 0)
        close(s->console_listen_fd);
    runtime_dir_release(&s->rd);
    free(s->state_path);
    free(s->qmp_path);
    free(s->console_path);
}

int supervisor_run(const struct vm_config *c, const struct supervisor_options *o)
{
    struct supervisor s = {.c = c,
                           .o = o,
                           .rd = {.lock_fd = -1},
                           .qmp_listen_fd = -1,
                           .reaper_fd = -1,
                           .err = {.line = on_qemu_line},
                           .console_listen_fd = -1,
                           .boot_t0 = o->t0_usec,
                           .exit_code = 1};
    log_set_vm(c->name);
    s.err.userdata = &s;
    int r = prepare(&s);
    if (r == 0) /* all that needs root is made: the first QEMU runs as a restart would */
        r = privileges_supervisor_drop(c, o->qemu_user);
    if (r == 0) {
        r = spawn_qemu(&s);
        if (r < 0 && !s.state_failing) /* else save_state() said why */
            log_msg(LOG_ERR, NULL, "start QEMU: %s", strerror(-r));
    }
    if (r == 0) {
        r = sd_event_loop(s.event);
        if (r < 0)
            log_msg(LOG_ERR, NULL, "event loop: %s", strerror(-r));
        else
            r = s.exit_code;
    } else {
        r = 1;
    }
    bool ok = r == 0 && s.announced_ready;
    if (ok)
        tell_parent(&s, 'R');
    teardown(&s);
    if (!ok) /* its runtime directory, network and children are gone now */
        tell_parent(&s, 'F');
    if (r != 0 && run_log_kept_path(s.log) && !s.o->detached) /* tell_parent() said it */
        log_msg(LOG_ERR, NULL, "the log of this run is kept in %s", run_log_kept_path(s.log));
    run_log_close(s.log);
    return r == 0 ? 0 : 1;
}
