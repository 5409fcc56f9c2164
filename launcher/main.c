/* ocvm: launcher and supervisor of the OpenClaw gateway microVM. Dispatches to the verbs, one
 * file each (launcher/cli_VERB.c). */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/log.h"

#include <string.h>

/* In the order of `ocvm --help` and the README. */
static const struct cli_verb *const verbs[] = {
    &cli_verb_up,           &cli_verb_down,          &cli_verb_status,      &cli_verb_console,
    &cli_verb_cmdline,      &cli_verb_check,         &cli_verb_relay,       &cli_verb_dns_config,
    &cli_verb_caddy_config, &cli_verb_vsock_backend, &cli_verb_relay_child, &cli_verb_libvirt_xml,
    &cli_verb_libvirt,      &cli_verb_attach,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ocvm COMMAND [ARGS]   (ocvm COMMAND --help: its options)\n\ncommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
        /* the summaries line up, but a long synopsis does not push them past 100 columns */
        int pad = 31 - (int)strlen(verbs[i]->synopsis);
        fprintf(f, "  ocvm %s%*s%s\n", verbs[i]->synopsis, pad > 2 ? pad : 2, "",
                verbs[i]->summary);
    }
    fprintf(f,
            "\nNAME is the VM whose config is $OCVM_CONFIG_DIR/NAME.json, or %s/NAME.json;\n"
            "--config FILE names the file instead (with NAME too, the two must agree).\n"
            "Exit status: 0 success, 1 the operation failed, 2 bad usage or configuration,\n"
            "3 (status) the VM is not running.\n",
            CONFIG_DIR_DEFAULT);
}

int main(int argc, char **argv)
{
    log_setup("ocvm");
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
        if (strcmp(argv[1], verbs[i]->name) == 0)
            return verbs[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "ocvm: unknown command \"%s\" (see ocvm --help)\n", argv[1]);
    return EXIT_USAGE;
}
