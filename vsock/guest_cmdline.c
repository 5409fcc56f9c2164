#include "vsock/guest_cmdline.h"

#include "common/cleanup.h"
#include "common/parse.h"

#include <errno.h>
#include <string.h>

int guest_cmdline_notify_socket(const char *cmdline, uint32_t *ret_cid, uint32_t *ret_port)
{
    const char *value = NULL;
    size_t value_len = 0;
    const size_t prefix_len = strlen(GUEST_CMDLINE_NOTIFY_SOCKET);

    for (const char *p = cmdline; *p;) {
        size_t len;

        p += strspn(p, " \t\n");
        len = strcspn(p, " \t\n");
        if (len > prefix_len && strncmp(p, GUEST_CMDLINE_NOTIFY_SOCKET, prefix_len) == 0) {
            value = p + prefix_len;
            value_len = len - prefix_len;
        }
        p += len;
    }
    if (!value)
        return -ENOENT;

    static const char *const schemes[] = {"vsock-stream:", "vsock:"};
    const char *rest = NULL;
    for (size_t i = 0; i < ELEMENTSOF(schemes) && !rest; i++)
        if (value_len > strlen(schemes[i]) && strncmp(value, schemes[i], strlen(schemes[i])) == 0)
            rest = value + strlen(schemes[i]);
    if (!rest)
        return -EINVAL;

    size_t rest_len = value_len - (size_t)(rest - value);
    const char *colon = memchr(rest, ':', rest_len);
    if (!colon)
        return -EINVAL;
    if (decimal_u32(rest, (size_t)(colon - rest), UINT32_MAX, ret_cid) < 0 ||
        decimal_u32(colon + 1, rest_len - (size_t)(colon + 1 - rest), UINT32_MAX, ret_port) < 0)
        return -EINVAL;
    return 0;
}

int guest_cmdline_next_relay(const char **pos, struct guest_relay_param *ret)
{
    const size_t prefix_len = strlen(GUEST_CMDLINE_RELAY);
    for (const char *p = *pos; *p;) {
        p += strspn(p, " \t\n");
        size_t len = strcspn(p, " \t\n");
        if (len > prefix_len && strncmp(p, GUEST_CMDLINE_RELAY, prefix_len) == 0) {
            *pos = p + len;
            ret->text = p;
            ret->len = len;
            ret->connect = NULL;
            size_t vlen = len - prefix_len;
            if (vlen >= sizeof(ret->pair))
                return -ENAMETOOLONG;
            memcpy(ret->pair, p + prefix_len, vlen);
            ret->pair[vlen] = '\0';
            char *comma = strchr(ret->pair, ',');
            if (!comma)
                return -EINVAL;
            *comma = '\0';
            ret->connect = comma + 1;
            return 1;
        }
        p += len;
    }
    return 0;
}
