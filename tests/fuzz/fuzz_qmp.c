/* libFuzzer target: the QMP client (launcher/qmp.c) fed a hostile QEMU over a real socketpair and
 * sd-event. Input: QEMU's side of the stream. The handlers do what the supervisor's do: on ready,
 * query-status (id 2, after qmp_capabilities' id 1) and read its "status"; on an event, read
 * SHUTDOWN's "reason". The whole input is also given to qmp_parse as one message. Checks: the
 * client ends closed once the stream ends, ready comes at most once and only after a greeting,
 * no reply arrives for an id never sent, and every callback sees well-typed values. */
#include "launcher/qmp.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_MAX (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    unsigned ready, closed, replies;
};

static void on_status(struct qmp *q, json_t *ret, const char *error_desc, void *userdata)
{
    struct run *run = userdata;
    run->replies++;
    if (!ret && !error_desc)
        abort(); /* a reply is either a value or an error */
    json_t *status = ret ? json_object_get(ret, "status") : NULL;
    if (json_is_string(status) && strcmp(json_string_value(status), "running") == 0)
        (void)qmp_call(q, "cont", NULL, NULL, NULL);
}

static void on_ready(struct qmp *q, void *userdata)
{
    struct run *run = userdata;
    if (++run->ready > 1 || !qmp_is_ready(q))
        abort();
    (void)qmp_call(q, "query-status", NULL, on_status, run);
}

static void on_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
    if (!name || (data && !json_is_object(data)))
        abort();
    json_t *reason = data ? json_object_get(data, "reason") : NULL;
    const char *why = json_is_string(reason) ? json_string_value(reason) : "unknown";
    (void)(strcmp(name, "SHUTDOWN") == 0 && strcmp(why, "guest-shutdown") == 0);
}

static void on_closed(struct qmp *q, int error, const char *why, void *userdata)
{
    struct run *run = userdata;
    if (++run->closed > 1 || !why || error > 0)
        abort();
}

static const struct qmp_handlers handlers = {
    .ready = on_ready, .event = on_event, .closed = on_closed};

static void whole(const uint8_t *data, size_t size)
{
    struct qmp_msg m;
    const char *why = NULL;
    if (qmp_parse((const char *)data, size, &m, &why) == 0) {
        if (why || !json_is_object(m.root) || (m.kind == QMP_EVENT && !m.event) ||
            (m.kind == QMP_ERROR && (!m.error_class || !m.error_desc)))
            abort();
        json_decref(m.root);
    } else if (!why) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > STREAM_MAX)
        return 0;
    whole(data, size);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    int sndbuf = 4 * STREAM_MAX;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    sd_event *e = NULL;
    struct qmp *q = NULL;
    struct run run = {0};
    if (sd_event_new(&e) < 0 || qmp_new(e, sv[0], &handlers, &run, &q) < 0) {
        close(sv[1]);
        sd_event_unref(e);
        return 0;
    }
    size_t sent = 0;
    while (sent < size && !run.closed) {
        ssize_t k = send(sv[1], data + sent, size - sent, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN)
            abort();
        if (k > 0)
            sent += (size_t)k;
        if (sd_event_run(e, 0) < 0)
            break;
    }
    shutdown(sv[1], SHUT_WR);
    for (unsigned i = 0; i < 64 && !run.closed; i++)
        if (sd_event_run(e, 0) < 0)
            break;
    if (!run.closed || run.ready > 1 || (run.ready == 0 && run.replies > 0))
        abort(); /* EOF must close it; a reply needs a command, which needs ready */
    qmp_free(q);
    sd_event_unref(e);
    close(sv[1]);
    return 0;
}
