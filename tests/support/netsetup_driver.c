/* netsetup_driver: runs netsetup for the integration test (tests/integration/netsetup.sh), inside
 * the network namespace the test made. Not installed.
 *   up CONFIG STATE      netsetup_up, writes the state JSON to STATE, prints "ready queues=N
 *                        cloexec=yes|no", holds the TAP fds until SIGTERM/SIGINT, then undoes it
 *                        all (exit 0, or 1 with the error)
 *   cleanup STATE        netsetup_cleanup from a saved state (what a crashed supervisor left)
 *   audit CONFIG         prints the differences; exit 0 none, 1 some, 2 could not check
 *   render CONFIG UPLINK prints the nft table for CONFIG with UPLINK (egress hosts must be
 *                        literal addresses)
 *   dns-config CONFIG    prints the Unbound snippet
 * CONFIG goes through the launcher's own translation (net_plan_from_config), so this drives
 * the path `ocvm up` takes: config -> struct netsetup_plan -> netsetup.
 * Errors print as "netsetup_driver: MESSAGE" on one line. */
#include "common/cleanup.h"
#include "config/config.h"
#include "launcher/net_plan.h"
#include "netsetup/dns_config.h"
#include "netsetup/firewall.h"
#include "netsetup/netsetup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>

/* A loaded config and the plan made from it (plan NULL: the VM has no network). */
struct loaded {
    struct vm_config *c;
    struct netsetup_plan storage;
    const struct netsetup_plan *plan;
};

static void loaded_done(struct loaded *l)
{
    net_plan_done(&l->storage);
    if (l->c)
        vm_config_free(l->c);
}

static int load(const char *path, struct loaded *ret)
{
    _cleanup_free_ char *err = NULL;
    *ret = (struct loaded){0};
    int r = config_load(path, &ret->c, &err);
    if (r < 0) {
        fprintf(stderr, "netsetup_driver: %s\n", err ? err : strerror(-r));
        return r;
    }
    if ((r = net_plan_from_config(ret->c, &ret->storage)) < 0)
        return r;
    ret->plan = r > 0 ? &ret->storage : NULL;
    return 0;
}

static int fail(int r, char *msg)
{
    fprintf(stderr, "netsetup_driver: %s\n", msg ? msg : strerror(-r));
    free(msg);
    return 1;
}

static int do_up(const char *config, const char *state_path)
{
    _cleanup_(loaded_done) struct loaded c = {0};
    if (load(config, &c) < 0)
        return 2;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    struct netsetup n;
    char *err = NULL;
    int r = netsetup_up(c.plan, &n, &err);
    if (r < 0)
        return fail(r, err);
    _cleanup_free_ char *json = NULL;
    _cleanup_fclose_ FILE *f = NULL;
    if ((r = netsetup_state_to_json(&n.state, &json)) < 0 || !(f = fopen(state_path, "we")) ||
        fprintf(f, "%s\n", json) < 0 || fflush(f) != 0) {
        netsetup_down(&n);
        return fail(r < 0 ? r : -errno, NULL);
    }
    bool cloexec = true;
    for (unsigned q = 0; q < n.n_tap_fds; q++)
        cloexec = cloexec && (fcntl(n.tap_fds[q], F_GETFD) & FD_CLOEXEC);
    printf("ready queues=%u cloexec=%s\n", n.n_tap_fds, cloexec ? "yes" : "no");
    fflush(stdout);

    int sig;
    sigwait(&mask, &sig);
    for (unsigned q = 0; q < n.n_tap_fds; q++)
        close(n.tap_fds[q]);
    if ((r = netsetup_cleanup(&n.state, &err)) < 0)
        return fail(r, err);
    return 0;
}

static int read_file(const char *path, char **ret)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t len = 0;
    ssize_t n = getdelim(&buf, &len, 0, f);
    if (n < 0) {
        free(buf);
        return -EIO;
    }
    *ret = buf;
    return 0;
}

static int do_cleanup(const char *state_path)
{
    _cleanup_free_ char *text = NULL;
    struct netsetup_state s;
    char *err = NULL;
    int r = read_file(state_path, &text);
    if (r < 0 || (r = netsetup_state_from_json(text, &s)) < 0)
        return fail(r, NULL);
    if ((r = netsetup_cleanup(&s, &err)) < 0)
        return fail(r, err);
    return 0;
}

static int do_audit(const char *config)
{
    _cleanup_(loaded_done) struct loaded c = {0};
    if (load(config, &c) < 0)
        return 2;
    char **diffs = NULL, *err = NULL;
    int r = netsetup_audit(c.plan, &diffs, &err);
    if (r < 0) {
        fail(r, err);
        return 2;
    }
    for (char **p = diffs; *p; p++)
        printf("%s\n", *p);
    netsetup_differences_free(diffs);
    return r > 0 ? 1 : 0;
}

static int do_render(const char *config, const char *uplink)
{
    _cleanup_(loaded_done) struct loaded c = {0};
    if (load(config, &c) < 0)
        return 2;
    _cleanup_free_ struct firewall_egress *e = NULL;
    _cleanup_free_ char *text = NULL;
    size_t n = 0;
    char *err = NULL;
    int r = c.plan ? firewall_resolve_egress(c.plan, &e, &n, &err) : -EINVAL;
    if (r < 0)
        return fail(r, err);
    struct firewall_facts f = {.uplink = uplink, .egress = e, .n_egress = n};
    if ((r = firewall_render(c.plan, &f, &text)) < 0)
        return fail(r, NULL);
    fputs(text, stdout);
    return 0;
}

static int do_dns_config(const char *config)
{
    _cleanup_(loaded_done) struct loaded c = {0};
    _cleanup_free_ char *text = NULL;
    if (load(config, &c) < 0)
        return 2;
    int r = c.plan ? dns_config_render(c.plan, &text) : -EINVAL;
    if (r < 0)
        return fail(r, NULL);
    fputs(text, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "up") == 0)
        return do_up(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "cleanup") == 0)
        return do_cleanup(argv[2]);
    if (argc == 3 && strcmp(argv[1], "audit") == 0)
        return do_audit(argv[2]);
    if (argc == 4 && strcmp(argv[1], "render") == 0)
        return do_render(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "dns-config") == 0)
        return do_dns_config(argv[2]);
    fprintf(stderr, "usage: netsetup_driver up CONFIG STATE | cleanup STATE | audit CONFIG | "
                    "render CONFIG UPLINK | dns-config CONFIG\n");
    return 2;
}
