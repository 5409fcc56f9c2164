/* error: the two idioms of "return -errno, and say why in one line": the negative errno of the
 * last failing libc call, and an allocated one-line reason set beside a returned error. Header
 * only, no state. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

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
