/* `ocvm dns-config NAME`: print an Unbound snippet that resolves for the VM, and logs every name
 * it looks up. */
#include "launcher/cli.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/net_plan.h"
#include "netsetup/dns_config.h"

#include <errno.h>
#include <string.h>

static int verb_dns_config(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_dns_config, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
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
        log_error(NULL, "\"network\" is null: the VM has no network to resolve for");
    else if (r < 0)
        log_error(NULL, "dns-config: %s", strerror(-r));
    else
        fputs(text, stdout);
    vm_config_free(c);
    return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_FAILED : EXIT_OK;
}

const struct cli_verb cli_verb_dns_config = {
    .name = "dns-config",
    .synopsis = "dns-config NAME|--config FILE",
    .summary = "an Unbound snippet that logs every DNS lookup of the VM",
    .help = "usage: ocvm dns-config NAME|--config FILE\n"
            "Print an Unbound snippet (for /etc/unbound/unbound.conf.d/ocvm-NAME.conf) that\n"
            "listens on the VM's bridge address, answers its subnet and logs every lookup.\n",
    .run = verb_dns_config,
};
