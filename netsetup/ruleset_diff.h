/* ruleset_diff: compares two listings of one nft table (libnftables' JSON, plus the text listing
 * with handles for readable messages) and says, one line each, how the live one differs from the
 * wanted one: missing or extra chains, sets, set elements and rules, changed chain declarations.
 * Pure: it reads strings and writes strings. Also the small list the audit lines go into. */
#pragma once

#include <stddef.h>

/* A growable NULL-terminated list of lines with a sticky error: after an allocation failure the
 * adds are no-ops and .error is -ENOMEM. */
struct diff_list {
    char **v;
    size_t n, cap;
    int error;
};

void diff_list_addf(struct diff_list *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the lines and the list; D is empty again. */
void diff_list_done(struct diff_list *d);
/* Hands the NULL-terminated vector out (the caller frees each line and the vector); D is empty. */
char **diff_list_steal(struct diff_list *d);

/* WANT_* and LIVE_* are the outputs of `list table` for the same table: JSON (stateless) and text
 * with handles (stateless; may be NULL, then messages show rules as JSON). PREFIX starts every
 * line (e.g. "table inet ocvm_x: "). Returns -EINVAL when a JSON listing cannot be read. */
int ruleset_diff(const char *want_json, const char *want_text, const char *live_json,
                 const char *live_text, const char *prefix, struct diff_list *d);
