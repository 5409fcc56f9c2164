#include "common/json_pos.h"

#include <errno.h>
#include <string.h>

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Consumes a string at s->p; if KEY is given, sets *equal to whether its decoded text equals KEY
 * (escapes \uXXXX of the basic plane are decoded to UTF-8; pairs compare unequal, harmlessly). */
static int scan_string(struct scan *s, const char *key, bool *equal)
{
    if (s->p >= s->end || *s->p != '"')
        return -EINVAL;
    s->p++;
    const char *k = key;
    bool eq = key != NULL;
    while (s->p < s->end && *s->p != '"') {
        char buf[4];
        size_t n = 1;
        if (*s->p == '\\') {
            if (s->end - s->p < 2)
                return -EINVAL;
            char e = s->p[1];
            s->p += 2;
            switch (e) {
            case 'n':
                buf[0] = '\n';
                break;
            case 't':
                buf[0] = '\t';
                break;
            case 'r':
                buf[0] = '\r';
                break;
            case 'b':
                buf[0] = '\b';
                break;
            case 'f':
                buf[0] = '\f';
                break;
            case 'u': {
                if (s->end - s->p < 4)
                    return -EINVAL;
                unsigned cp = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(s->p[i]);
                    if (h < 0)
                        return -EINVAL;
                    cp = cp << 4 | (unsigned)h;
                }
                s->p += 4;
                if (cp < 0x80) {
                    buf[0] = (char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (char)(0xc0 | cp >> 6);
                    buf[1] = (char)(0x80 | (cp & 0x3f));
                    n = 2;
                } else {
                    buf[0] = (char)(0xe0 | cp >> 12);
                    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[2] = (char)(0x80 | (cp & 0x3f));
                    n = 3;
                }
                break;
            }
            default:
                buf[0] = e;
                break;
            }
        } else {
            buf[0] = *s->p++;
        }
        if (eq) {
            if (strncmp(k, buf, n) != 0 || strlen(k) < n)
                eq = false;
            else
                k += n;
        }
    }
    if (s->p >= s->end)
        return -EINVAL;
    s->p++; /* closing quote */
    if (equal)
        *equal = eq && *k == '\0';
    return 0;
}

static int skip_value(struct scan *s, unsigned depth)
{
    if (depth > 256)
        return -ELOOP;
    skip_ws(s);
    if (s->p >= s->end)
        return -EINVAL;
    char c = *s->p;
    if (c == '"')
        return scan_string(s, NULL, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            int r;
            if (c == '{') {
                skip_ws(s);
                r = scan_string(s, NULL, NULL);
                if (r < 0)
                    return r;
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return -EINVAL;
                s->p++;
            }
            r = skip_value(s, depth + 1);
            if (r < 0)
                return r;
            skip_ws(s);
            if (s->p >= s->end)
                return -EINVAL;
            if (*s->p == close) {
                s->p++;
                return 0;
            }
            if (*s->p != ',')
                return -EINVAL;
            s->p++;
        }
    }
    /* number or literal */
    while (s->p < s->end && !strchr(" \t\r\n,]}", *s->p))
        s->p++;
    return 0;
}

/* With s->p at a value, moves s->p to the value (or key) selected by STEP. */
static int descend(struct scan *s, const struct json_step *step, bool at_key)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -ENOENT;
    if (step->key) {
        if (*s->p != '{')
            return -ENOENT;
        s->p++;
        for (;;) {
            skip_ws(s);
            if (s->p >= s->end || *s->p == '}')
                return -ENOENT;
            const char *key_at = s->p;
            bool eq = false;
            int r = scan_string(s, step->key, &eq);
            if (r < 0)
                return r;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -EINVAL;
            s->p++;
            if (eq) {
                if (at_key)
                    s->p = key_at;
                else
                    skip_ws(s);
                return 0;
            }
            r = skip_value(s, 0);
            if (r < 0)
                return r;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',')
                s->p++;
        }
    }
    if (*s->p != '[')
        return -ENOENT;
    s->p++;
    for (size_t i = 0;; i++) {
        skip_ws(s);
        if (s->p >= s->end || *s->p == ']')
            return -ENOENT;
        if (i == step->index)
            return 0;
        int r = skip_value(s, 0);
        if (r < 0)
            return r;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',')
            s->p++;
    }
}

int json_pos_find(const char *text, size_t len, const struct json_step *path, size_t n_steps,
                  bool at_key, struct json_position *ret)
{
    struct scan s = {.p = text, .end = text + len};
    for (size_t i = 0; i < n_steps; i++) {
        int r = descend(&s, &path[i], at_key && i + 1 == n_steps);
        if (r < 0)
            return r;
    }
    skip_ws(&s);
    unsigned line = 1, col = 1;
    for (const char *q = text; q < s.p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xc0) != 0x80) {
            col++;
        }
    }
    *ret = (struct json_position){.line = line, .column = col};
    return 0;
}
