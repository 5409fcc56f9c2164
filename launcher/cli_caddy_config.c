/* `ocvm caddy-config NAME|--config FILE`: print the Caddyfile site that serves the VM's gateway
 * over HTTPS on this host's loopback (Caddy's internal CA), for /etc/caddy/Caddyfile or an
 * `import`. The site is the first loopback https origin of the gateway's
 * controlUi.allowedOrigins (ocvm's default: https://localhost:8443), so that a browser on the
 * site is an origin the gateway accepts; it proxies to gateway.host_listen, the host relay. */
#include "launcher/cli.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "policy/gateway_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SITE "localhost:8443"

/* "https://HOST:PORT" (or without the port: 443) with HOST localhost, 127.0.0.1 or [::1]:
 * HOST:PORT into BUF. */
static bool loopback_https_origin(const char *origin, char *buf, size_t size)
{
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    if (strncmp(origin, "https://", 8) != 0)
        return false;
    const char *h = origin + 8;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t n = strlen(hosts[i]);
        if (strncmp(h, hosts[i], n) != 0 || (h[n] != '\0' && h[n] != ':'))
            continue;
        const char *port = h[n] == ':' ? h + n + 1 : "443";
        char *end;
        errno = 0;
        unsigned long p = strtoul(port, &end, 10);
        if (*port < '0' || *port > '9' || *end || errno || p == 0 || p > 65535)
            return false;
        snprintf(buf, size, "%s:%lu", hosts[i], p);
        return true;
    }
    return false;
}

/* The site address for C into BUF; false (and BUF the default) when no origin fits. */
static int site_address(const struct vm_config *c, char *buf, size_t size, bool *found)
{
    _cleanup_free_ char *error = NULL;
    json_t *tree;
    int r = gateway_config_build(c, NULL, &tree, &error);
    if (r < 0) {
        log_error(NULL, "%s", error ? error : strerror(-r));
        return r;
    }
    *found = false;
    json_t *origins = json_object_get(
        json_object_get(json_object_get(tree, "gateway"), "controlUi"), "allowedOrigins");
    size_t i;
    json_t *o;
    json_array_foreach(origins, i, o)
    {
        if (json_is_string(o) && loopback_https_origin(json_string_value(o), buf, size)) {
            *found = true;
            break;
        }
    }
    json_decref(tree);
    if (!*found)
        snprintf(buf, size, "%s", DEFAULT_SITE);
    return 0;
}

static int verb_caddy_config(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_caddy_config, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    struct vm_config *c;
    if ((r = cli_load_config(a.name, a.config, &c)))
        return r;
    char site[64];
    bool found;
    if (site_address(c, site, sizeof(site), &found) < 0) {
        vm_config_free(c);
        return EXIT_USAGE;
    }
    if (!found)
        log_msg(LOG_WARNING, NULL,
                "gateway.openclaw: no https origin on localhost in "
                "gateway.controlUi.allowedOrigins: the site is https://%s, whose Control UI the "
                "gateway will refuse until https://%s is added there",
                site, site);
    printf("# OpenClaw gateway of VM \"%s\" over HTTPS on this host only (ocvm caddy-config).\n"
           "# Caddy's internal CA signs the certificate: run `caddy trust` once.\n"
           "https://%s {\n"
           "\t# Caddy listens on every address unless told: every client of this site is\n"
           "\t# treated by the gateway as local (auto-paired), so only this host may reach it.\n"
           "\tbind 127.0.0.1\n"
           "\ttls internal\n"
           "\t# To the host relay, which reaches the gateway in the guest over vsock; WebSocket\n"
           "\t# upgrades pass through. The gateway refuses a request forwarded by a loopback\n"
           "\t# proxy (403 proxy_attribution_required), and trustedProxies does not help for\n"
           "\t# one on loopback: drop the forwarding headers, so that the request is the local\n"
           "\t# client it is.\n"
           "\treverse_proxy %s {\n"
           "\t\theader_up -X-Forwarded-For\n"
           "\t\theader_up -X-Forwarded-Proto\n"
           "\t\theader_up -X-Forwarded-Host\n"
           "\t\theader_up -X-Real-IP\n"
           "\t\theader_up -Forwarded\n"
           "\t}\n"
           "}\n",
           c->name, site, c->gateway.host_listen);
    vm_config_free(c);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

const struct cli_verb cli_verb_caddy_config = {
    .name = "caddy-config",
    .synopsis = "caddy-config NAME|--config FILE",
    .summary = "the Caddyfile site that serves the gateway over HTTPS on localhost",
    .help = "usage: ocvm caddy-config NAME|--config FILE\n"
            "Print a Caddyfile site for the VM's gateway: https://localhost:8443 (the first\n"
            "loopback https origin of gateway.controlUi.allowedOrigins), bound to 127.0.0.1,\n"
            "`tls internal`, proxying to gateway.host_listen with the forwarding headers\n"
            "removed (the gateway refuses them from a proxy on loopback). Run `caddy trust`\n"
            "once so that browsers accept Caddy's internal CA.\n",
    .run = verb_caddy_config,
};
