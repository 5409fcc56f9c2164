/* `ocvm check [--json] NAME|--config FILE`: the static policy rules over the VM's config and,
 * when the VM runs, the live audit (policy/audit.h). One line per finding, its stable id first;
 * exit 0 clean, 1 findings, 2 could not check. */
#include "launcher/cli.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/net_plan.h"
#include "launcher/runtime_dir.h"
#include "launcher/state.h"
#include "policy/audit.h"
#include "policy/rules.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

struct findings {
    json_t *list; /* [{id, message, waived_by?}] */
    bool json;
    size_t n;
};

static int report(struct findings *f, const char *id, const char *message, const char *waiver)
{
    f->n++;
    if (!f->json) {
        printf("%s %s%s%s%s\n", id, message, waiver ? " (waived by " : "", waiver ? waiver : "",
               waiver ? ")" : "");
        return 0;
    }
    json_t *o = json_pack("{s:s,s:s}", "id", id, "message", message);
    if (!o || (waiver && json_object_set_new(o, "waived_by", json_string(waiver)) < 0) ||
        json_array_append_new(f->list, o) < 0)
        return -ENOMEM;
    return 0;
}

/* The static findings: every violation and every waived one (an unsafe key in use is a finding:
 * a gate must see it), and unsafe keys that waive nothing. */
static int check_static(const struct vm_config *c, struct findings *f)
{
    struct policy_report pr;
    int r = policy_check(c, &pr);
    for (size_t i = 0; r == 0 && i < pr.n; i++) {
        const struct policy_finding *p = &pr.findings[i];
        _cleanup_free_ char *msg = strdup(p->line);
        char *tag = msg ? strstr(msg, " [OCVM-P") : NULL;
        if (!msg)
            r = -ENOMEM;
        else {
            if (tag)
                *tag = 0; /* the id leads the line instead */
            r = report(f, p->rule->id, msg, p->waiver);
        }
    }
    for (char **u = pr.unsafe_in_use; r == 0 && u && *u; u++) {
        bool waives = false;
        for (size_t i = 0; i < pr.n; i++)
            waives = waives || (pr.findings[i].waiver && strcmp(pr.findings[i].waiver, *u) == 0);
        if (!waives) {
            _cleanup_free_ char *msg = NULL;
            if (asprintf(&msg, "%s: %s is set (it waives nothing in this config); fix: remove it",
                         c->path, *u) < 0)
                return -ENOMEM;
            r = report(f, "OCVM-U001", msg, NULL);
        }
    }
    policy_report_done(&pr);
    return r;
}

/* The runtime directory's files that must be the owner's alone. */
static const char *const *private_files(void)
{
    static const char *names[_RUNTIME_FILE_MAX + 1];
    for (int i = 0; i < _RUNTIME_FILE_MAX; i++)
        names[i] = runtime_file_name((enum runtime_file)i);
    return names;
}

/* The live audit of running VM C, whose runtime directory is DIR: 0, or EXIT_USAGE (2) when it
 * could not check. */
static int check_live(const struct vm_config *c, const char *dir, struct findings *f)
{
    _cleanup_free_ char *state_path = runtime_file_path(dir, RUNTIME_STATE),
                        *secrets_dir = runtime_file_path(dir, RUNTIME_SECRETS);
    struct vm_state st = {0};
    if (!state_path || state_read(state_path, &st) < 0) {
        log_error("check", "cannot read the running VM's %s", state_path ? state_path : "state");
        return EXIT_USAGE;
    }
    struct netsetup_plan plan;
    int r = net_plan_from_config(c, &plan);
    if (r < 0)
        return EXIT_USAGE;
    struct audit_input in = {.c = c,
                             .plan = r > 0 ? &plan : NULL,
                             .runtime_dir = dir,
                             .private_files = private_files(),
                             .qemu_pid = st.qemu_pid,
                             .backend_pid = st.vsock_backend.pid,
                             .relay_pid = st.host_relay.pid,
                             .supervisor_pid = st.supervisor_pid,
                             .secrets_dir = secrets_dir};
    struct audit_report ar;
    _cleanup_free_ char *error = NULL;
    r = audit_run(&in, &ar, &error);
    net_plan_done(&plan);
    if (r < 0) {
        log_error("check", "live audit: %s", error ? error : strerror(-r));
        return EXIT_USAGE;
    }
    for (size_t i = 0; r == 0 && i < ar.n; i++)
        r = report(f, ar.findings[i].id, ar.findings[i].line, NULL);
    audit_report_done(&ar);
    return r < 0 ? EXIT_USAGE : 0;
}

static int verb_check(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_check, argc, argv, CLI_JSON, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return EXIT_USAGE; /* could not check: the line said why */
    struct findings f = {.json = a.json, .list = json_array()};
    _cleanup_free_ char *dir = NULL;
    bool running = runtime_dir_path(c->name, &dir) == 0 && runtime_dir_is_locked(dir) > 0;
    r = f.list ? 0 : -ENOMEM;
    if (r == 0)
        r = check_static(c, &f);
    if (r == 0 && running)
        r = check_live(c, dir, &f);
    else if (r == 0 && !a.json)
        log_info("check", "not running: the static rules alone were checked");
    if (r == 0 && a.json) {
        json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:O}", "vm", c->name, "config", c->path, "running",
                              running, "clean", f.n == 0, "findings", f.list);
        if (!o || json_dumpf(o, stdout, JSON_INDENT(2)) < 0)
            r = -ENOMEM;
        putchar('\n');
        json_decref(o);
    }
    json_decref(f.list);
    vm_config_free(c);
    if (r != 0)
        return EXIT_USAGE; /* could not check */
    return f.n ? EXIT_FAILED : EXIT_OK;
}

const struct cli_verb cli_verb_check = {
    .name = "check",
    .synopsis = "check [--json] NAME|--config FILE",
    .summary = "prove the policy: static rules, and the live system when the VM runs",
    .help = "usage: ocvm check [--json] NAME|--config FILE\n"
            "Check the VM's config against ocvm's safety rules (OCVM-Pnnn, docs/policy.md)\n"
            "and, when the VM runs, the live system: its network and nft table, who listens\n"
            "on its ports, its runtime directory, the gateway port on the TAP address, and\n"
            "QEMU's user and seccomp mode (OCVM-Lnnn). One line per finding, its id first.\n"
            "Exit status: 0 clean, 1 findings, 2 could not check.\n"
            "  --json             print {vm, config, running, clean, findings: [...]}\n",
    .run = verb_check,
};
