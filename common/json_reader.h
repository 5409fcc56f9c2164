/* json_reader: strict reading of a jansson tree whose values carry no position. It keeps the
 * path being read (machine.vcpu, forwards[1].listen) and, on the first problem, records one line
 * "FILE:LINE:COL: path: what is wrong", asking json_pos where the path sits in the text. Typed
 * getters apply defaults, refuse wrong types, ranges and control characters, and unknown keys. */
#pragma once

#include "common/json_pos.h"
#include "common/cleanup.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum { JR_MAX_DEPTH = 8 };

struct json_reader {
    const char *path, *text; /* the file name for messages, and its text */
    size_t len;
    char *dir; /* absolute directory of PATH, for relative file names */
    struct json_step steps[JR_MAX_DEPTH];
    size_t depth;
    char *error; /* the first error, or NULL */
};

void jr_push_key(struct json_reader *l, const char *key);
void jr_push_index(struct json_reader *l, size_t i);
void jr_pop(struct json_reader *l);
/* Records the first error, positioned at the current path (or its key), returns -EINVAL. */
int jr_fail(struct json_reader *l, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *jr_type_name(const json_t *v);
bool jr_has_control_chars(const char *s);
/* Refuses any member of OBJ not in KNOWN (NULL-terminated), naming the keys it expects. */
int jr_check_keys(struct json_reader *l, json_t *obj, const char *const *known);

enum { JR_NULLABLE = 1 << 0, JR_REQUIRED = 1 << 1, JR_NONEMPTY = 1 << 2 };
/* String KEY of OBJ into *ret (allocated); absent: DEF (may be NULL). */
int jr_get_string(struct json_reader *l, json_t *obj, const char *key, const char *def, int flags,
                  char **ret);
int jr_check_uint(struct json_reader *l, json_t *v, uint64_t min, uint64_t max, uint64_t *ret);
int jr_get_uint(struct json_reader *l, json_t *obj, const char *key, uint64_t min, uint64_t max,
                uint64_t def, uint64_t *ret);
int jr_get_bool(struct json_reader *l, json_t *obj, const char *key, bool def, bool *ret);
/* KEY must be one of TABLE's N strings; its index goes to *ret. */
int jr_get_enum(struct json_reader *l, json_t *obj, const char *key, const char *const *table,
                size_t n, unsigned def, unsigned *ret);
/* Member KEY as an object (or null when NULLABLE); *ret NULL when absent or null. */
int jr_get_object(struct json_reader *l, json_t *obj, const char *key, bool nullable, json_t **ret);
int jr_get_array(struct json_reader *l, json_t *obj, const char *key, json_t **ret);
/* Makes *path absolute against the file's directory and checks it is a readable regular file
 * (or a directory when WANT_DIR); reports at KEY. */
int jr_resolve_file(struct json_reader *l, const char *key, char **path, bool want_dir);

/* jr_get_uint / jr_get_enum into a field of any integer or enum type. */
#define JR_GET_UINT(l, obj, key, min, max, def, dst)                                               \
    ({                                                                                             \
        uint64_t _v_;                                                                              \
        int _r_ = jr_get_uint(l, obj, key, min, max, def, &_v_);                                   \
        if (_r_ == 0)                                                                              \
            (dst) = (__typeof__(dst))_v_;                                                          \
        _r_;                                                                                       \
    })
#define JR_GET_ENUM(l, obj, key, table, def, dst)                                                  \
    ({                                                                                             \
        unsigned _v_;                                                                              \
        int _r_ = jr_get_enum(l, obj, key, table, ELEMENTSOF(table), def, &_v_);                   \
        if (_r_ == 0)                                                                              \
            (dst) = _v_;                                                                           \
        _r_;                                                                                       \
    })
