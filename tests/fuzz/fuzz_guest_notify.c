/* libFuzzer target: sd_notify text from the guest (launcher/guest_notify.c), parsed directly and
 * through the listener the supervisor runs: byte 0 says how many guest connections (1-4) share
 * the rest of the input, each sending its part and closing. Checks: a message is refused exactly
 * when it holds a NUL, STATUS= and OCVM_STAGE= come out bounded and printable, and a connection
 * yields at most one message, only when it sent fewer than GUEST_NOTIFY_MAX bytes. */
#include "launcher/guest_notify.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENTS_MAX 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size)
        abort(); /* not terminated inside its array */
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] >= 0x7f)
            abort();
}

static void check_msg(const struct guest_notify_msg *m)
{
    check_text(m->status, sizeof(m->status));
    check_text(m->stage, sizeof(m->stage));
}

static void on_msg(const struct guest_notify_msg *m, void *userdata)
{
    check_msg(m);
    ++*(unsigned *)userdata;
}

/* A listening Unix socket in the abstract namespace, one per process. */
static int listener(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ocvm-fuzz-guest-notify-%d", (int)getpid());
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void serve(const uint8_t *data, size_t size)
{
    static int lfd = -2;
    if (lfd == -2)
        lfd = listener();
    if (lfd < 0)
        return;
    struct sockaddr_un sa;
    socklen_t salen = sizeof(sa);
    if (getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0)
        return;
    unsigned clients = 1 + (data[0] & 3), got = 0, small = 0;
    data++;
    size--;
    sd_event *e = NULL;
    struct guest_notify *g = NULL;
    int fd = dup(lfd);
    if (fd < 0 || sd_event_new(&e) < 0) {
        if (fd >= 0)
            close(fd);
        sd_event_unref(e);
        return;
    }
    if (guest_notify_new(e, fd, on_msg, &got, &g) < 0) {
        sd_event_unref(e);
        return;
    }
    size_t part = size / clients;
    for (unsigned i = 0; i < clients; i++) {
        size_t n = i + 1 == clients ? size - part * i : part;
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, salen) < 0)
            abort();
        for (size_t sent = 0; sent < n;) {
            ssize_t k = send(c, data + part * i + sent, n - sent, MSG_NOSIGNAL);
            if (k <= 0)
                break; /* the listener dropped an oversized message */
            sent += (size_t)k;
            (void)sd_event_run(e, 0);
        }
        if (n > 0 && n < GUEST_NOTIFY_MAX)
            small++;
        close(c);
        for (unsigned k = 0; k < 16; k++)
            if (sd_event_run(e, 0) <= 0)
                break;
    }
    for (unsigned k = 0; k < 64; k++)
        if (sd_event_run(e, 0) <= 0)
            break;
    if (got > small)
        abort();
    guest_notify_free(g);
    sd_event_unref(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4 * GUEST_NOTIFY_MAX + 1)
        return 0;
    struct guest_notify_msg m;
    int r = guest_notify_parse((const char *)data + 1, size - 1, &m);
    bool nul = memchr(data + 1, '\0', size - 1) != NULL;
    if ((r == 0) == nul || (r < 0 && r != -EBADMSG))
        abort();
    if (r == 0)
        check_msg(&m);
    serve(data, size);
    return 0;
}
