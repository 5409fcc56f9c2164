/* backend_main: the `ocvm vsock-backend` verb, the user-space vhost-user vsock device run on its
 * own (see vsock_dev.h for running it inside another sd-event loop instead). */
#pragma once

/* argv[0] is the verb's name; then --socket SOCK --guest-cid N --uds PATH, optionally
 * --socket-fd N --uds-fd M (the sockets already listening), --connect-fd K (a connect broker),
 * --user USER, --vm NAME (or --help).
 * Returns the exit code: 0 after SIGTERM/SIGINT, 1 when it cannot start, 2 on a usage error. */
int vsock_backend_main(int argc, char **argv);
