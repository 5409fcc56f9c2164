/* `ocvm vsock-backend` (the user-space vhost-user vsock device on its own) and
 * `ocvm dns-config NAME` (an Unbound snippet that logs every lookup the VM makes). */
#include "launcher/cli.h"
#include "common/cleanup.h"
#include "launcher/net_plan.h"
#include "netsetup/dns_config.h"
#include "vsock/backend_main.h"

#include <errno.h>
#include <string.h>

int verb_vsock_backend(int argc, char **argv)
{
    return vsock_backend_main(argc, argv);
}

int verb_dns_config(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(argc, argv, 0, &a);
    if (r)
        return r;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    _cleanup_free_ char *text = NULL;
    struct netsetup_plan plan;
    r = net_plan_from_config(c, &plan);
    if (r > 0)
        r = dns_config_render(&plan, &text);
    else if (r == 0)
        r = -EINVAL;
    net_plan_done(&plan);
    if (r == -EINVAL)
        fprintf(stderr, "ocvm: %s: \"network\" is null: the VM has no network to resolve for\n",
                c->name);
    else if (r < 0)
        fprintf(stderr, "ocvm: %s: dns-config: %s\n", c->name, strerror(-r));
    else
        fputs(text, stdout);
    vm_config_free(c);
    return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_FAILED : EXIT_OK;
}
