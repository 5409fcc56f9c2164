#include "netsetup/firewall.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "netsetup/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void nft_ctx_freep(struct nft_ctx **ctx)
{
    if (*ctx)
        nft_ctx_free(*ctx);
}
#define _cleanup_nft_ _cleanup_(nft_ctx_freep)

/* Names that go inside nft strings and identifiers: what the config loader accepts for VM and
 * interface names, checked again here because an uplink found by "auto" comes from the kernel. */
static bool nft_word_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

int firewall_table_name(const char *vm_name, char **ret)
{
    if (!nft_word_ok(vm_name, 64))
        return -EINVAL;
    return asprintf(ret, FIREWALL_TABLE_PREFIX "%s", vm_name) < 0 ? -ENOMEM : 0;
}

static int egress_cmp(const void *a, const void *b)
{
    const struct firewall_egress *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return (x->port > y->port) - (x->port < y->port);
}

/* The egress set, sorted and without duplicates (two hosts may share an address). */
static int render_egress_set(FILE *m, const struct firewall_facts *f)
{
    _cleanup_free_ struct firewall_egress *e = NULL;
    size_t n = 0;
    if (f->n_egress) {
        if (!(e = calloc(f->n_egress, sizeof(*e))))
            return -ENOMEM;
        memcpy(e, f->egress, f->n_egress * sizeof(*e));
        qsort(e, f->n_egress, sizeof(*e), egress_cmp);
        for (size_t i = 0; i < f->n_egress; i++)
            if (n == 0 || egress_cmp(&e[n - 1], &e[i]) != 0)
                e[n++] = e[i];
    }
    fputs("\t# network.egress.allow, resolved when the VM started: (address . port) pairs\n"
          "\tset egress_allow {\n"
          "\t\ttype ipv4_addr . inet_service\n",
          m);
    if (n) {
        fputs("\t\telements = {\n", m);
        for (size_t i = 0; i < n; i++) {
            char a[CIDR_STRLEN];
            fprintf(m, "\t\t\t%s . %u%s\n", cidr_format_addr(e[i].addr, a), e[i].port,
                    i + 1 < n ? "," : "");
        }
        fputs("\t\t}\n", m);
    }
    fputs("\t}\n\n", m);
    return 0;
}

/* The words that go into the rules, checked and formatted once. */
struct words {
    const char *vm, *bridge, *uplink;
    char subnet[CIDR_STRLEN], bridge_addr[CIDR_STRLEN], dns[CIDR_STRLEN];
    unsigned gw; /* gateway.guest_port */
    bool allow_list;
};

/* The base chains: NAT out of the uplink, and what reaches the guest from the host or the LAN. */
static void render_hooks(FILE *m, const struct words *w)
{
    fprintf(m,
            "\t# the guest's connections leave with the uplink's address\n"
            "\tchain postrouting {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            "\t\tip saddr %s oifname \"%s\" counter masquerade\n"
            "\t}\n\n",
            w->subnet, w->uplink);
    fprintf(m,
            "\t# the guest's packets to the host itself\n"
            "\tchain input {\n"
            "\t\ttype filter hook input priority filter; policy accept;\n"
            "\t\tiifname \"%s\" jump guest_in\n"
            "\t}\n\n",
            w->bridge);
    fprintf(m,
            "\t# nothing new reaches the guest: not its gateway port, not a DNAT, not the LAN\n"
            "\tchain forward {\n"
            "\t\ttype filter hook forward priority filter; policy accept;\n"
            "\t\toifname \"%s\" meta l4proto { tcp, udp } th dport %u counter drop\n"
            "\t\tip daddr %s meta l4proto { tcp, udp } th dport %u counter drop\n"
            "\t\toifname \"%s\" ct direction original ct status dnat counter drop\n"
            "\t\tiifname \"%s\" jump guest_out\n"
            "\t\toifname \"%s\" ct state established,related accept\n"
            "\t\toifname \"%s\" counter drop\n"
            "\t}\n\n",
            w->bridge, w->gw, w->subnet, w->gw, w->bridge, w->bridge, w->bridge, w->bridge);
    fprintf(m,
            "\t# the host itself cannot reach the guest's gateway port either\n"
            "\tchain output {\n"
            "\t\ttype filter hook output priority filter; policy accept;\n"
            "\t\toifname \"%s\" meta l4proto { tcp, udp } th dport %u counter drop\n"
            "\t\tip daddr %s meta l4proto { tcp, udp } th dport %u counter drop\n"
            "\t}\n\n",
            w->bridge, w->gw, w->subnet, w->gw);
}

/* The guest's own chains: both log every new connection before deciding, then accept what is
 * allowed and send the rest to "refuse", which logs it again ("reject") and rejects it. */
static void render_guest_chains(FILE *m, const struct words *w)
{
    fprintf(m,
            "\t# from the guest to the host itself: DNS and ping only\n"
            "\tchain guest_in {\n"
            "\t\tct state established,related accept\n"
            "\t\tct state invalid counter drop\n"
            "\t\tmeta nfproto ipv6 counter drop\n"
            "\t\tct state new counter log prefix \"ocvm-%s: \"\n"
            "\t\tip daddr %s meta l4proto { tcp, udp } th dport 53 accept\n"
            "\t\tip daddr %s icmp type echo-request accept\n",
            w->vm, w->dns, w->bridge_addr);
    if (w->allow_list)
        fputs("\t\tmeta l4proto { tcp, udp } ip daddr . th dport @egress_allow accept\n", m);
    fputs("\t\tcounter goto refuse\n"
          "\t}\n\n",
          m);
    fprintf(m,
            "\t# from the guest through the host: out via the uplink only, DNS only to %s\n"
            "\tchain guest_out {\n"
            "\t\tct state established,related accept\n"
            "\t\tct state invalid counter drop\n"
            "\t\tmeta nfproto ipv6 counter drop\n"
            "\t\tct state new counter log prefix \"ocvm-%s: \"\n"
            "\t\tip saddr != %s counter goto refuse\n"
            "\t\toifname != \"%s\" counter goto refuse\n"
            "\t\tmeta l4proto { tcp, udp } th dport 53 ip daddr != %s counter goto refuse\n"
            "\t\tmeta l4proto { tcp, udp } th dport 53 accept\n",
            w->dns, w->vm, w->subnet, w->uplink, w->dns);
    if (w->allow_list)
        fputs("\t\tmeta l4proto { tcp, udp } ip daddr . th dport @egress_allow accept\n"
              "\t\tcounter goto refuse\n",
              m);
    else
        fputs("\t\taccept\n", m);
    fputs("\t}\n\n", m);
    fprintf(m,
            "\tchain refuse {\n"
            "\t\tcounter log prefix \"ocvm-%s: reject \" reject with icmpx admin-prohibited\n"
            "\t}\n",
            w->vm);
}

int firewall_render(const struct netsetup_plan *p, const struct firewall_facts *f, char **ret)
{
    struct cidr br, dns;
    if (!f->uplink)
        return -EINVAL;
    if (!nft_word_ok(p->vm, 64) || !nft_word_ok(p->bridge, 15) || !nft_word_ok(f->uplink, 15) ||
        cidr_parse(p->bridge_address, false, &br) < 0 || cidr_parse(p->dns, true, &dns) < 0 ||
        dns.prefix != 32 || p->gateway_port == 0)
        return -EINVAL;
    struct words w = {.vm = p->vm,
                      .bridge = p->bridge,
                      .uplink = f->uplink,
                      .gw = p->gateway_port,
                      .allow_list = p->n_egress > 0};
    cidr_format(cidr_network(br), w.subnet);
    cidr_format_addr(br.addr, w.bridge_addr);
    cidr_format_addr(dns.addr, w.dns);

    _cleanup_free_ char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (!m)
        return -ENOMEM;
    int r = 0;
    fprintf(m,
            "# ocvm: the firewall of VM %s: guest %s on bridge %s (%s),\n"
            "# out via %s. Applied and removed whole; ocvm adds nothing else to the ruleset.\n"
            "table inet " FIREWALL_TABLE_PREFIX "%s {\n",
            w.vm, p->guest_address, w.bridge, w.subnet, w.uplink, w.vm);
    if (w.allow_list)
        r = render_egress_set(m, f);
    render_hooks(m, &w);
    render_guest_chains(m, &w);
    fputs("}\n", m);
    if (ferror(m))
        r = -ENOMEM;
    if (fclose(m) != 0 && r == 0)
        r = -ENOMEM;
    if (r < 0)
        return r;
    *ret = TAKE_PTR(out);
    return 0;
}

static int gai_to_errno(int e)
{
    switch (e) {
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return negative_errno();
    case EAI_AGAIN:
        return -EAGAIN;
    default:
        return -EHOSTUNREACH;
    }
}

int firewall_resolve_egress(const struct netsetup_plan *plan, struct firewall_egress **ret,
                            size_t *ret_n, char **error)
{
    _cleanup_free_ struct firewall_egress *e = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < plan->n_egress; i++) {
        const struct netsetup_egress *rule = &plan->egress[i];
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(rule->host, NULL, &hints, &res);
        if (g != 0) {
            int r = gai_to_errno(g);
            if (asprintf(error, "network.egress.allow[%zu]: resolve %s: %s", i, rule->host,
                         g == EAI_SYSTEM ? strerror(-r) : gai_strerror(g)) < 0)
                *error = NULL;
            return r;
        }
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            if (a->ai_family != AF_INET)
                continue;
            uint32_t addr =
                ntohl(((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr.s_addr);
            for (size_t p = 0; p < rule->n_ports; p++) {
                if (count == FIREWALL_EGRESS_MAX) {
                    freeaddrinfo(res);
                    if (asprintf(error, "network.egress.allow: more than %d address and port pairs",
                                 FIREWALL_EGRESS_MAX) < 0)
                        *error = NULL;
                    return -E2BIG;
                }
                if (count == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    struct firewall_egress *ne = reallocarray(e, ncap, sizeof(*e));
                    if (!ne) {
                        freeaddrinfo(res);
                        return -ENOMEM;
                    }
                    e = ne;
                    cap = ncap;
                }
                e[count++] = (struct firewall_egress){.addr = addr, .port = rule->ports[p]};
            }
        }
        freeaddrinfo(res);
    }
    *ret = TAKE_PTR(e);
    *ret_n = count;
    return 0;
}

/* A context that keeps nft's output and errors in buffers instead of printing them. */
static int nft_open(unsigned output_flags, struct nft_ctx **ret)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx)
        return -ENOMEM;
    nft_ctx_output_set_flags(ctx, output_flags);
    if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
        nft_ctx_free(ctx);
        return -ENOMEM;
    }
    *ret = ctx;
    return 0;
}

/* nft's error buffer as one line: the first "Error: ..." message. The source excerpt nft prints
 * under it is left out: for buffer input nft 1.0.6 quotes the buffer's first line, not the one
 * at fault. */
static char *nft_error_line(struct nft_ctx *ctx)
{
    const char *buf = nft_ctx_get_error_buffer(ctx);
    if (!buf || !*buf)
        return strdup("nft failed without a message");
    const char *err = strstr(buf, "Error: ");
    const char *line = err ? err + strlen("Error: ") : buf;
    return strndup(line, strcspn(line, "\n"));
}

/* Runs TEXT (one transaction); on failure sets *error to "WHAT: nft's error". */
static int nft_run(struct nft_ctx *ctx, const char *text, const char *what, char **error)
{
    if (nft_run_cmd_from_buffer(ctx, text) == 0)
        return 0;
    _cleanup_free_ char *line = nft_error_line(ctx);
    if (asprintf(error, "%s: %s", what, line ? line : "nft failed") < 0)
        *error = NULL;
    /* libnftables reports no errno; a missing table or object is the one case callers test. */
    return line && strstr(line, "No such file or directory") ? -ENOENT : -EIO;
}

int firewall_apply(const char *vm_name, const char *ruleset, char **error)
{
    _cleanup_free_ char *table = NULL, *text = NULL, *what = NULL;
    _cleanup_nft_ struct nft_ctx *ctx = NULL;
    int r = firewall_table_name(vm_name, &table);
    if (r < 0)
        return r;
    /* Declaring the table first makes the delete valid when it does not exist yet; the three
     * commands are one transaction, so the old table is replaced atomically or left alone. */
    if (asprintf(&text, "table inet %s\ndelete table inet %s\n%s", table, table, ruleset) < 0 ||
        asprintf(&what, "apply nft table inet %s", table) < 0)
        return -ENOMEM;
    if ((r = nft_open(0, &ctx)) < 0)
        return r;
    return nft_run(ctx, text, what, error);
}

int firewall_remove(const char *vm_name, char **error)
{
    _cleanup_free_ char *table = NULL, *text = NULL, *what = NULL;
    _cleanup_nft_ struct nft_ctx *ctx = NULL;
    int r = firewall_table_name(vm_name, &table);
    if (r < 0)
        return r;
    if (asprintf(&text, "table inet %s\ndelete table inet %s\n", table, table) < 0 ||
        asprintf(&what, "delete nft table inet %s", table) < 0)
        return -ENOMEM;
    if ((r = nft_open(0, &ctx)) < 0)
        return r;
    return nft_run(ctx, text, what, error);
}

int firewall_count_tables(const char *except_vm_name, char **error)
{
    _cleanup_nft_ struct nft_ctx *ctx = NULL;
    int r = nft_open(NFT_CTX_OUTPUT_JSON, &ctx);
    if (r < 0)
        return r;
    if ((r = nft_run(ctx, "list tables inet", "list nft tables", error)) < 0)
        return r;
    json_error_t jerr;
    json_t *root = json_loads(nft_ctx_get_output_buffer(ctx), 0, &jerr);
    json_t *items = json_object_get(root, "nftables"), *item;
    size_t i;
    int count = 0;
    json_array_foreach(items, i, item)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(item, "table"), "name"));
        if (!name || strncmp(name, FIREWALL_TABLE_PREFIX, strlen(FIREWALL_TABLE_PREFIX)) != 0)
            continue;
        if (except_vm_name && strcmp(name + strlen(FIREWALL_TABLE_PREFIX), except_vm_name) == 0)
            continue;
        count++;
    }
    json_decref(root);
    return count;
}

/* Lists TABLE twice: JSON for comparing, text with handles for messages. Both stateless. */
static int nft_list_table(const char *table, char **ret_json, char **ret_text, char **error)
{
    _cleanup_free_ char *cmd = NULL, *what = NULL;
    if (asprintf(&cmd, "list table inet %s", table) < 0 ||
        asprintf(&what, "list nft table inet %s", table) < 0)
        return -ENOMEM;
    const unsigned modes[2] = {NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_STATELESS,
                               NFT_CTX_OUTPUT_HANDLE | NFT_CTX_OUTPUT_STATELESS};
    char **outs[2] = {ret_json, ret_text};
    for (int k = 0; k < 2; k++) {
        _cleanup_nft_ struct nft_ctx *ctx = NULL;
        int r = nft_open(modes[k], &ctx);
        if (r < 0 || (r = nft_run(ctx, cmd, what, error)) < 0)
            return r;
        if (!(*outs[k] = strdup(nft_ctx_get_output_buffer(ctx))))
            return -ENOMEM;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* In a child: a new, empty network namespace, RULESET applied there, and its listings written to
 * FD as "json\0text\0", or "\1message\0" on failure. Never returns. */
_Noreturn static void scratch_child(int fd, const char *table, const char *ruleset)
{
    char *error = NULL, *json = NULL, *text = NULL;
    struct nft_ctx *ctx = NULL;
    int r = 0;
    if (unshare(CLONE_NEWNET) < 0) {
        r = negative_errno();
        if (asprintf(&error, "new network namespace for the audit: %s", strerror(-r)) < 0)
            error = NULL;
    } else if ((r = nft_open(0, &ctx)) == 0 &&
               (r = nft_run(ctx, ruleset, "apply the wanted table in a scratch namespace",
                            &error)) == 0) {
        r = nft_list_table(table, &json, &text, &error);
    }
    if (r < 0) {
        write_all(fd, "\1", 1);
        write_all(fd, error ? error : "audit child failed",
                  strlen(error ? error : "audit child failed") + 1);
    } else {
        write_all(fd, json, strlen(json) + 1);
        write_all(fd, text, strlen(text) + 1);
    }
    _exit(r < 0 ? 1 : 0);
}

/* What RULESET looks like once nft has read it: its JSON and text listings. */
static int scratch_listing(const char *table, const char *ruleset, char **ret_json, char **ret_text,
                           char **error)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return negative_errno();
    _cleanup_close_ int rd = p[0];
    _cleanup_close_ int wr = p[1];
    pid_t pid = fork();
    if (pid < 0)
        return negative_errno();
    if (pid == 0) {
        rd = -1;
        scratch_child(wr, table, ruleset);
    }
    closep(&wr);
    wr = -1;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 0;
    int r = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!nb) {
                r = -ENOMEM;
                break;
            }
            buf = nb;
        }
        ssize_t n = read(rd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                r = negative_errno();
            break;
        }
        len += (size_t)n;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return r;
    buf[len] = 0;
    if (len > 0 && buf[0] == '\1') {
        if (!(*error = strdup(buf + 1)))
            return -ENOMEM;
        return -EIO;
    }
    size_t first = strnlen(buf, len);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || first + 1 >= len) {
        if (asprintf(error, "audit child for table inet %s failed", table) < 0)
            *error = NULL;
        return -EIO;
    }
    if (!(*ret_json = strdup(buf)) || !(*ret_text = strdup(buf + first + 1)))
        return -ENOMEM;
    return 0;
}

int firewall_audit(const char *vm_name, const char *ruleset, struct diff_list *d, char **error)
{
    _cleanup_free_ char *table = NULL, *want_json = NULL, *want_text = NULL, *live_json = NULL,
                        *live_text = NULL, *prefix = NULL, *live_error = NULL;
    int r = firewall_table_name(vm_name, &table);
    if (r < 0)
        return r;
    if ((r = scratch_listing(table, ruleset, &want_json, &want_text, error)) < 0)
        return r;
    r = nft_list_table(table, &live_json, &live_text, &live_error);
    if (r == -ENOENT) {
        diff_list_addf(d, "table inet %s is missing", table);
        return d->error;
    }
    if (r < 0) {
        *error = TAKE_PTR(live_error);
        return r;
    }
    if (asprintf(&prefix, "table inet %s: ", table) < 0)
        return -ENOMEM;
    if ((r = ruleset_diff(want_json, want_text, live_json, live_text, prefix, d)) < 0) {
        if (asprintf(error, "table inet %s: cannot read nft's JSON listing", table) < 0)
            *error = NULL;
        return r;
    }
    return d->error;
}
