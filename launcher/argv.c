#include "launcher/argv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARGV_FIRST_CHILD_FD = 3 };

void argv_init(struct argv *a)
{
    *a = (struct argv){0};
}

void argv_done(struct argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->fds);
    *a = (struct argv){0};
}

void argv_fail(struct argv *a, int err)
{
    if (a->error == 0)
        a->error = err;
}

int argv_error(const struct argv *a)
{
    return a->error;
}

static void argv_push(struct argv *a, char *s)
{
    if (a->error || !s) {
        argv_fail(a, -ENOMEM);
        free(s);
        return;
    }
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        char **v = realloc(a->v, cap * sizeof(*v));
        if (!v) {
            free(s);
            argv_fail(a, -ENOMEM);
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

void argv_add(struct argv *a, const char *s)
{
    if (a->error)
        return;
    argv_push(a, strdup(s));
}

void argv_addf(struct argv *a, const char *fmt, ...)
{
    if (a->error)
        return;
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    argv_push(a, r < 0 ? NULL : s);
}

int argv_add_fd(struct argv *a, const char *role, int parent_fd)
{
    if (a->error)
        return -1;
    if (a->n_fds == a->cap_fds) {
        size_t cap = a->cap_fds ? a->cap_fds * 2 : 8;
        struct argv_fd *f = realloc(a->fds, cap * sizeof(*f));
        if (!f) {
            argv_fail(a, -ENOMEM);
            return -1;
        }
        a->fds = f;
        a->cap_fds = cap;
    }
    int child = ARGV_FIRST_CHILD_FD + (int)a->n_fds;
    a->fds[a->n_fds++] = (struct argv_fd){.parent_fd = parent_fd, .child_fd = child, .role = role};
    return child;
}
