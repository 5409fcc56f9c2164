#include "launcher/qmp.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int qmp_parse(const char *line, size_t len, struct qmp_msg *ret, const char **why)
{
    json_error_t err;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    struct qmp_msg m = {.id = -1, .root = o};
    if (!o) {
        *why = "not valid JSON";
        return -EBADMSG;
    }
    json_t *v, *id = json_object_get(o, "id");
    *why = NULL;
    if (!json_is_object(o))
        *why = "not a JSON object";
    else if (id && !json_is_integer(id))
        *why = "\"id\" is not an integer";
    else if ((v = json_object_get(o, "QMP"))) {
        m.kind = QMP_GREETING;
        if (!json_is_object(v))
            *why = "greeting \"QMP\" is not an object";
    } else if ((v = json_object_get(o, "return"))) {
        m.kind = QMP_RETURN;
        m.data = v;
    } else if ((v = json_object_get(o, "error"))) {
        m.kind = QMP_ERROR;
        json_t *cls = json_object_get(v, "class"), *desc = json_object_get(v, "desc");
        if (!json_is_string(cls) || !json_is_string(desc))
            *why = "\"error\" lacks a string class and desc";
        else {
            m.error_class = json_string_value(cls);
            m.error_desc = json_string_value(desc);
        }
    } else if ((v = json_object_get(o, "event"))) {
        m.kind = QMP_EVENT;
        m.data = json_object_get(o, "data");
        if (!json_is_string(v))
            *why = "\"event\" is not a string";
        else if (m.data && !json_is_object(m.data))
            *why = "event \"data\" is not an object";
        else
            m.event = json_string_value(v);
    } else {
        *why = "neither greeting, return, error nor event";
    }
    if (*why) {
        json_decref(o);
        return -EBADMSG;
    }
    if (id)
        m.id = json_integer_value(id);
    *ret = m;
    return 0;
}

struct qmp_pending {
    long long id;
    qmp_reply_fn fn;
    void *userdata;
};

struct qmp {
    int fd;
    sd_event_source *io;
    struct qmp_handlers h;
    void *userdata;
    bool greeted, ready, closed;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len;
    struct qmp_pending *pending;
    size_t n_pending;
    long long next_id;
};

static void qmp_close(struct qmp *q, int error, const char *why)
{
    if (q->closed)
        return;
    q->closed = true;
    q->io = sd_event_source_disable_unref(q->io);
    if (q->h.closed)
        q->h.closed(q, error, why, q->userdata);
}

static int qmp_flush(struct qmp *q)
{
    while (q->out_len > 0) {
        ssize_t n = send(q->fd, q->out, q->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            return negative_errno();
        }
        memmove(q->out, q->out + n, q->out_len - (size_t)n);
        q->out_len -= (size_t)n;
    }
    return sd_event_source_set_io_events(q->io, EPOLLIN | (q->out_len ? EPOLLOUT : 0));
}

static int qmp_send(struct qmp *q, const char *command, json_t *args, long long id)
{
    json_t *o = json_pack("{s:s,s:I}", "execute", command, "id", (json_int_t)id);
    if (!o) {
        json_decref(args);
        return -ENOMEM;
    }
    if (args && json_object_set_new(o, "arguments", args) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    _cleanup_free_ char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    char *out = realloc(q->out, q->out_len + n + 1);
    if (!out)
        return -ENOMEM;
    q->out = out;
    memcpy(q->out + q->out_len, s, n);
    q->out[q->out_len + n] = '\n';
    q->out_len += n + 1;
    return qmp_flush(q);
}

static void capabilities_done(struct qmp *q, json_t *ret, const char *error_desc, void *userdata)
{
    if (!ret) {
        qmp_close(q, -EPROTO, "qmp_capabilities refused");
        return;
    }
    q->ready = true;
    if (q->h.ready)
        q->h.ready(q, q->userdata);
}

static int qmp_dispatch(struct qmp *q, const char *line, size_t len)
{
    struct qmp_msg m;
    const char *why;
    if (qmp_parse(line, len, &m, &why) < 0) {
        qmp_close(q, -EBADMSG, why);
        return -EBADMSG;
    }
    int r = 0;
    if (m.kind == QMP_GREETING) {
        if (q->greeted) {
            qmp_close(q, -EPROTO, "a second greeting");
            r = -EPROTO;
        } else {
            q->greeted = true;
            r = qmp_call(q, "qmp_capabilities", NULL, capabilities_done, NULL);
            if (r < 0)
                qmp_close(q, r, "cannot send qmp_capabilities");
        }
    } else if (m.kind == QMP_EVENT) {
        if (q->h.event)
            q->h.event(q, m.event, m.data, q->userdata);
    } else {
        size_t i;
        for (i = 0; i < q->n_pending && q->pending[i].id != m.id; i++)
            ;
        if (i == q->n_pending) {
            qmp_close(q, -EPROTO, "a reply to no command that was sent");
            r = -EPROTO;
        } else {
            struct qmp_pending p = q->pending[i];
            memmove(&q->pending[i], &q->pending[i + 1], (q->n_pending - i - 1) * sizeof(p));
            q->n_pending--;
            if (p.fn)
                p.fn(q, m.kind == QMP_RETURN ? m.data : NULL,
                     m.kind == QMP_ERROR ? m.error_desc : NULL, p.userdata);
        }
    }
    json_decref(m.root);
    return r;
}

static int qmp_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct qmp *q = userdata;
    if (revents & EPOLLOUT) {
        int r = qmp_flush(q);
        if (r < 0) {
            qmp_close(q, r, "write failed");
            return 0;
        }
    }
    if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return 0;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno != EAGAIN)
            qmp_close(q, negative_errno(), "read failed");
        return 0;
    }
    if (n == 0) {
        qmp_close(q, 0, "QEMU closed the connection");
        return 0;
    }
    char *in = realloc(q->in, q->in_len + (size_t)n);
    if (!in) {
        qmp_close(q, -ENOMEM, "out of memory");
        return 0;
    }
    q->in = in;
    memcpy(q->in + q->in_len, buf, (size_t)n);
    q->in_len += (size_t)n;
    size_t start = 0;
    for (size_t i = q->in_len - (size_t)n; i < q->in_len && !q->closed; i++) {
        if (q->in[i] != '\n')
            continue;
        if (i - start >= QMP_MAX_LINE) {
            qmp_close(q, -EMSGSIZE, "a line longer than 1 MiB");
            return 0;
        }
        int r = i > start ? qmp_dispatch(q, q->in + start, i - start) : 0;
        if (r < 0) {
            qmp_close(q, r, "cannot answer QEMU"); /* no-op if dispatch closed it already */
            return 0;
        }
        start = i + 1;
    }
    if (q->closed)
        return 0;
    if (q->in_len - start >= QMP_MAX_LINE) { /* an unfinished line is too long already */
        qmp_close(q, -EMSGSIZE, "a line longer than 1 MiB");
        return 0;
    }
    memmove(q->in, q->in + start, q->in_len - start);
    q->in_len -= start;
    return 0;
}

int qmp_new(sd_event *e, int fd, const struct qmp_handlers *h, void *userdata, struct qmp **ret)
{
    struct qmp *q = calloc(1, sizeof(*q));
    if (!q) {
        close(fd);
        return -ENOMEM;
    }
    *q = (struct qmp){.fd = fd, .h = *h, .userdata = userdata, .next_id = 1};
    int r = sd_event_add_io(e, &q->io, fd, EPOLLIN, qmp_io, q);
    if (r < 0) {
        qmp_free(q);
        return r;
    }
    *ret = q;
    return 0;
}

void qmp_free(struct qmp *q)
{
    if (!q)
        return;
    sd_event_source_disable_unref(q->io);
    if (q->fd >= 0)
        close(q->fd);
    free(q->in);
    free(q->out);
    free(q->pending);
    free(q);
}

int qmp_call(struct qmp *q, const char *command, json_t *args, qmp_reply_fn reply, void *userdata)
{
    if (q->closed) {
        json_decref(args);
        return -ENOTCONN;
    }
    struct qmp_pending *p = realloc(q->pending, (q->n_pending + 1) * sizeof(*p));
    if (!p) {
        json_decref(args);
        return -ENOMEM;
    }
    q->pending = p;
    long long id = q->next_id++;
    q->pending[q->n_pending++] = (struct qmp_pending){.id = id, .fn = reply, .userdata = userdata};
    int r = qmp_send(q, command, args, id);
    if (r < 0)
        q->n_pending--; /* never sent: no reply will come */
    return r;
}

bool qmp_is_ready(const struct qmp *q)
{
    return q->ready && !q->closed;
}
