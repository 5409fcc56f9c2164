/* qmp: a client for QEMU's machine protocol on one connected socket, driven by sd-event. It does
 * the capabilities handshake, sends commands with numeric ids, and hands replies and events to
 * callbacks. Every line from QEMU is validated (bounded size, JSON object of a known shape); a
 * malformed one closes the connection with a reason, never a crash. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

enum { QMP_MAX_LINE = 1 << 20 };

enum qmp_kind { QMP_GREETING, QMP_RETURN, QMP_ERROR, QMP_EVENT };

struct qmp_msg {
    enum qmp_kind kind;
    long long id;      /* RETURN/ERROR: our id, or -1 if absent */
    const char *event; /* EVENT: name */
    const char *error_class, *error_desc;
    json_t *data; /* RETURN: the return value; EVENT: data or NULL (borrowed from root) */
    json_t *root; /* owned: json_decref when done */
};

/* Parses one QMP line. On failure *why names the problem (static string). */
int qmp_parse(const char *line, size_t len, struct qmp_msg *ret, const char **why);

struct qmp;
struct qmp_handlers {
    void (*ready)(struct qmp *q, void *userdata); /* handshake done */
    void (*event)(struct qmp *q, const char *name, json_t *data, void *userdata);
    void (*closed)(struct qmp *q, int error, const char *why, void *userdata); /* once */
};
/* RET is the return value, or NULL with ERROR_DESC set. Borrowed for the call's duration. */
typedef void (*qmp_reply_fn)(struct qmp *q, json_t *ret, const char *error_desc, void *userdata);

/* Takes ownership of FD (connected, non-blocking). Never call qmp_free() from inside one of the
 * callbacks: free it from another event. */
int qmp_new(sd_event *e, int fd, const struct qmp_handlers *h, void *userdata, struct qmp **ret);
void qmp_free(struct qmp *q);
/* Sends COMMAND (with ARGS, stolen, may be NULL); REPLY may be NULL. */
int qmp_call(struct qmp *q, const char *command, json_t *args, qmp_reply_fn reply, void *userdata);
bool qmp_is_ready(const struct qmp *q);
