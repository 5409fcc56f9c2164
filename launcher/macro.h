/* Small helpers shared by every module: cleanup attributes for fds, heap memory and FILE
 * handles, ownership hand-off (TAKE_FD/TAKE_PTR), and array sizing. Header only; no state. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static inline void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a cleanup variable: returns the value and disarms the cleanup. */
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _fd_ = (fd);                                                                           \
        (fd) = -1;                                                                                 \
        _fd_;                                                                                      \
    })
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p_ = (p);                                                                   \
        (p) = NULL;                                                                                \
        _p_;                                                                                       \
    })

/* Negative errno of the last failing libc call, never 0. */
static inline int negative_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

/* Sets *error to one formatted line (NULL if that cannot be allocated) and returns R: for the
 * "return -errno, and say why in one line" style of the effect layers. */
__attribute__((format(printf, 3, 4))) static inline int error_setf(char **error, int r,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(error, fmt, ap) < 0)
        *error = NULL;
    va_end(ap);
    return r;
}

/* The decimal number that fills [S, S+LEN) exactly: digits only (no sign or space), at most ten
 * of them, at most MAX. -EINVAL for anything else, -ERANGE above MAX. */
static inline int decimal_u32(const char *s, size_t len, uint32_t max, uint32_t *ret)
{
    if (len == 0 || len > 10)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return -ERANGE;
    *ret = (uint32_t)v;
    return 0;
}

/* Microseconds on CLOCK. */
static inline uint64_t clock_usec(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
