/* `vsock_backend_driver --socket SOCK --guest-cid N --uds PATH`: the vsock backend verb as its
 * own program, for tests, until the launcher's `ocvm vsock-backend` calls the same function. */
#include "vsock/backend_main.h"

int main(int argc, char **argv)
{
    return vsock_backend_main(argc, argv);
}
