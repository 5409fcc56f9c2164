/* `ocvm vsock-backend --socket SOCK --guest-cid N --uds PATH`: the user-space vhost-user vsock
 * device on its own; vsock/backend_main.c parses the rest and runs it. */
#include "launcher/cli.h"
#include "vsock/backend_main.h"

#include <string.h>

static int verb_vsock_backend(int argc, char **argv)
{
    /* --help, wherever it is, prints the backend's own text before anything else is checked */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            char *help[] = {argv[0], (char *)"--help", NULL};
            return vsock_backend_main(2, help);
        }
    return vsock_backend_main(argc, argv);
}

const struct cli_verb cli_verb_vsock_backend = {
    .name = "vsock-backend",
    .synopsis = "vsock-backend --socket SOCK --guest-cid N --uds PATH",
    .summary = "the vhost-user vsock device alone",
    .help = NULL, /* vsock_backend_main() prints it */
    .run = verb_vsock_backend,
};
