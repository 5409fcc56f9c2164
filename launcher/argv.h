/* struct argv: a growable, NULL-terminated string vector with a sticky error, used to build the
 * QEMU command line. After an allocation failure every append is a no-op and argv_error() reports
 * -ENOMEM once at the end. Also records which fds the child must inherit, and at which numbers. */
#pragma once

#include <stddef.h>

struct argv_fd {
    int parent_fd;    /* fd in ocvm, or -1 while only planned (ocvm cmdline) */
    int child_fd;     /* the number the argv refers to */
    const char *role; /* static string, e.g. "qmp", "tap0" */
};

struct argv {
    char **v;
    size_t n, cap;
    struct argv_fd *fds;
    size_t n_fds, cap_fds;
    int error; /* 0 or first -errno */
};

void argv_init(struct argv *a);
void argv_done(struct argv *a);
void argv_add(struct argv *a, const char *s);
void argv_addf(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reserves the next child fd number (3, 4, ...) for ROLE and returns it (or -1 after an error). */
int argv_add_fd(struct argv *a, const char *role, int parent_fd);
int argv_error(const struct argv *a);
/* Sets the sticky error (e.g. a value rejected by qemu_opt_escape). */
void argv_fail(struct argv *a, int err);
