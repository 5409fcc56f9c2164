/* The OpenClaw config ocvm renders. Every key name below was checked against the npm package
 * openclaw 2026.9.6 (node 24): its JSON schema (`openclaw config schema`) and its validator
 * (`openclaw config validate`, the check `openclaw gateway run` makes before it stops with exit
 * 78); tests/integration/gateway_config_openclaw.sh repeats the check when the package is
 * installed. Re-check when the guest pins another version: OpenClaw refuses unknown keys. */
#include "policy/gateway_config.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ocvm's defaults (docs/config.md, section gateway.openclaw, says why each is there). */
static json_t *defaults(uint16_t port)
{
    /* clang-format off */
    return json_pack(
        "{s:{s:s, s:s, s:i, s:{s:s}, s:[s,s], s:{s:[s]}, s:{s:b}},"
        " s:{s:{s:s}},"
        " s:{s:b},"
        " s:{s:{s:b}, s:{s:{s:b}}, s:{s:b}},"
        " s:{s:{s:{s:s}}}}",
        "gateway",
            "mode", "local",
            "bind", "loopback",
            "port", (int)port,
            "auth", "mode", "token",
            "trustedProxies", "127.0.0.1", "::1",
            "controlUi", "allowedOrigins", "https://localhost:8443",
            "terminal", "enabled", false,
        "discovery", "mdns", "mode", "off",
        "update", "checkOnStart", false,
        "tools",
            "fs", "workspaceOnly", true,
            "exec", "applyPatch", "workspaceOnly", true,
            "elevated", "enabled", false,
        "agents", "defaults", "sandbox", "mode", "off");
    /* clang-format on */
}

/* RFC 7396: PATCH's members into TARGET; objects merge, null deletes, anything else replaces.
 * Recurses only as deep as PATCH, which jansson's parser has bounded. */
static int merge_patch(json_t *target, json_t *patch)
{
    const char *key;
    json_t *v;
    json_object_foreach(patch, key, v)
    {
        json_t *t = json_object_get(target, key);
        if (json_is_null(v)) {
            json_object_del(target, key);
            continue;
        }
        if (json_is_object(v) && !json_is_object(t)) {
            /* a new (or replaced) object: still merged, so that nulls inside it vanish */
            if (!(t = json_object()) || json_object_set_new(target, key, t) < 0)
                return -ENOMEM;
        }
        if (json_is_object(v)) {
            int r = merge_patch(t, v);
            if (r < 0)
                return r;
        } else if (json_object_set(target, key, v) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

int gateway_config_build(const struct vm_config *c, const char *token, json_t **ret, char **error)
{
    *error = NULL;
    const char *user = c->gateway.openclaw_json ? c->gateway.openclaw_json : "{}";
    json_t *d = defaults(c->gateway.guest_port);
    json_t *patch = json_loads(user, JSON_REJECT_DUPLICATES, NULL);
    json_t *auth = json_object_get(json_object_get(d, "gateway"), "auth");
    int r = -ENOMEM;
    if (!d || !auth)
        goto out;
    if (!json_is_object(patch)) {
        /* not its text: it may hold a token of the user's */
        r = error_setf(error, -EINVAL, "gateway.openclaw: not a JSON object");
        goto out;
    }
    if (token && json_object_set_new(auth, "token", json_string(token)) < 0) {
        r = error_setf(error, -EINVAL, "the gateway token is not UTF-8");
        goto out;
    }
    if ((r = merge_patch(d, patch)) < 0)
        goto out;
    *ret = TAKE_PTR(d);
out:
    json_decref(patch);
    json_decref(d);
    return r;
}

int gateway_config_render(const struct vm_config *c, const char *token, char **ret_json,
                          char **error)
{
    *error = NULL;
    if (!token || !*token)
        return error_setf(error, -EINVAL, "no gateway token");
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return error_setf(error, -EINVAL,
                              "the gateway token (%zu bytes) holds a control character at byte %zu",
                              strlen(token), (size_t)(p - token) + 1);
    json_t *tree;
    int r = gateway_config_build(c, token, &tree, error);
    if (r < 0)
        return r;
    char *s = json_dumps(tree, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(tree);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return -ENOMEM;
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    *ret_json = t;
    return 0;
}
