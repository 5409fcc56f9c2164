/* gateway_config: the OpenClaw config file the guest's gateway reads (OPENCLAW_CONFIG_PATH):
 * ocvm's secure defaults with the user's gateway.openclaw merged over them, rendered as
 * deterministic JSON (valid JSON5). The rules (OCVM-P008...) judge the same merged tree, so what
 * they pass is what the gateway gets. Pure. The token is a secret: it goes into the rendered text
 * and nowhere else, never into an error. */
#pragma once

#include "config/vm_config.h"

#include <jansson.h>

/* A gateway token or password shorter than this is refused (OCVM-P009); ocvm's own token is 64
 * hex digits. */
#define GATEWAY_CONFIG_SECRET_MIN 32

/* The merged tree for C into *RET (json_decref it): ocvm's defaults, TOKEN at gateway.auth.token
 * (NULL: left out, for the rules, which never see it), then C's gateway.openclaw applied as a JSON
 * merge patch (RFC 7396, as `openclaw config patch` does): objects merge member by member, null
 * deletes, anything else replaces. */
int gateway_config_build(const struct vm_config *c, const char *token, json_t **ret, char **error);

/* The file's text for C with TOKEN into *RET_JSON: sorted keys, 2-space indent, trailing newline.
 * It holds the token: the caller keeps it where only the VM's user reads it. -EINVAL with one line
 * in *ERROR when TOKEN is unusable (empty, control characters, not UTF-8). */
int gateway_config_render(const struct vm_config *c, const char *token, char **ret_json,
                          char **error);
