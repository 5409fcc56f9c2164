#include "launcher/guest_notify.h"

#include "common/cleanup.h"
#include "vsock/listen_rest.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

enum { MAX_CLIENTS = 8 };

/* Copies at most SIZE-1 bytes of SRC, each byte that is not printable ASCII as '?'. */
static void copy_printable(char *dst, size_t size, const char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < size; i++)
        dst[k++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[k] = '\0';
}

int guest_notify_parse(const char *buf, size_t len, struct guest_notify_msg *ret)
{
    struct guest_notify_msg m = {0};
    if (memchr(buf, '\0', len))
        return -EBADMSG;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == 7 && strncmp(p, "READY=1", 7) == 0)
            m.ready = true;
        else if (n == 10 && strncmp(p, "STOPPING=1", 10) == 0)
            m.stopping = true;
        else if (n > 7 && strncmp(p, "STATUS=", 7) == 0)
            copy_printable(m.status, sizeof(m.status), p + 7, n - 7);
        else if (n > 11 && strncmp(p, "OCVM_STAGE=", 11) == 0)
            copy_printable(m.stage, sizeof(m.stage), p + 11, n - 11);
        p += n + 1;
    }
    *ret = m;
    return 0;
}

struct client {
    sd_event_source *io;
    char buf[GUEST_NOTIFY_MAX];
    size_t len;
};

struct guest_notify {
    sd_event_source *listener;
    struct listen_rest listen_rest; /* out of fds: the listener rests a while */
    struct client *clients[MAX_CLIENTS];
    guest_notify_fn fn;
    void *userdata;
};

static void client_drop(struct guest_notify *g, size_t i)
{
    sd_event_source_disable_unref(g->clients[i]->io); /* owns and closes the fd */
    free(g->clients[i]);
    g->clients[i] = NULL;
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct guest_notify *g = userdata;
    size_t i;
    for (i = 0; i < MAX_CLIENTS && (!g->clients[i] || g->clients[i]->io != s); i++)
        ;
    if (i == MAX_CLIENTS)
        return 0;
    struct client *c = g->clients[i];
    ssize_t n = recv(fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n > 0) {
        c->len += (size_t)n;
        if (c->len < sizeof(c->buf))
            return 0; /* a message ends when the guest closes */
    }
    struct guest_notify_msg m;
    if (c->len > 0 && c->len < sizeof(c->buf) && guest_notify_parse(c->buf, c->len, &m) == 0)
        g->fn(&m, g->userdata);
    client_drop(g, i); /* oversized or malformed messages are dropped whole */
    return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct guest_notify *g = userdata;
    _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
        (void)listen_rest_after(&g->listen_rest, errno);
        return 0;
    }
    size_t i;
    for (i = 0; i < MAX_CLIENTS && g->clients[i]; i++)
        ;
    if (i == MAX_CLIENTS)
        return 0; /* a flood from the guest: refuse, keep the slots we have */
    struct client *c = calloc(1, sizeof(*c));
    if (!c)
        return 0;
    if (sd_event_add_io(sd_event_source_get_event(s), &c->io, cfd, EPOLLIN, on_client, g) < 0) {
        free(c);
        return 0;
    }
    sd_event_source_set_io_fd_own(c->io, true);
    TAKE_FD(cfd);
    g->clients[i] = c;
    return 0;
}

int guest_notify_new(sd_event *e, int listen_fd, guest_notify_fn fn, void *userdata,
                     struct guest_notify **ret)
{
    struct guest_notify *g = calloc(1, sizeof(*g));
    if (!g) {
        close(listen_fd);
        return -ENOMEM;
    }
    g->fn = fn;
    g->userdata = userdata;
    int r = sd_event_add_io(e, &g->listener, listen_fd, EPOLLIN, on_accept, g);
    if (r < 0) {
        close(listen_fd);
        free(g);
        return r;
    }
    sd_event_source_set_io_fd_own(g->listener, true);
    r = listen_rest_init(&g->listen_rest, g->listener);
    if (r < 0) {
        guest_notify_free(g);
        return r;
    }
    *ret = g;
    return 0;
}

void guest_notify_free(struct guest_notify *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (g->clients[i])
            client_drop(g, i);
    listen_rest_done(&g->listen_rest);
    sd_event_source_disable_unref(g->listener);
    free(g);
}
