/* libFuzzer target: the guest's kernel command line as ocvm-guest reads it (vsock/guest_cmdline.c):
 * the vmm.notify_socket credential and every ocvm.relay=LISTEN,CONNECT, each half then parsed as
 * an endpoint the way `ocvm-guest relay` does (vsock/endpoint.c). Input: the command line, cut
 * at 8 KiB like /proc/cmdline is read. Checks: every parameter found lies inside the line, the
 * walk always moves forward, and an endpoint printed back parses to the same endpoint. */
#include "vsock/endpoint.h"
#include "vsock/guest_cmdline.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CMDLINE_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_endpoint(const char *s)
{
    struct endpoint e, again;
    const char *why;
    if (endpoint_parse(s, &e, &why) < 0)
        return;
    char buf[256];
    if (endpoint_parse(endpoint_format(&e, buf, sizeof(buf)), &again, &why) < 0 ||
        again.kind != e.kind || again.port != e.port || again.cid != e.cid ||
        strcmp(again.host, e.host) != 0 || strcmp(again.path, e.path) != 0)
        abort(); /* endpoint_format wrote something endpoint_parse reads differently */
    (void)endpoint_is_local(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= CMDLINE_MAX)
        size = CMDLINE_MAX - 1;
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    const char *end = line + strlen(line);

    uint32_t cid, port;
    int r = guest_cmdline_notify_socket(line, &cid, &port);
    if (r != 0 && r != -ENOENT && r != -EINVAL)
        abort();

    struct guest_relay_param prm;
    const char *p = line;
    while ((r = guest_cmdline_next_relay(&p, &prm)) != 0) {
        if (prm.text < line || prm.text + prm.len > end || p <= prm.text || p > end)
            abort();
        if (r == -ENAMETOOLONG)
            continue;
        if (r == -EINVAL) {
            if (strchr(prm.pair, ','))
                abort();
            continue;
        }
        if (r != 1 || !prm.connect || prm.connect <= prm.pair ||
            prm.connect >= prm.pair + sizeof(prm.pair))
            abort();
        check_endpoint(prm.pair);
        check_endpoint(prm.connect);
    }
    free(line);
    return 0;
}
