/* config_json: a struct vm_config written back as JSON, in the one canonical shape: every key of
 * docs/config.md in its order, defaults written out, file names absolute (as the loader resolved
 * them), unsafe_* keys only when set, and without what ocvm adds itself (the secrets share).
 * Loading the text gives the same config; two configs are the same VM exactly when their
 * canonical texts are equal. Pure; used by the libvirt metadata and import. */
#pragma once

#include "config/vm_config.h"

#include <jansson.h>

/* C as a JSON object (new reference). -ENOMEM. */
int config_json_object(const struct vm_config *c, json_t **ret);
/* C as canonical JSON text, 2-space indented, with a final newline (allocated). -ENOMEM. */
int config_json_text(const struct vm_config *c, char **ret);
/* O (any JSON object) as text in the same layout as config_json_text(). -ENOMEM. */
int config_json_dump(const json_t *o, char **ret);
