/* qmp: the parser accepts what QEMU really sends and refuses what it must not trust, each refusal
 * with a reason; the client, driven by sd-event against a fake QEMU on a socketpair, does the
 * handshake, routes replies by id and events to their callback, copes with any split of the byte
 * stream, and closes (once, with a reason) on anything it cannot trust. */
#include "launcher/qmp.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- qmp_parse ---- */

#define TS "\"timestamp\": {\"seconds\": 1764000000, \"microseconds\": 123456}"

static const struct good_line {
    const char *line;
    enum qmp_kind kind;
    long long id;
    const char *event, *error_class, *error_desc;
    const char *data; /* compact, sorted JSON of .data, or NULL */
} good[] = {
    {"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": "
     "\"Debian 1:7.2+dfsg-7+deb12u6\"}, \"capabilities\": [\"oob\"]}}",
     QMP_GREETING, -1, NULL, NULL, NULL, NULL},
    {"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": "
     "\"\"}, \"capabilities\": []}}",
     QMP_GREETING, -1, NULL, NULL, NULL, NULL},
    {"{\"return\": {}, \"id\": 1}", QMP_RETURN, 1, NULL, NULL, NULL, "{}"},
    {"{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": 2}",
     QMP_RETURN, 2, NULL, NULL, NULL,
     "{\"running\":true,\"singlestep\":false,\"status\":\"running\"}"},
    {"{\"id\": 3, \"return\": {\"status\": \"paused\", \"running\": false}}", QMP_RETURN, 3, NULL,
     NULL, NULL, "{\"running\":false,\"status\":\"paused\"}"},
    {"{\"return\": [{\"name\": \"query-status\"}, {\"name\": \"quit\"}], \"id\": 4}", QMP_RETURN, 4,
     NULL, NULL, NULL, "[{\"name\":\"query-status\"},{\"name\":\"quit\"}]"},
    {"{\"return\": \"QEMU 7.2.0\\r\\n\", \"id\": 5}", QMP_RETURN, 5, NULL, NULL, NULL,
     "\"QEMU 7.2.0\\r\\n\""},
    {"{\"return\": {}, \"id\": 9223372036854775807}", QMP_RETURN, 9223372036854775807LL, NULL, NULL,
     NULL, "{}"},
    {"{\"id\": 6, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command bogus has "
     "not "
     "been found\"}}",
     QMP_ERROR, 6, NULL, "CommandNotFound", "The command bogus has not been found", NULL},
    {"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}",
     QMP_ERROR, -1, NULL, "GenericError", "JSON parse error, expecting value", NULL},
    {"{" TS ", \"event\": \"STOP\"}", QMP_EVENT, -1, "STOP", NULL, NULL, NULL},
    {"{" TS ", \"event\": \"RESUME\"}", QMP_EVENT, -1, "RESUME", NULL, NULL, NULL},
    {"{\"event\": \"POWERDOWN\", " TS "}", QMP_EVENT, -1, "POWERDOWN", NULL, NULL, NULL},
    {"{" TS
     ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}",
     QMP_EVENT, -1, "SHUTDOWN", NULL, NULL, "{\"guest\":true,\"reason\":\"guest-shutdown\"}"},
    {"{" TS
     ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}",
     QMP_EVENT, -1, "SHUTDOWN", NULL, NULL, "{\"guest\":false,\"reason\":\"host-qmp-quit\"}"},
    {"{" TS ", \"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}",
     QMP_EVENT, -1, "RESET", NULL, NULL, "{\"guest\":true,\"reason\":\"guest-reset\"}"},
    {"{" TS ", \"event\": \"STOP\"}\r", QMP_EVENT, -1, "STOP", NULL, NULL, NULL}, /* CRLF */
};

static char *dump_sorted(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

START_TEST(test_parse_real_lines)
{
    const struct good_line *c = &good[_i];
    struct qmp_msg m;
    const char *why = "untouched";
    int r = qmp_parse(c->line, strlen(c->line), &m, &why);
    ck_assert_msg(r == 0, "%s: rejected: %s", c->line, why);
    ck_assert_int_eq(m.kind, c->kind);
    ck_assert_ptr_nonnull(m.root);
    if (c->kind == QMP_RETURN || c->kind == QMP_ERROR)
        ck_assert_int_eq(m.id, c->id);
    if (c->event)
        ck_assert_str_eq(m.event, c->event);
    if (c->error_class) {
        ck_assert_str_eq(m.error_class, c->error_class);
        ck_assert_str_eq(m.error_desc, c->error_desc);
    }
    if (c->data) {
        ck_assert_ptr_nonnull(m.data);
        char *d = dump_sorted(m.data);
        ck_assert_str_eq(d, c->data);
        free(d);
    } else if (c->kind == QMP_EVENT) {
        ck_assert_ptr_null(m.data);
    }
    json_decref(m.root);
}
END_TEST

static const char *const hostile[] = {
    "",
    "not json",
    "QMP",
    "[{\"return\": {}, \"id\": 1}]",
    "\"return\"",
    "42",
    "null",
    "{}",
    "{\"id\": 1}",
    "{\"foo\": {}, \"id\": 1}",
    "{\"return\": {}, \"id\": \"1\"}",
    "{\"return\": {}, \"id\": 1.5}",
    "{\"return\": {}, \"id\": true}",
    "{\"return\": {}, \"id\": null}",
    "{\"return\": {}, \"id\": [1]}",
    "{\"return\": {}, \"id\": 99999999999999999999}",
    "{\"return\": {\"size\": 1e99999}, \"id\": 1}",
    "{\"return\": {}, \"return\": {\"status\": \"running\"}, \"id\": 1}",
    "{\"return\": {}, \"id\": 1, \"id\": 2}",
    "{\"return\": {}, \"id\": 1",
    "{\"return\": {\"status\": \"runn",
    "{\"return\": {}, \"id\": 1} {\"return\": {}, \"id\": 2}",
    "{\"return\": {}, \"id\": 1} trailing",
    "{\"QMP\": []}",
    "{\"QMP\": \"hello\"}",
    "{\"error\": \"GenericError\", \"id\": 1}",
    "{\"error\": {\"class\": \"GenericError\"}, \"id\": 1}",
    "{\"error\": {\"desc\": \"no class\"}, \"id\": 1}",
    "{\"error\": {\"class\": 1, \"desc\": \"x\"}, \"id\": 1}",
    "{\"error\": {\"class\": \"GenericError\", \"desc\": null}, \"id\": 1}",
    "{\"event\": 5, " TS "}",
    "{\"event\": null, " TS "}",
    "{\"event\": {\"name\": \"STOP\"}, " TS "}",
    "{\"event\": \"SHUTDOWN\", \"data\": [true, \"guest-shutdown\"], " TS "}",
    "{\"event\": \"SHUTDOWN\", \"data\": \"guest-shutdown\", " TS "}",
    "{\"event\": \"SHUTDOWN\", \"data\": null, " TS "}",
    "{\"event\": \"STOP\", \"event\": \"RESUME\", " TS "}",
    "{\"return\": \"a\\u0000b\", \"id\": 1}",
    "{\"return\": \"\xff\xfe\", \"id\": 1}",
};

START_TEST(test_parse_hostile_lines)
{
    const char *line = hostile[_i];
    struct qmp_msg m = {.kind = QMP_EVENT, .id = 77};
    const char *why = NULL;
    int r = qmp_parse(line, strlen(line), &m, &why);
    ck_assert_msg(r < 0, "accepted: %s", line);
    ck_assert_msg(why && *why, "rejected without a reason: %s", line);
    /* nothing handed out: the caller has nothing to free */
    ck_assert_int_eq(m.id, 77);
}
END_TEST

START_TEST(test_parse_respects_length)
{
    /* the parser reads LEN bytes, not up to a NUL: a NUL inside, or a line cut short, is refused */
    static const char with_nul[] = "{\"return\": {}, \"id\": 1}\0{\"x\": 1}";
    struct qmp_msg m;
    const char *why = NULL;
    ck_assert_int_lt(qmp_parse(with_nul, sizeof(with_nul) - 1, &m, &why), 0);
    ck_assert_ptr_nonnull(why);
    const char *whole = "{\"return\": {}, \"id\": 12}";
    why = NULL;
    ck_assert_int_lt(qmp_parse(whole, strlen(whole) - 1, &m, &why), 0);
    ck_assert_ptr_nonnull(why);
    /* a line followed by the next one in the buffer: only LEN bytes count */
    const char *two = "{\"return\": {}, \"id\": 12}\n{\"event\": \"STOP\"}";
    ck_assert_int_eq(qmp_parse(two, strlen(whole), &m, &why), 0);
    ck_assert_int_eq(m.kind, QMP_RETURN);
    ck_assert_int_eq(m.id, 12);
    json_decref(m.root);
}
END_TEST

START_TEST(test_parse_huge_number)
{
    /* a number with a thousand digits, where an id, or a value, should be */
    char line[2200];
    int n = snprintf(line, sizeof(line), "{\"return\": {}, \"id\": ");
    memset(line + n, '9', 1000);
    snprintf(line + n + 1000, sizeof(line) - (size_t)n - 1000, "}");
    struct qmp_msg m;
    const char *why = NULL;
    ck_assert_int_lt(qmp_parse(line, strlen(line), &m, &why), 0);
    ck_assert_ptr_nonnull(why);

    n = snprintf(line, sizeof(line), "{\"return\": {\"v\": ");
    memset(line + n, '9', 1000);
    snprintf(line + n + 1000, sizeof(line) - (size_t)n - 1000, "}, \"id\": 1}");
    why = NULL;
    ck_assert_int_lt(qmp_parse(line, strlen(line), &m, &why), 0);
    ck_assert_ptr_nonnull(why);
}
END_TEST

/* ---- the client against a fake QEMU ---- */

/* The QEMU end of the socketpair: records each command line it receives (parsed), sends what the
 * test tells it to, buffering what the socket does not take at once. */
struct fake {
    int fd;
    sd_event_source *io;
    char *in;
    size_t in_len;
    json_t *cmds; /* each received line, parsed; a string "<unparseable: LINE>" if not JSON */
    char *out;
    size_t out_len;
    bool rd_eof;
};

static struct {
    sd_event *e;
    struct qmp *q;
    int client_fd; /* owned by q; kept to look at what it has not read */
    struct fake f;
    int ready, events, closed, close_error;
    char *close_why;
    json_t *event_log; /* [{"name": ..., "data": ...}] */
    char order[256];   /* "e:NAME r:TAG ..." as callbacks fire */
    int after_close;   /* callbacks that fired after closed */
} T;

struct reply_rec {
    const char *tag;
    int calls;
    json_t *ret; /* deep copy */
    char *error;
};

static uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_order(const char *prefix, const char *what)
{
    size_t n = strlen(T.order);
    snprintf(T.order + n, sizeof(T.order) - n, "%s%s ", prefix, what);
}

/* Runs the loop until EXPR holds, for at most 5 s, each wait at most 50 ms. */
#define PUMP_UNTIL(expr)                                                                           \
    do {                                                                                           \
        uint64_t deadline_ = now_usec() + 5000000u;                                                \
        while (!(expr) && now_usec() < deadline_)                                                  \
            ck_assert_int_ge(sd_event_run(T.e, 50000), 0);                                         \
        ck_assert_msg((expr), "timed out waiting for %s", #expr);                                  \
    } while (0)

/* Runs every event that is ready now, without waiting. */
static void drain(void)
{
    for (int i = 0; i < 10000; i++) {
        int r = sd_event_run(T.e, 0);
        ck_assert_int_ge(r, 0);
        if (r == 0)
            return;
    }
    ck_abort_msg("the loop never went idle");
}

static void fake_update(struct fake *f)
{
    if (!f->io)
        return;
    uint32_t ev = (f->rd_eof ? 0 : EPOLLIN) | (f->out_len ? EPOLLOUT : 0);
    if (ev) {
        ck_assert_int_ge(sd_event_source_set_io_events(f->io, ev), 0);
        ck_assert_int_ge(sd_event_source_set_enabled(f->io, SD_EVENT_ON), 0);
    } else {
        ck_assert_int_ge(sd_event_source_set_enabled(f->io, SD_EVENT_OFF), 0);
    }
}

static void fake_flush(struct fake *f)
{
    while (f->out_len > 0) {
        ssize_t n = send(f->fd, f->out, f->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN)
                f->out_len = 0; /* the client is gone: drop the rest */
            break;
        }
        memmove(f->out, f->out + n, f->out_len - (size_t)n);
        f->out_len -= (size_t)n;
    }
    fake_update(f);
}

static void fake_send_n(const char *data, size_t len)
{
    struct fake *f = &T.f;
    char *out = realloc(f->out, f->out_len + len);
    ck_assert_ptr_nonnull(out);
    f->out = out;
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    fake_flush(f);
}

static void fake_send(const char *s)
{
    fake_send_n(s, strlen(s));
}

static int fake_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct fake *f = userdata;
    if (revents & EPOLLOUT)
        fake_flush(f);
    if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || f->rd_eof)
        return 0;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n <= 0) {
        f->rd_eof = true;
        fake_update(f);
        return 0;
    }
    char *in = realloc(f->in, f->in_len + (size_t)n);
    ck_assert_ptr_nonnull(in);
    f->in = in;
    memcpy(f->in + f->in_len, buf, (size_t)n);
    f->in_len += (size_t)n;
    char *nl;
    while ((nl = memchr(f->in, '\n', f->in_len))) {
        size_t len = (size_t)(nl - f->in);
        json_error_t err;
        json_t *cmd = json_loadb(f->in, len, JSON_REJECT_DUPLICATES, &err);
        if (!cmd)
            cmd = json_sprintf("<unparseable: %.*s>", (int)len, f->in);
        ck_assert_int_eq(json_array_append_new(f->cmds, cmd), 0);
        memmove(f->in, nl + 1, f->in_len - len - 1);
        f->in_len -= len + 1;
    }
    return 0;
}

static void fake_hangup(void)
{
    T.f.io = sd_event_source_disable_unref(T.f.io);
    close(T.f.fd);
    T.f.fd = -1;
}

static json_t *fake_cmd(size_t i)
{
    return json_array_get(T.f.cmds, i);
}

/* Checks command I is exactly {"execute": COMMAND, "id": N} (plus "arguments" when WITH_ARGS) and
 * returns N. */
static long long expect_cmd(size_t i, const char *command, json_t **arguments)
{
    json_t *cmd = fake_cmd(i);
    ck_assert_ptr_nonnull(cmd);
    json_error_t err;
    const char *execute = NULL;
    json_int_t id = -1;
    json_t *args = NULL;
    int r = arguments ? json_unpack_ex(cmd, &err, JSON_STRICT, "{s:s,s:I,s:o}", "execute", &execute,
                                       "id", &id, "arguments", &args)
                      : json_unpack_ex(cmd, &err, JSON_STRICT, "{s:s,s:I}", "execute", &execute,
                                       "id", &id);
    char *d = dump_sorted(cmd);
    ck_assert_msg(r == 0, "command %zu is not {execute, id%s}: %s (%s)", i,
                  arguments ? ", arguments" : "", d, err.text);
    free(d);
    ck_assert_str_eq(execute, command);
    if (arguments)
        *arguments = args;
    return id;
}

static void on_ready(struct qmp *q, void *userdata)
{
    ck_assert_ptr_eq(q, T.q);
    ck_assert_ptr_eq(userdata, &T);
    T.ready++;
    T.after_close += T.closed;
    log_order("", "ready");
}

static void on_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
    ck_assert_ptr_eq(q, T.q);
    ck_assert_ptr_eq(userdata, &T);
    T.events++;
    T.after_close += T.closed;
    ck_assert_int_eq(
        json_array_append_new(T.event_log, json_pack("{s:s,s:O*}", "name", name, "data", data)), 0);
    log_order("e:", name);
}

static void on_closed(struct qmp *q, int error, const char *why, void *userdata)
{
    ck_assert_ptr_eq(q, T.q);
    ck_assert_ptr_eq(userdata, &T);
    T.closed++;
    T.close_error = error;
    free(T.close_why);
    T.close_why = why ? strdup(why) : NULL;
    log_order("", "closed");
}

static void on_reply(struct qmp *q, json_t *ret, const char *error_desc, void *userdata)
{
    struct reply_rec *r = userdata;
    ck_assert_ptr_eq(q, T.q);
    r->calls++;
    T.after_close += T.closed;
    json_decref(r->ret);
    r->ret = ret ? json_deep_copy(ret) : NULL;
    free(r->error);
    r->error = error_desc ? strdup(error_desc) : NULL;
    log_order("r:", r->tag);
}

static void reply_rec_done(struct reply_rec *r)
{
    json_decref(r->ret);
    free(r->error);
}

static const struct qmp_handlers handlers = {
    .ready = on_ready, .event = on_event, .closed = on_closed};

static void client_setup(void)
{
    memset(&T, 0, sizeof(T));
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ck_assert_int_ge(sd_event_new(&T.e), 0);
    T.client_fd = fds[0];
    T.f = (struct fake){.fd = fds[1], .cmds = json_array()};
    T.event_log = json_array();
    ck_assert_int_ge(sd_event_add_io(T.e, &T.f.io, T.f.fd, EPOLLIN, fake_io, &T.f), 0);
    ck_assert_int_eq(qmp_new(T.e, fds[0], &handlers, &T, &T.q), 0);
    ck_assert(!qmp_is_ready(T.q));
}

static void client_teardown(void)
{
    qmp_free(T.q);
    T.f.io = sd_event_source_disable_unref(T.f.io);
    if (T.f.fd >= 0)
        close(T.f.fd);
    free(T.f.in);
    free(T.f.out);
    json_decref(T.f.cmds);
    json_decref(T.event_log);
    free(T.close_why);
    sd_event_unref(T.e);
    memset(&T, 0, sizeof(T));
}

static const char greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": "
    "\"Debian 1:7.2+dfsg-7+deb12u6\"}, \"capabilities\": [\"oob\"]}}\r\n";

/* QEMU's greeting; returns the id the client then gave qmp_capabilities. */
static long long greet(void)
{
    fake_send(greeting);
    PUMP_UNTIL(json_array_size(T.f.cmds) >= 1);
    ck_assert_int_eq(T.ready, 0); /* not before QEMU has answered */
    return expect_cmd(0, "qmp_capabilities", NULL);
}

/* The handshake as QEMU 7.2 does it; returns the id the client gave qmp_capabilities. */
static long long handshake(void)
{
    long long id = greet();
    char line[64];
    snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %lld}\r\n", id);
    fake_send(line);
    PUMP_UNTIL(T.ready == 1);
    ck_assert_int_eq(T.closed, 0);
    ck_assert(qmp_is_ready(T.q));
    ck_assert_uint_eq(json_array_size(T.f.cmds), 1);
    return id;
}

/* Sends query-status and waits for the fake to see it; returns its id. */
static long long call_query_status(struct reply_rec *rec)
{
    size_t before = json_array_size(T.f.cmds);
    ck_assert_int_eq(qmp_call(T.q, "query-status", NULL, on_reply, rec), 0);
    PUMP_UNTIL(json_array_size(T.f.cmds) == before + 1);
    return expect_cmd(before, "query-status", NULL);
}

START_TEST(test_client_handshake)
{
    handshake();
    /* nothing more is sent until asked */
    drain();
    ck_assert_uint_eq(json_array_size(T.f.cmds), 1);
    ck_assert_int_eq(T.ready, 1);
}
END_TEST

START_TEST(test_client_call_and_reply)
{
    long long cap_id = handshake();
    struct reply_rec rec = {.tag = "status"};
    long long id = call_query_status(&rec);
    ck_assert_int_ne(id, cap_id);
    ck_assert_int_eq(rec.calls, 0);
    char line[160];
    snprintf(line, sizeof(line),
             "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
             "\"id\": %lld}\r\n",
             id);
    fake_send(line);
    PUMP_UNTIL(rec.calls == 1);
    ck_assert_ptr_null(rec.error);
    ck_assert_ptr_nonnull(rec.ret);
    ck_assert_str_eq(json_string_value(json_object_get(rec.ret, "status")), "running");
    ck_assert(json_is_true(json_object_get(rec.ret, "running")));
    ck_assert_int_eq(T.closed, 0);
    ck_assert(qmp_is_ready(T.q));
    drain();
    ck_assert_int_eq(rec.calls, 1); /* once */
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_arguments_and_error_reply)
{
    handshake();
    struct reply_rec rec = {.tag = "hmp"};
    json_t *args = json_pack("{s:s}", "command-line", "info version");
    ck_assert_int_eq(qmp_call(T.q, "human-monitor-command", args, on_reply, &rec), 0);
    PUMP_UNTIL(json_array_size(T.f.cmds) == 2);
    json_t *got = NULL;
    long long id = expect_cmd(1, "human-monitor-command", &got);
    ck_assert_str_eq(json_string_value(json_object_get(got, "command-line")), "info version");
    ck_assert_uint_eq(json_object_size(got), 1);

    char line[200];
    snprintf(line, sizeof(line),
             "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter "
             "'command-line' is missing\"}}\n",
             id);
    fake_send(line);
    PUMP_UNTIL(rec.calls == 1);
    ck_assert_ptr_null(rec.ret);
    ck_assert_str_eq(rec.error, "Parameter 'command-line' is missing");
    /* an error reply is an answer, not a broken connection */
    ck_assert_int_eq(T.closed, 0);
    ck_assert(qmp_is_ready(T.q));

    /* and a call without a reply callback still gets an id and its reply is accepted */
    ck_assert_int_eq(qmp_call(T.q, "cont", NULL, NULL, NULL), 0);
    PUMP_UNTIL(json_array_size(T.f.cmds) == 3);
    id = expect_cmd(2, "cont", NULL);
    snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %lld}\n", id);
    fake_send(line);
    drain();
    ck_assert_int_eq(T.closed, 0);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_events)
{
    handshake();
    fake_send("{" TS ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
              "\"guest-shutdown\"}}\r\n");
    PUMP_UNTIL(T.events == 1);
    json_t *ev = json_array_get(T.event_log, 0);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "name")), "SHUTDOWN");
    json_t *data = json_object_get(ev, "data");
    ck_assert(json_is_true(json_object_get(data, "guest")));
    ck_assert_str_eq(json_string_value(json_object_get(data, "reason")), "guest-shutdown");

    fake_send("{" TS ", \"event\": \"STOP\"}\r\n");
    PUMP_UNTIL(T.events == 2);
    ev = json_array_get(T.event_log, 1);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "name")), "STOP");
    ck_assert_ptr_null(json_object_get(ev, "data"));
    ck_assert_int_eq(T.closed, 0);
}
END_TEST

START_TEST(test_client_event_before_handshake_done)
{
    /* QEMU may emit an event between the greeting and the capabilities reply */
    long long id = greet();
    char line[200];
    snprintf(line, sizeof(line),
             "{" TS ", \"event\": \"RESUME\"}\n{\"return\": {}, \"id\": %lld}\n", id);
    fake_send(line);
    PUMP_UNTIL(T.ready == 1);
    ck_assert_int_eq(T.events, 1);
    ck_assert_str_eq(T.order, "e:RESUME ready ");
}
END_TEST

START_TEST(test_client_split_reply)
{
    handshake();
    struct reply_rec rec = {.tag = "status"};
    long long id = call_query_status(&rec);
    char line[160];
    int n =
        snprintf(line, sizeof(line),
                 "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %lld}\n", id);
    /* one byte, then a cut inside a string, then a cut just before the newline, then the newline */
    size_t cuts[] = {0, 1, 20, (size_t)n - 1, (size_t)n};
    for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++) {
        fake_send_n(line + cuts[i], cuts[i + 1] - cuts[i]);
        drain();
        int unread = -1;
        ck_assert_int_eq(ioctl(T.client_fd, FIONREAD, &unread), 0);
        ck_assert_int_eq(unread, 0); /* the client took this piece on its own */
        if (i + 2 < sizeof(cuts) / sizeof(cuts[0]))
            ck_assert_int_eq(rec.calls, 0);
    }
    PUMP_UNTIL(rec.calls == 1);
    ck_assert_str_eq(json_string_value(json_object_get(rec.ret, "status")), "running");
    ck_assert_int_eq(T.closed, 0);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_split_greeting_byte_by_byte)
{
    for (size_t i = 0; greeting[i]; i++) {
        fake_send_n(greeting + i, 1);
        drain();
    }
    PUMP_UNTIL(json_array_size(T.f.cmds) == 1);
    expect_cmd(0, "qmp_capabilities", NULL);
    ck_assert_int_eq(T.closed, 0);
}
END_TEST

START_TEST(test_client_many_in_one_write)
{
    handshake();
    struct reply_rec a = {.tag = "a"}, b = {.tag = "b"};
    long long ida = call_query_status(&a);
    long long idb = call_query_status(&b);
    ck_assert_int_ne(ida, idb);
    /* replies out of order, events around them, blank lines between: all in one write */
    char buf[600];
    snprintf(buf, sizeof(buf),
             "{" TS ", \"event\": \"STOP\"}\r\n"
             "{\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": %lld}\n"
             "\n"
             "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %lld}\r\n"
             "{" TS ", \"event\": \"RESUME\"}\n",
             idb, ida);
    T.order[0] = '\0';
    fake_send(buf);
    PUMP_UNTIL(a.calls == 1 && b.calls == 1 && T.events == 2);
    ck_assert_str_eq(T.order, "e:STOP r:b r:a e:RESUME ");
    ck_assert_str_eq(json_string_value(json_object_get(a.ret, "status")), "running");
    ck_assert_str_eq(json_string_value(json_object_get(b.ret, "status")), "paused");
    ck_assert_int_eq(T.closed, 0);
    reply_rec_done(&a);
    reply_rec_done(&b);
}
END_TEST

START_TEST(test_client_large_reply)
{
    /* a reply of several hundred KiB (query-qmp-schema is this big) arrives over many reads */
    handshake();
    struct reply_rec rec = {.tag = "schema"};
    long long id = call_query_status(&rec);
    size_t big = 600 * 1024;
    char *line = malloc(big + 100);
    ck_assert_ptr_nonnull(line);
    int n = snprintf(line, 100, "{\"id\": %lld, \"return\": \"", id);
    memset(line + n, 'a', big);
    strcpy(line + n + big, "\"}\n");
    fake_send(line);
    free(line);
    PUMP_UNTIL(rec.calls == 1);
    ck_assert_uint_eq(json_string_length(rec.ret), big);
    ck_assert_int_eq(T.closed, 0);
    reply_rec_done(&rec);
}
END_TEST

/* Lines that must drop the connection once the client is ready. */
static const char *const fatal_lines[] = {
    "{\"return\": {}, \"id\": 999}\n",                      /* a reply to nothing we sent */
    "{\"return\": {\"status\": \"running\"}}\n",            /* a reply without an id */
    "{\"return\": {}, \"id\": \n",                          /* malformed */
    "this is not QMP\n",                                    /* not JSON */
    "[\"return\", {}]\n",                                   /* not an object */
    "{\"event\": 7, " TS "}\n",                             /* event name not a string */
    "{\"event\": \"STOP\", \"data\": [], " TS "}\n",        /* event data not an object */
    "{\"return\": {}, \"return\": {}, \"id\": 1}\n",        /* duplicate keys */
    "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n", /* a second greeting */
};

START_TEST(test_client_closes_on_bad_line)
{
    handshake();
    struct reply_rec rec = {.tag = "pending"};
    call_query_status(&rec);
    fake_send(fatal_lines[_i]);
    /* anything after the bad line must not be delivered */
    fake_send("{" TS ", \"event\": \"STOP\"}\n");
    PUMP_UNTIL(T.closed == 1);
    ck_assert_msg(T.close_error < 0, "%s: closed with error %d", fatal_lines[_i], T.close_error);
    ck_assert_msg(T.close_why && *T.close_why, "%s: closed without a reason", fatal_lines[_i]);
    ck_assert(!qmp_is_ready(T.q));
    drain();
    ck_assert_int_eq(T.closed, 1);
    ck_assert_int_eq(T.events, 0);
    ck_assert_int_eq(T.after_close, 0);
    ck_assert_int_eq(rec.calls, 0);
    /* a closed client refuses new calls, and frees what it was given */
    json_t *args = json_pack("{s:s}", "command-line", "info status");
    ck_assert_int_eq(qmp_call(T.q, "human-monitor-command", args, on_reply, &rec), -ENOTCONN);
    /* and the peer hanging up afterwards does not report a second close */
    fake_hangup();
    drain();
    ck_assert_int_eq(T.closed, 1);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_line_too_long)
{
    /* a peer that never ends its line: the client stops buffering past QMP_MAX_LINE */
    handshake();
    size_t len = QMP_MAX_LINE + 4096;
    char *junk = malloc(len);
    ck_assert_ptr_nonnull(junk);
    memcpy(junk, "{\"return\": \"", 12);
    memset(junk + 12, 'a', len - 12);
    fake_send_n(junk, len);
    free(junk);
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_lt(T.close_error, 0);
    ck_assert_ptr_nonnull(T.close_why);
    ck_assert_str_ne(T.close_why, "");
    drain();
    ck_assert_int_eq(T.closed, 1);
}
END_TEST

START_TEST(test_client_line_too_long_with_newline)
{
    /* a complete, valid reply that is longer than QMP_MAX_LINE is refused too */
    handshake();
    struct reply_rec rec = {.tag = "big"};
    long long id = call_query_status(&rec);
    size_t big = QMP_MAX_LINE;
    char *line = malloc(big + 100);
    ck_assert_ptr_nonnull(line);
    int n = snprintf(line, 100, "{\"id\": %lld, \"return\": \"", id);
    memset(line + n, 'a', big);
    strcpy(line + n + big, "\"}\n");
    fake_send(line);
    free(line);
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_lt(T.close_error, 0);
    ck_assert_ptr_nonnull(T.close_why);
    ck_assert_int_eq(rec.calls, 0);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_line_under_limit_then_more)
{
    /* The limit is per line: a reply just under QMP_MAX_LINE followed, in the same write, by an
     * event is two good lines, whatever way the reads cut them. */
    handshake();
    struct reply_rec rec = {.tag = "big"};
    long long id = call_query_status(&rec);
    const size_t total = QMP_MAX_LINE - 64; /* the whole line, newline included */
    const char *ev = "{" TS ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
                     "\"guest-shutdown\"}}\n";
    char *buf = malloc(total + strlen(ev) + 1);
    ck_assert_ptr_nonnull(buf);
    int n = snprintf(buf, 100, "{\"id\": %lld, \"return\": \"", id);
    memset(buf + n, 'a', total - (size_t)n - 3);
    memcpy(buf + total - 3, "\"}\n", 3);
    strcpy(buf + total, ev);
    fake_send(buf);
    free(buf);
    PUMP_UNTIL(T.closed || (rec.calls == 1 && T.events == 1));
    ck_assert_msg(T.closed == 0, "closed: %s", T.close_why);
    ck_assert_uint_eq(json_string_length(rec.ret), total - (size_t)n - 3);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_hangup)
{
    handshake();
    struct reply_rec rec = {.tag = "pending"};
    call_query_status(&rec);
    fake_hangup();
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_eq(T.close_error, 0);
    ck_assert_ptr_nonnull(T.close_why);
    ck_assert(!qmp_is_ready(T.q));
    drain();
    ck_assert_int_eq(T.closed, 1);
    ck_assert_int_eq(rec.calls, 0);
    reply_rec_done(&rec);
}
END_TEST

START_TEST(test_client_hangup_before_greeting)
{
    fake_hangup();
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_eq(T.close_error, 0);
    ck_assert_int_eq(T.ready, 0);
}
END_TEST

START_TEST(test_client_capabilities_refused)
{
    long long id = greet();
    char line[200];
    snprintf(line, sizeof(line),
             "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities "
             "negotiation is already complete, command ignored\"}}\n",
             id);
    fake_send(line);
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_eq(T.ready, 0);
    ck_assert_int_lt(T.close_error, 0);
    ck_assert_ptr_nonnull(T.close_why);
    ck_assert(!qmp_is_ready(T.q));
}
END_TEST

START_TEST(test_client_send_failure_closes)
{
    /* QEMU stops reading right after its greeting: the client cannot send qmp_capabilities and
     * must say so (closed, with an error), not wait for a reply that cannot come. */
    fake_send(greeting);
    ck_assert_int_eq(shutdown(T.f.fd, SHUT_RD), 0);
    PUMP_UNTIL(T.closed == 1);
    ck_assert_int_lt(T.close_error, 0);
    ck_assert_int_eq(T.ready, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qmp");
    TCase *tp = tcase_create("parse");
    tcase_add_loop_test(tp, test_parse_real_lines, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_loop_test(tp, test_parse_hostile_lines, 0, sizeof(hostile) / sizeof(hostile[0]));
    tcase_add_test(tp, test_parse_respects_length);
    tcase_add_test(tp, test_parse_huge_number);
    suite_add_tcase(s, tp);

    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, client_setup, client_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_client_handshake);
    tcase_add_test(tc, test_client_call_and_reply);
    tcase_add_test(tc, test_client_arguments_and_error_reply);
    tcase_add_test(tc, test_client_events);
    tcase_add_test(tc, test_client_event_before_handshake_done);
    tcase_add_test(tc, test_client_split_reply);
    tcase_add_test(tc, test_client_split_greeting_byte_by_byte);
    tcase_add_test(tc, test_client_many_in_one_write);
    tcase_add_test(tc, test_client_large_reply);
    tcase_add_loop_test(tc, test_client_closes_on_bad_line, 0,
                        sizeof(fatal_lines) / sizeof(fatal_lines[0]));
    tcase_add_test(tc, test_client_line_too_long);
    tcase_add_test(tc, test_client_line_too_long_with_newline);
    tcase_add_test(tc, test_client_line_under_limit_then_more);
    tcase_add_test(tc, test_client_hangup);
    tcase_add_test(tc, test_client_hangup_before_greeting);
    tcase_add_test(tc, test_client_capabilities_refused);
    tcase_add_test(tc, test_client_send_failure_closes);
    suite_add_tcase(s, tc);

    return run_suite(s);
}
