/* `ocvm cmdline NAME`: print the QEMU command line `ocvm up` would run, one argument per line;
 * starts nothing. */
#include "launcher/cli.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/host_facts.h"
#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"

#include <string.h>

/* Prints C's QEMU argv; returns the exit status. */
static int print_cmdline(const struct vm_config *c)
{
    struct host_facts hf;
    const char *key, *why;
    if (host_facts_resolve(c, &hf, &key, &why) < 0) {
        if (strcmp(key, "machine.user") == 0)
            log_error(NULL, "machine.user is \"%s\" but %s", c->machine.user, why);
        else
            log_error(NULL, "%s", why);
        return EXIT_FAILED;
    }
    _cleanup_free_ char *dir = NULL;
    if (runtime_dir_path(c->name, &dir) < 0) {
        log_error(NULL, "no runtime directory (set XDG_RUNTIME_DIR or run as root)");
        return EXIT_FAILED;
    }
    struct qemu_plan plan = {.accel = hf.accel,
                             .vsock = hf.vsock,
                             .runtime_dir = dir,
                             .qmp_fd = -1,
                             .console_fd = -1,
                             .tap_queues = qemu_tap_queues(c),
                             .tsc_khz = hf.tsc_khz,
                             .qemu_user = hf.qemu_user};
    struct argv av;
    argv_init(&av);
    int r = qemu_argv_build(c, &plan, &av);
    if (r < 0)
        log_error(NULL, "build QEMU command line: %s", strerror(-r));
    else
        for (size_t i = 0; i < av.n; i++)
            printf("%s\n", av.v[i]);
    argv_done(&av);
    return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int verb_cmdline(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_cmdline, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    if ((r = cli_enforce_policy(c)) == 0 && (r = cli_plan_shares(c)) == 0)
        r = print_cmdline(c);
    vm_config_free(c);
    return r;
}

const struct cli_verb cli_verb_cmdline = {
    .name = "cmdline",
    .synopsis = "cmdline NAME|--config FILE",
    .summary = "print the QEMU argv, one argument per line; starts nothing",
    .help = "usage: ocvm cmdline NAME|--config FILE\n"
            "Print the QEMU command line ocvm up would run, one argument per line; starts\n"
            "nothing. The config is checked as ocvm up checks it (exit 2 when it is wrong).\n",
    .run = verb_cmdline,
};
