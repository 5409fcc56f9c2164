#include "common/json_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void jr_push_key(struct json_reader *l, const char *key)
{
    if (l->depth < JR_MAX_DEPTH)
        l->steps[l->depth] = (struct json_step){.key = key};
    l->depth++;
}

void jr_push_index(struct json_reader *l, size_t i)
{
    if (l->depth < JR_MAX_DEPTH)
        l->steps[l->depth] = (struct json_step){.index = i};
    l->depth++;
}

void jr_pop(struct json_reader *l)
{
    l->depth--;
}

/* Records the first error, positioned at the current path, and returns -EINVAL. */
int jr_fail(struct json_reader *l, bool at_key, const char *fmt, ...)
{
    if (l->error)
        return -EINVAL;
    size_t depth = l->depth < JR_MAX_DEPTH ? l->depth : JR_MAX_DEPTH;
    struct json_position pos = {1, 1};
    /* fall back to the nearest ancestor that exists in the text (e.g. for a missing key) */
    for (size_t d = depth + 1; d-- > 0;)
        if (json_pos_find(l->text, l->len, l->steps, d, at_key && d == depth, &pos) == 0)
            break;

    char name[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < depth && off < sizeof(name); i++) {
        int r =
            l->steps[i].key
                ? snprintf(name + off, sizeof(name) - off, "%s%s", i ? "." : "", l->steps[i].key)
                : snprintf(name + off, sizeof(name) - off, "[%zu]", l->steps[i].index);
        if (r < 0)
            break;
        off += (size_t)r;
    }
    va_list ap;
    _cleanup_free_ char *msg = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    if (asprintf(&l->error, "%s:%u:%u: %s%s%s", l->path, pos.line, pos.column, name,
                 *name ? ": " : "", msg) < 0) {
        l->error = NULL;
        return -EINVAL;
    }
    /* keys and values from the file may hold any character ("a\nb" is a valid key): the message
     * stays one line */
    for (char *p = l->error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -EINVAL;
}

const char *jr_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* Refuses any member of OBJ not in KNOWN (NULL-terminated). */
int jr_check_keys(struct json_reader *l, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (strcmp(*k, key) == 0)
                ok = true;
        if (ok)
            continue;
        char list[256] = "";
        size_t off = 0;
        for (const char *const *k = known; *k && off < sizeof(list); k++) {
            int r = snprintf(list + off, sizeof(list) - off, "%s%s", k == known ? "" : ", ", *k);
            if (r > 0)
                off += (size_t)r;
        }
        jr_push_key(l, key);
        int r = jr_fail(l, true, "unknown key (expected one of: %s)", list);
        jr_pop(l);
        return r;
    }
    return 0;
}

bool jr_has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Reads string KEY of OBJ into *ret (strdup'd). Absent: DEF (may be NULL). */
int jr_get_string(struct json_reader *l, json_t *obj, const char *key, const char *def, int flags,
                  char **ret)
{
    json_t *v = json_object_get(obj, key);
    int r = 0;
    jr_push_key(l, key);
    if (!v) {
        if (flags & JR_REQUIRED)
            r = jr_fail(l, false, "missing (this key is required)");
        else if (def && !(*ret = strdup(def)))
            r = -ENOMEM;
    } else if (json_is_null(v) && (flags & JR_NULLABLE)) {
        *ret = NULL;
    } else if (!json_is_string(v)) {
        r = jr_fail(l, false, "expected a string%s, got %s", flags & JR_NULLABLE ? " or null" : "",
                    jr_type_name(v));
    } else if (strlen(json_string_value(v)) != json_string_length(v) ||
               jr_has_control_chars(json_string_value(v))) {
        r = jr_fail(l, false, "must not contain control characters or NUL");
    } else if ((flags & JR_NONEMPTY) && json_string_length(v) == 0) {
        r = jr_fail(l, false, "must not be empty");
    } else if (!(*ret = strdup(json_string_value(v)))) {
        r = -ENOMEM;
    }
    jr_pop(l);
    return r;
}

int jr_check_uint(struct json_reader *l, json_t *v, uint64_t min, uint64_t max, uint64_t *ret)
{
    if (!json_is_integer(v))
        return jr_fail(l, false, "expected an integer from %llu to %llu, got %s",
                       (unsigned long long)min, (unsigned long long)max, jr_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return jr_fail(l, false, "must be from %llu to %llu, got %lld", (unsigned long long)min,
                       (unsigned long long)max, (long long)i);
    *ret = (uint64_t)i;
    return 0;
}

int jr_get_uint(struct json_reader *l, json_t *obj, const char *key, uint64_t min, uint64_t max,
                uint64_t def, uint64_t *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    jr_push_key(l, key);
    int r = jr_check_uint(l, v, min, max, ret);
    jr_pop(l);
    return r;
}

int jr_get_bool(struct json_reader *l, json_t *obj, const char *key, bool def, bool *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    jr_push_key(l, key);
    int r = 0;
    if (!json_is_boolean(v))
        r = jr_fail(l, false, "expected true or false, got %s", jr_type_name(v));
    else
        *ret = json_is_true(v);
    jr_pop(l);
    return r;
}

int jr_get_enum(struct json_reader *l, json_t *obj, const char *key, const char *const *table,
                size_t n, unsigned def, unsigned *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    jr_push_key(l, key);
    int r = -EINVAL;
    if (json_is_string(v))
        for (size_t i = 0; i < n; i++)
            if (strcmp(table[i], json_string_value(v)) == 0) {
                *ret = (unsigned)i;
                r = 0;
            }
    if (r < 0) {
        char list[128] = "";
        size_t off = 0;
        for (size_t i = 0; i < n && off < sizeof(list); i++) {
            int w = snprintf(list + off, sizeof(list) - off, "%s\"%s\"", i ? ", " : "", table[i]);
            if (w > 0)
                off += (size_t)w;
        }
        r = jr_fail(l, false, "expected one of %s", list);
    }
    jr_pop(l);
    return r;
}

/* Gets member KEY, which must be an object (or null when allowed). *ret NULL when absent/null. */
int jr_get_object(struct json_reader *l, json_t *obj, const char *key, bool nullable, json_t **ret)
{
    json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (!v || (nullable && json_is_null(v)))
        return 0;
    if (json_is_object(v)) {
        *ret = v;
        return 0;
    }
    jr_push_key(l, key);
    int r = jr_fail(l, false, "expected an object%s, got %s", nullable ? " or null" : "",
                    jr_type_name(v));
    jr_pop(l);
    return r;
}

int jr_get_array(struct json_reader *l, json_t *obj, const char *key, json_t **ret)
{
    json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (!v)
        return 0;
    if (json_is_array(v)) {
        *ret = v;
        return 0;
    }
    jr_push_key(l, key);
    int r = jr_fail(l, false, "expected an array, got %s", jr_type_name(v));
    jr_pop(l);
    return r;
}

/* Makes a file name absolute against the config's directory, and checks it is a readable file
 * (or a directory when WANT_DIR). Reports at KEY. */
int jr_resolve_file(struct json_reader *l, const char *key, char **path, bool want_dir)
{
    if (!*path)
        return 0;
    if ((*path)[0] != '/') {
        char *abs;
        if (asprintf(&abs, "%s/%s", l->dir, *path) < 0)
            return -ENOMEM;
        free(*path);
        *path = abs;
    }
    jr_push_key(l, key);
    struct stat st;
    int r = 0;
    if (stat(*path, &st) < 0)
        r = jr_fail(l, false, "%s: %s", *path, strerror(errno));
    else if (want_dir && !S_ISDIR(st.st_mode))
        r = jr_fail(l, false, "%s: not a directory", *path);
    else if (!want_dir && !S_ISREG(st.st_mode))
        r = jr_fail(l, false, "%s: not a regular file", *path);
    else if (access(*path, R_OK) < 0)
        r = jr_fail(l, false, "%s: %s", *path, strerror(errno));
    jr_pop(l);
    return r;
}
