/* ocvm: launcher and supervisor of the OpenClaw gateway microVM. Dispatches to the verbs. */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"

#include <string.h>

static const struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} verbs[] = {
    {"up", verb_up,
     "up [-d] NAME|--config FILE     boot the VM and supervise it (-d: detach once ready)"},
    {"down", verb_down,
     "down NAME|--config FILE        stop the VM gracefully and remove its runtime state"},
    {"status", verb_status,
     "status [--json] [NAME]         state, pids, uptime and readiness stages"},
    {"console", verb_console,
     "console NAME|--config FILE     attach to the serial console (Ctrl-] detaches)"},
    {"relay", verb_relay,
     "relay LISTEN CONNECT           relay connections (tcp:, unix:, vsock:, hybrid: endpoints)"},
    {"dns-config", verb_dns_config,
     "dns-config NAME|--config FILE  print an Unbound snippet that logs the VM's DNS lookups"},
    {"vsock-backend", verb_vsock_backend,
     "vsock-backend --socket SOCK --guest-cid N --uds PATH   the vhost-user vsock device alone"},
    {"cmdline", verb_cmdline,
     "cmdline NAME|--config FILE     print the QEMU argv, one per line; starts nothing"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ocvm COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        fprintf(f, "  ocvm %s\n", verbs[i].usage);
    fprintf(f, "\nNAME is the VM's config in $OCVM_CONFIG_DIR or %s (NAME.json).\n",
            CONFIG_DIR_DEFAULT);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ocvm 0.1.0\n");
        return EXIT_OK;
    }
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ocvm: unknown command \"%s\" (see ocvm --help)\n", argv[1]);
    return EXIT_USAGE;
}
