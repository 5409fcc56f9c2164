#include "launcher/state.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>

/* Writes all of BUF, or says why not (a short write is an error, not a success). */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? negative_errno() : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Flushes the directory holding PATH, so that a rename in it survives a crash. */
static int fsync_parent(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    _cleanup_close_ int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return negative_errno();
    return 0;
}

/* The length of the valid UTF-8 sequence at P (at most N bytes), or 0 when there is none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80             ? 1
                 : (p[0] & 0xe0) == 0xc0 ? 2
                 : (p[0] & 0xf0) == 0xe0 ? 3
                 : (p[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && p[0] < 0xc2) || (len == 4 && p[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((len == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (len == 3 && p[0] == 0xed && p[1] > 0x9f) ||
        (len == 4 && p[0] == 0xf0 && p[1] < 0x90) || (len == 4 && p[0] == 0xf4 && p[1] > 0x8f))
        return 0; /* overlong, a surrogate, beyond U+10FFFF */
    return len;
}

/* TEXT as a JSON string that jansson takes whatever TEXT holds (a QEMU error line may be cut
 * inside a character, or not be UTF-8 at all): control characters and bytes outside a valid
 * UTF-8 sequence become '?'. */
static json_t *text_string(const char *text)
{
    size_t n = strlen(text);
    _cleanup_free_ char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    const unsigned char *p = (const unsigned char *)text;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(p + i, n - i);
        if (len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            copy[k++] = '?';
            i++;
            continue;
        }
        memcpy(copy + k, p + i, len);
        k += len;
        i += len;
    }
    return json_stringn(copy, k);
}

static json_t *child_json(const struct vm_child_state *c)
{
    return json_pack("{s:i,s:I,s:o}", "pid", (int)c->pid, "restarts", (json_int_t)c->restarts,
                     "last_exit", text_string(c->last_exit));
}

int state_write(const char *path, const struct vm_state *s)
{
    json_t *stages = json_array();
    for (unsigned i = 0; stages && i < s->n_stages; i++)
        json_array_append_new(stages, json_pack("{s:o,s:I}", "name", text_string(s->stages[i].name),
                                                "ms", (json_int_t)s->stages[i].ms));
    json_t *relay = json_pack(
        "{s:I,s:I,s:I,s:I,s:I}", "open", (json_int_t)s->relay.open, "accepted",
        (json_int_t)s->relay.accepted, "bytes_to_guest", (json_int_t)s->relay.bytes_to_guest,
        "bytes_to_host", (json_int_t)s->relay.bytes_to_host, "errors", (json_int_t)s->relay.errors);
    json_t *unsafe = json_array();
    for (unsigned i = 0; unsafe && i < s->n_unsafe; i++)
        json_array_append_new(unsafe, text_string(s->unsafe[i]));
    json_t *backend = child_json(&s->vsock_backend), *host_relay = child_json(&s->host_relay);
    json_t *health = json_pack("{s:I,s:o}", "failures", (json_int_t)s->health.failures,
                               "last_error", text_string(s->health.last_error));
    json_t *o = json_pack(
        "{s:s,s:i,s:i,s:I,s:I,s:I,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "phase", s->phase,
        "supervisor_pid", (int)s->supervisor_pid, "qemu_pid", (int)s->qemu_pid, "started_at_us",
        (json_int_t)s->started_at_us, "qemu_started_at_us", (json_int_t)s->qemu_started_at_us,
        "restarts", (json_int_t)s->restarts, "accel", s->accel, "vsock", s->vsock, "stages", stages,
        "last_exit", text_string(s->last_exit), "relay", relay, "unsafe", unsafe, "vsock_backend",
        backend, "host_relay", host_relay, "health", health);
    _cleanup_free_ char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL, *tmp = NULL;
    json_decref(o);
    if (!text || asprintf(&tmp, "%s.tmp", path) < 0)
        return -ENOMEM;
    /* 0600: the runtime directory is the owner's, and so is each file in it. Written beside,
     * flushed, renamed over, and the directory flushed: a crash leaves the old file or the new
     * one, whole, never a part. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r = fd < 0 ? negative_errno() : 0;
    if (r == 0)
        r = write_all(fd, text, strlen(text));
    if (r == 0 && fsync(fd) < 0)
        r = negative_errno();
    if (fd >= 0 && close(fd) < 0 && r == 0)
        r = negative_errno();
    if (r == 0 && rename(tmp, path) < 0)
        r = negative_errno();
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_parent(path);
}

/* Copies SRC, cut to fit DST at a character boundary: jansson refuses a string that ends in a
 * split UTF-8 sequence, so state_write would fail on what was read. */
static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
    size_t n = strlen(dst);
    if (!src || ((unsigned char)src[n] & 0xc0) != 0x80)
        return; /* not cut, or cut between two characters */
    while (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0x80)
        n--;
    dst[n > 0 ? n - 1 : 0] = '\0'; /* the partial character's lead byte goes too */
}

int state_read(const char *path, struct vm_state *ret)
{
    json_error_t err;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &err), *stages = NULL, *unsafe = NULL,
           *health = NULL, *host_relay = NULL;
    json_int_t rl[5], bpid, brestarts, hfailures = 0;
    const char *blast, *hlast = "";
    if (!o)
        return access(path, F_OK) < 0 ? -ENOENT : -EINVAL;
    struct vm_state s = {0};
    const char *phase, *accel, *vsock, *last_exit;
    json_int_t spid, qpid, restarts; /* "I" and a range check: "i" would silently truncate */
    json_int_t started, qstarted;
    int r = json_unpack_ex(
        o, &err, JSON_STRICT,
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:s,s:o,s:s,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:{s:I,s:I,s:s},"
        "s?o,s?o}",
        "phase", &phase, "supervisor_pid", &spid, "qemu_pid", &qpid, "started_at_us", &started,
        "qemu_started_at_us", &qstarted, "restarts", &restarts, "accel", &accel, "vsock", &vsock,
        "stages", &stages, "last_exit", &last_exit, "relay", "open", &rl[0], "accepted", &rl[1],
        "bytes_to_guest", &rl[2], "bytes_to_host", &rl[3], "errors", &rl[4], "unsafe", &unsafe,
        "vsock_backend", "pid", &bpid, "restarts", &brestarts, "last_exit", &blast, "host_relay",
        &host_relay, "health", &health);
    /* "health" came with the probes after ready: a supervisor started before has none */
    if (r == 0 && health)
        r = json_unpack_ex(health, &err, JSON_STRICT, "{s:I,s:s}", "failures", &hfailures,
                           "last_error", &hlast);
    /* "host_relay" came with the relay's own process: a supervisor started before has none */
    json_int_t hrpid = 0, hrrestarts = 0;
    const char *hrlast = "";
    if (r == 0 && host_relay)
        r = json_unpack_ex(host_relay, &err, JSON_STRICT, "{s:I,s:I,s:s}", "pid", &hrpid,
                           "restarts", &hrrestarts, "last_exit", &hrlast);
    if (r < 0 || !json_is_array(stages) || !json_is_array(unsafe) ||
        json_array_size(unsafe) > STATE_MAX_UNSAFE || spid < 0 || spid > INT32_MAX || qpid < 0 ||
        qpid > INT32_MAX || restarts < 0 || restarts > UINT32_MAX || started < 0 || qstarted < 0 ||
        bpid < 0 || bpid > INT32_MAX || brestarts < 0 || brestarts > UINT32_MAX || hrpid < 0 ||
        hrpid > INT32_MAX || hrrestarts < 0 || hrrestarts > UINT32_MAX || hfailures < 0 ||
        hfailures > UINT32_MAX) {
        json_decref(o);
        return -EINVAL;
    }
    for (int i = 0; i < 5; i++)
        if (rl[i] < 0) {
            json_decref(o);
            return -EINVAL;
        }
    s.relay = (struct vm_relay_figures){(uint64_t)rl[0], (uint64_t)rl[1], (uint64_t)rl[2],
                                        (uint64_t)rl[3], (uint64_t)rl[4]};
    copy_str(s.phase, sizeof(s.phase), phase);
    copy_str(s.accel, sizeof(s.accel), accel);
    copy_str(s.vsock, sizeof(s.vsock), vsock);
    copy_str(s.last_exit, sizeof(s.last_exit), last_exit);
    s.vsock_backend.pid = (pid_t)bpid;
    s.vsock_backend.restarts = (unsigned)brestarts;
    copy_str(s.vsock_backend.last_exit, sizeof(s.vsock_backend.last_exit), blast);
    s.host_relay.pid = (pid_t)hrpid;
    s.host_relay.restarts = (unsigned)hrrestarts;
    copy_str(s.host_relay.last_exit, sizeof(s.host_relay.last_exit), hrlast);
    s.health.failures = (unsigned)hfailures;
    copy_str(s.health.last_error, sizeof(s.health.last_error), hlast);
    s.supervisor_pid = (pid_t)spid;
    s.qemu_pid = (pid_t)qpid;
    s.started_at_us = (uint64_t)started;
    s.qemu_started_at_us = (uint64_t)qstarted;
    s.restarts = (unsigned)restarts;
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st)
    {
        const char *name;
        json_int_t ms;
        if (i >= STATE_MAX_STAGES ||
            json_unpack_ex(st, &err, JSON_STRICT, "{s:s,s:I}", "name", &name, "ms", &ms) < 0 ||
            ms < 0) {
            json_decref(o);
            return -EINVAL;
        }
        copy_str(s.stages[i].name, sizeof(s.stages[i].name), name);
        s.stages[i].ms = (uint64_t)ms;
        s.n_stages = (unsigned)i + 1;
    }
    json_array_foreach(unsafe, i, st)
    {
        if (!json_is_string(st)) {
            json_decref(o);
            return -EINVAL;
        }
        copy_str(s.unsafe[i], sizeof(s.unsafe[i]), json_string_value(st));
        s.n_unsafe = (unsigned)i + 1;
    }
    json_decref(o);
    *ret = s;
    return 0;
}
