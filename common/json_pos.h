/* json_pos: finds where a value sits in JSON text, as line:column. jansson reports positions only
 * for syntax errors; its values carry none. The config loader walks jansson's tree and, when a
 * value is wrong, asks this module for the position of the path it was at. Works on text that
 * jansson has already accepted; returns -ENOENT if the path is not there. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct json_step {
    const char *key; /* object member, or NULL for an array element */
    size_t index;
};

struct json_position {
    unsigned line, column; /* 1-based */
};

/* Position of the value at PATH (or of its member name when AT_KEY and the last step is a key).
 * An empty path is the top-level value. */
int json_pos_find(const char *text, size_t len, const struct json_step *path, size_t n_steps,
                  bool at_key, struct json_position *ret);
