/* `ocvm status [--json] [NAME]`: the state of one VM, or of every VM with a runtime directory,
 * read from the supervisor's state.json and network record; without a readable state.json, what
 * the lock and the processes say (launcher/vm_lookup.h). */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "launcher/runtime_dir.h"
#include "launcher/state.h"
#include "launcher/vm_lookup.h"
#include "netsetup/netsetup.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

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
    int r = cli_read_net_record(dir, &ns, &path);
    if (r == -EINVAL)
        printf("  network: %s is not readable\n", path);
    if (r <= 0)
        return;
    printf("  network: bridge %s (%s), TAP %s, uplink %s, nft table %s\n", ns.bridge,
           ns.bridge_created ? "created by ocvm" : "adopted", ns.tap_ifindex ? ns.tap : "none",
           ns.uplink, ns.table_applied ? "applied" : "not applied");
}

/* A child process of the supervisor: the user vsock backend, the host relay. */
static void print_child(const char *what, const struct vm_child_state *b, const char *when)
{
    if (b->pid > 0)
        printf("  %s: pid %d", what, (int)b->pid);
    else
        printf("  %s: not running (%s)", what, when);
    printf(", restarts %u%s%s\n", b->restarts, *b->last_exit ? ", last exit: " : "", b->last_exit);
}

/* Prints one VM (its config CONFIG_PATH, NULL: NAME's); returns 1 when it is running. */
static int show_one(const char *name, const char *config_path, bool as_json, json_t *json_list)
{
    _cleanup_free_ char *dir = NULL;
    _cleanup_(qemu_proc_id_done) struct qemu_proc_id id = {0};
    struct vm_lookup l;
    if (runtime_dir_path(name, &dir) < 0 ||
        vm_lookup_qemu_id(NULL, name, config_path, dir, &id) < 0 || vm_lookup(&id, &l) < 0)
        return -ENOMEM;
    const struct vm_state st = l.st;
    bool running = l.running;
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
        json_t *unsafe = json_array();
        for (unsigned i = 0; running && unsafe && i < st.n_unsafe; i++)
            json_array_append_new(unsafe, json_string(st.unsafe[i]));
        json_t *backend = json_pack("{s:i,s:I,s:s}", "pid", (int)st.vsock_backend.pid, "restarts",
                                    (json_int_t)st.vsock_backend.restarts, "last_exit",
                                    st.vsock_backend.last_exit);
        json_t *host_relay =
            json_pack("{s:i,s:I,s:s}", "pid", (int)st.host_relay.pid, "restarts",
                      (json_int_t)st.host_relay.restarts, "last_exit", st.host_relay.last_exit);
        json_t *health = json_pack("{s:I,s:s}", "failures", (json_int_t)st.health.failures,
                                   "last_error", st.health.last_error);
        json_t *o =
            running
                ? json_pack("{s:s,s:b,s:s,s:i,s:i,s:I,s:i,s:s,s:s,s:o,s:s,s:s,s:o,s:o,s:o,"
                            "s:o,s:o}",
                            "name", name, "running", 1, "phase", st.phase, "supervisor_pid",
                            (int)st.supervisor_pid, "qemu_pid", (int)st.qemu_pid, "uptime_s",
                            (json_int_t)up_s, "restarts", (int)st.restarts, "accel", st.accel,
                            "vsock", st.vsock, "stages", stages, "last_exit", st.last_exit,
                            "runtime_dir", dir, "relay", relay, "unsafe", unsafe, "vsock_backend",
                            backend, "host_relay", host_relay, "health", health)
                : json_pack("{s:s,s:b,s:s,s:o}", "name", name, "running", 0, "phase", "stopped",
                            "stages", stages);
        if (o && running) /* how the VM was found: state.json, or the lock without it */
            json_object_set_new(o, "found_by", json_string(l.have_state ? "state.json" : "lock"));
        if (o && *l.why)
            json_object_set_new(o, "note", json_string(l.why));
        json_t *orphans = json_array();
        for (unsigned i = 0; o && orphans && i < l.n_orphans; i++)
            json_array_append_new(orphans, json_integer(l.orphans[i]));
        if (o && l.n_orphans)
            json_object_set_new(o, "orphan_qemu_pids", orphans);
        else
            json_decref(orphans);
        if (!running) {
            json_decref(relay);
            json_decref(unsafe);
            json_decref(backend);
            json_decref(host_relay);
            json_decref(health);
        }
        json_array_append_new(json_list, o);
        return running;
    }
    if (!running) {
        printf("%s: stopped\n", name);
        for (unsigned i = 0; i < l.n_orphans; i++)
            printf("  QEMU pid %d outlived its supervisor (an orphan): ocvm down %s stops it\n",
                   (int)l.orphans[i], name);
        return 0;
    }
    if (!l.have_state) {
        printf("%s: running (state unknown)\n  %s\n", name, l.why);
        printf("  supervisor pid %d, QEMU pid %d\n  runtime: %s\n", (int)l.supervisor_pid,
               (int)l.qemu_pid, dir);
        return 1;
    }
    char up[32];
    format_duration(up_s, up, sizeof(up));
    printf("%s: %s\n", name, st.phase);
    /* after ready: why the gateway is (or was just) not answering through the chain */
    if (st.health.failures)
        printf("  health: %u probe%s failed in a row, last: %s%s\n", st.health.failures,
               st.health.failures == 1 ? "" : "s", st.health.last_error,
               strcmp(st.phase, "degraded") == 0 ? "" : " (not yet degraded)");
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
    if (strcmp(st.vsock, "none") != 0)
        print_child("relay process", &st.host_relay, "it starts again within a second");
    if (strcmp(st.vsock, "user") == 0)
        print_child("vsock backend", &st.vsock_backend, "it starts again with QEMU");
    print_network(dir);
    for (unsigned i = 0; i < st.n_unsafe; i++)
        printf("%s%s", i ? ", " : "  UNSAFE (safety rules waived): ", st.unsafe[i]);
    if (st.n_unsafe)
        printf("\n");
    printf("  stages:");
    for (unsigned i = 0; i < st.n_stages; i++)
        printf("%s %s %.3fs", i ? "," : "", st.stages[i].name, (double)st.stages[i].ms / 1000.0);
    printf("\n  runtime: %s\n", dir);
    return 1;
}

/* Shows every VM with a runtime directory; returns how many are running. */
static int show_all(bool as_json, json_t *json_list)
{
    int running = 0, shown = 0;
    _cleanup_free_ char *base = NULL;
    DIR *d = runtime_dir_base(&base) == 0 ? opendir(base) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' && config_name_is_valid(de->d_name)) {
            running += show_one(de->d_name, NULL, as_json, json_list) > 0;
            shown++;
        }
    if (d)
        closedir(d);
    if (!shown && !as_json)
        printf("no VMs are running\n");
    return running;
}

static int verb_status(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_status, argc, argv, CLI_JSON | CLI_NAME_OPTIONAL, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    bool one = a.name || a.config;
    json_t *list = json_array();
    if (!list)
        return EXIT_FAILED;
    int running;
    if (one) {
        _cleanup_free_ char *name = NULL;
        if ((r = cli_vm_name(a.name, a.config, &name))) {
            json_decref(list);
            return r;
        }
        running = show_one(name, a.config, a.json, list);
    } else
        running = show_all(a.json, list);
    if (a.json) {
        json_dumpf(one ? json_array_get(list, 0) : list, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(list);
    if (running < 0)
        return EXIT_FAILED;
    return one && !running ? EXIT_NOT_RUNNING : EXIT_OK;
}

const struct cli_verb cli_verb_status = {
    .name = "status",
    .synopsis = "status [--json] [NAME]",
    .summary = "state, pids, uptime, restarts and readiness stages",
    .help = "usage: ocvm status [--json] [NAME|--config FILE]\n"
            "State, pids, uptime, restarts and readiness stages of the VM, or of every VM\n"
            "ocvm runs when none is named. The state is starting, ready, degraded (ready once,\n"
            "but the gateway has stopped answering its health probes: the reason is shown),\n"
            "restarting or stopping. Exit status 3 when the VM named is not running.\n"
            "  --json             print JSON (an object for one VM, else a list)\n",
    .run = verb_status,
};
