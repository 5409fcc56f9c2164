#include "netsetup/ruleset_diff.h"

#include "common/cleanup.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

void diff_list_addf(struct diff_list *d, const char *fmt, ...)
{
    if (d->error)
        return;
    if (d->n + 2 > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **v = reallocarray(d->v, cap, sizeof(*v));
        if (!v) {
            d->error = -ENOMEM;
            return;
        }
        d->v = v;
        d->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&d->v[d->n], fmt, ap);
    va_end(ap);
    if (r < 0) {
        d->v[d->n] = NULL;
        d->error = -ENOMEM;
        return;
    }
    d->v[++d->n] = NULL;
}

void diff_list_done(struct diff_list *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    free(d->v);
    *d = (struct diff_list){0};
}

char **diff_list_steal(struct diff_list *d)
{
    char **v = d->v;
    if (!v)
        v = calloc(1, sizeof(*v));
    *d = (struct diff_list){0};
    return v;
}

/* One listing, indexed: objects by kind and name, each chain's rules in order. */
struct listing {
    json_t *root;
    json_t *sets;   /* name -> set object (borrowed) */
    json_t *chains; /* name -> chain object (borrowed) */
    json_t *rules;  /* chain name -> array of rule objects (borrowed) */
    const char *text;
};

static void listing_done(struct listing *l)
{
    json_decref(l->sets);
    json_decref(l->chains);
    json_decref(l->rules);
    json_decref(l->root);
}

static int listing_load(const char *json, const char *text, struct listing *l)
{
    *l = (struct listing){.text = text};
    json_error_t err;
    if (!(l->root = json_loads(json, 0, &err)))
        return -EINVAL;
    json_t *items = json_object_get(l->root, "nftables"), *item;
    if (!json_is_array(items))
        return -EINVAL;
    if (!(l->sets = json_object()) || !(l->chains = json_object()) || !(l->rules = json_object()))
        return -ENOMEM;
    size_t i;
    json_array_foreach(items, i, item)
    {
        json_t *o;
        const char *name;
        if ((o = json_object_get(item, "set")) &&
            (name = json_string_value(json_object_get(o, "name")))) {
            if (json_object_set(l->sets, name, o) < 0)
                return -ENOMEM;
        } else if ((o = json_object_get(item, "chain")) &&
                   (name = json_string_value(json_object_get(o, "name")))) {
            if (json_object_set(l->chains, name, o) < 0)
                return -ENOMEM;
        } else if ((o = json_object_get(item, "rule")) &&
                   (name = json_string_value(json_object_get(o, "chain")))) {
            json_t *a = json_object_get(l->rules, name);
            if (!a && (json_object_set_new(l->rules, name, a = json_array()) < 0 || !a))
                return -ENOMEM;
            if (json_array_append(a, o) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* The text listing's line for rule HANDLE in CHAIN (without indentation or the handle comment),
 * or NULL. */
static char *rule_text(const char *text, const char *chain, json_int_t handle)
{
    if (!text)
        return NULL;
    char head[128], tail[48];
    snprintf(head, sizeof(head), "chain %s {", chain);
    snprintf(tail, sizeof(tail), " # handle %lld", (long long)handle);
    bool in_chain = false;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        const char *s = p;
        while (s < p + len && (*s == '\t' || *s == ' '))
            s++;
        size_t slen = (size_t)(p + len - s);
        if (slen >= strlen(head) && strncmp(s, head, strlen(head)) == 0)
            in_chain = true;
        else if (slen == 1 && *s == '}')
            in_chain = false;
        else if (in_chain && slen > strlen(tail) &&
                 strncmp(s + slen - strlen(tail), tail, strlen(tail)) == 0)
            return strndup(s, slen - strlen(tail));
        p += len + (p[len] == '\n');
    }
    return NULL;
}

/* How to show RULE of CHAIN: nft's own text if the listing has it, else its JSON. */
static char *rule_show(const struct listing *l, const char *chain, json_t *rule)
{
    char *s = rule_text(l->text, chain, json_integer_value(json_object_get(rule, "handle")));
    if (s)
        return s;
    return json_dumps(json_object_get(rule, "expr"), JSON_COMPACT);
}

static void chain_decl(json_t *c, char *buf, size_t size)
{
    const char *type = json_string_value(json_object_get(c, "type"));
    if (!type) {
        snprintf(buf, size, "a regular chain");
        return;
    }
    const char *hook = json_string_value(json_object_get(c, "hook"));
    const char *policy = json_string_value(json_object_get(c, "policy"));
    snprintf(buf, size, "type %s hook %s priority %lld policy %s", type, hook ? hook : "?",
             (long long)json_integer_value(json_object_get(c, "prio")), policy ? policy : "?");
}

static bool same_decl(json_t *a, json_t *b)
{
    static const char *const keys[] = {"type", "hook", "prio", "policy", "dev"};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        json_t *x = json_object_get(a, keys[i]), *y = json_object_get(b, keys[i]);
        if ((x || y) && (!x || !y || !json_equal(x, y)))
            return false;
    }
    return true;
}

/* Rules are compared by their expressions (handles and counters differ between listings). The
 * report is the shortest edit between the two sequences: missing and unexpected rules. */
static void diff_rules(const struct listing *want, const struct listing *live, const char *chain,
                       const char *prefix, struct diff_list *d)
{
    json_t *a = json_object_get(want->rules, chain), *b = json_object_get(live->rules, chain);
    size_t n = json_array_size(a), m = json_array_size(b);
    _cleanup_free_ unsigned *lcs = calloc((n + 1) * (m + 1), sizeof(unsigned));
    if (!lcs) {
        d->error = -ENOMEM;
        return;
    }
#define L(i, j) lcs[(i) * (m + 1) + (j)]
#define SAME(i, j)                                                                                 \
    json_equal(json_object_get(json_array_get(a, i), "expr"),                                      \
               json_object_get(json_array_get(b, j), "expr"))
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            L(i, j) = SAME(i, j) ? L(i + 1, j + 1) + 1
                                 : (L(i + 1, j) > L(i, j + 1) ? L(i + 1, j) : L(i, j + 1));
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && SAME(i, j)) {
            i++, j++;
        } else if (j < m && (i == n || L(i, j + 1) >= L(i + 1, j))) {
            _cleanup_free_ char *s = rule_show(live, chain, json_array_get(b, j));
            diff_list_addf(d, "%schain %s: unexpected rule: %s", prefix, chain, s ? s : "?");
            j++;
        } else {
            _cleanup_free_ char *s = rule_show(want, chain, json_array_get(a, i));
            diff_list_addf(d, "%schain %s: missing rule: %s", prefix, chain, s ? s : "?");
            i++;
        }
    }
#undef SAME
#undef L
}

static char *elem_show(json_t *e)
{
    json_t *cat = json_object_get(e, "concat");
    if (json_is_array(cat)) {
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        if (!m)
            return NULL;
        json_t *part;
        size_t i;
        json_array_foreach(cat, i, part)
        {
            if (i)
                fputs(" . ", m);
            if (json_is_string(part))
                fputs(json_string_value(part), m);
            else if (json_is_integer(part))
                fprintf(m, "%lld", (long long)json_integer_value(part));
            else {
                char *s = json_dumps(part, JSON_COMPACT | JSON_ENCODE_ANY);
                fputs(s ? s : "?", m);
                free(s);
            }
        }
        fclose(m);
        return out;
    }
    if (json_is_string(e))
        return strdup(json_string_value(e));
    return json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
}

static bool elem_in(json_t *e, json_t *elems)
{
    json_t *x;
    size_t i;
    json_array_foreach(elems, i, x)
    {
        if (json_equal(x, e))
            return true;
    }
    return false;
}

static void diff_set(json_t *want, json_t *live, const char *name, const char *prefix,
                     struct diff_list *d)
{
    static const char *const keys[] = {"type", "flags", "policy", "timeout"};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        json_t *x = json_object_get(want, keys[i]), *y = json_object_get(live, keys[i]);
        if ((x || y) && (!x || !y || !json_equal(x, y))) {
            _cleanup_free_ char *ws = x ? json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            _cleanup_free_ char *ls = y ? json_dumps(y, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            diff_list_addf(d, "%sset %s: %s is %s, want %s", prefix, name, keys[i],
                           ls ? ls : "unset", ws ? ws : "unset");
        }
    }
    json_t *we = json_object_get(want, "elem"), *le = json_object_get(live, "elem"), *e;
    size_t i;
    json_array_foreach(we, i, e)
    {
        if (!elem_in(e, le)) {
            _cleanup_free_ char *s = elem_show(e);
            diff_list_addf(d, "%sset %s: missing element %s", prefix, name, s ? s : "?");
        }
    }
    json_array_foreach(le, i, e)
    {
        if (!elem_in(e, we)) {
            _cleanup_free_ char *s = elem_show(e);
            diff_list_addf(d, "%sset %s: unexpected element %s", prefix, name, s ? s : "?");
        }
    }
}

int ruleset_diff(const char *want_json, const char *want_text, const char *live_json,
                 const char *live_text, const char *prefix, struct diff_list *d)
{
    struct listing want, live;
    int r = listing_load(want_json, want_text, &want);
    if (r == 0)
        r = listing_load(live_json, live_text, &live);
    else
        live = (struct listing){0};
    if (r < 0)
        goto out;
    const char *name;
    json_t *o;
    json_object_foreach(want.sets, name, o)
    {
        json_t *l = json_object_get(live.sets, name);
        if (!l)
            diff_list_addf(d, "%sset %s is missing", prefix, name);
        else
            diff_set(o, l, name, prefix, d);
    }
    json_object_foreach(live.sets, name, o)
    {
        if (!json_object_get(want.sets, name))
            diff_list_addf(d, "%sunexpected set %s", prefix, name);
    }
    json_object_foreach(want.chains, name, o)
    {
        json_t *l = json_object_get(live.chains, name);
        if (!l) {
            diff_list_addf(d, "%schain %s is missing", prefix, name);
            continue;
        }
        if (!same_decl(o, l)) {
            char w[160], g[160];
            chain_decl(o, w, sizeof(w));
            chain_decl(l, g, sizeof(g));
            diff_list_addf(d, "%schain %s is %s, want %s", prefix, name, g, w);
        }
        diff_rules(&want, &live, name, prefix, d);
    }
    json_object_foreach(live.chains, name, o)
    {
        if (!json_object_get(want.chains, name))
            diff_list_addf(d, "%sunexpected chain %s", prefix, name);
    }
    r = d->error;
out:
    listing_done(&want);
    listing_done(&live);
    return r;
}
