/* parse: numbers read from outside (config values, CLI arguments, endpoint strings, the hybrid
 * socket's CONNECT line), converted and range-checked at the edge. Header only, no state. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>

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

/* An inherited file descriptor named on a command line: decimal, no leading zero, 3 or more
 * (0-2 are stdio). */
static inline int parse_inherited_fd(const char *s, size_t len, int *ret)
{
    uint32_t v;
    if (len == 0 || (s[0] == '0' && len > 1) || decimal_u32(s, len, INT32_MAX, &v) < 0 || v < 3)
        return -EINVAL;
    *ret = (int)v;
    return 0;
}

/* A VM name as the config allows it, as a child process is handed it (for its log lines): 1-64
 * of [A-Za-z0-9_.-]. */
static inline bool is_vm_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}
