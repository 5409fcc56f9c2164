/* `ocvm attach NAME|--config FILE`: what runs beside the VM's libvirt domain (sidecar.h), in the
 * foreground until SIGTERM or SIGINT: ocvm-libvirt@NAME.service runs it. */
#include "launcher/cli.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/host_facts.h"
#include "launcher/sidecar.h"
#include "launcher/vm_user.h"

#include <string.h>

static int verb_attach(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_attach, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    if (geteuid() != 0) {
        log_error(NULL, "attach runs as root: it makes the VM's network and hands its sockets "
                        "to the user libvirt runs QEMU as");
        return EXIT_FAILED;
    }
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    _cleanup_free_ char *user = NULL;
    struct host_facts hf;
    if ((r = cli_enforce_policy(c)) == 0 && (r = cli_plan_shares(c)) == 0) {
        if (sidecar_host_facts(c, &hf) < 0)
            r = EXIT_FAILED;
        else if (vm_user_name(c->name, &user) < 0)
            r = EXIT_FAILED;
        else
            r = sidecar_run(c, &hf, user);
    }
    vm_config_free(c);
    return r;
}

const struct cli_verb cli_verb_attach = {
    .name = "attach",
    .synopsis = "attach NAME|--config FILE",
    .summary = "run beside the VM's libvirt domain: vsock backend, relay, virtiofsd",
    .help = "usage: ocvm attach NAME|--config FILE\n"
            "Run what the VM's libvirt domain (ocvm libvirt define) needs beside it, until\n"
            "SIGTERM or SIGINT: its network and TAP, the staged secrets, one virtiofsd per\n"
            "share, the vsock backend (listening before virsh start) and the host relay on\n"
            "gateway.host_listen; on each boot it waits for the guest's READY and probes the\n"
            "gateway through the chain. ocvm-libvirt@NAME.service runs it. As root.\n",
    .run = verb_attach,
};
