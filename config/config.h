/* config: loads one VM's JSON file into a struct vm_config, strictly. Unknown keys, wrong types,
 * out-of-range values and missing files are refused with a single "FILE:LINE:COL: key: what is
 * wrong" message, before anything is started. Defaults are those of ARCHITECTURE.md. */
#pragma once

#include "config/vm_config.h"

#define CONFIG_DIR_DEFAULT "/etc/ocvm"

/* Loads PATH. On failure returns -EINVAL (bad content) or another -errno (unreadable file) and
 * sets *error to the one-line message (caller frees). */
int config_load(const char *path, struct vm_config **ret, char **error);
/* Loads TEXT as if read from PATH (relative file names resolve against PATH's directory). */
int config_load_text(const char *path, const char *text, size_t len, struct vm_config **ret,
                     char **error);
/* The file for VM NAME: $OCVM_CONFIG_DIR/NAME.json, default /etc/ocvm/NAME.json. */
int config_path_for_name(const char *name, char **ret);
/* True when NAME is usable as a VM name (1-32 of [A-Za-z0-9_-], not starting with '-'). */
bool config_name_is_valid(const char *name);

/* Appends a share (proto virtiofs) to C: what the launcher adds at start, such as the secrets
 * share. -EEXIST when TAG is taken, -ENOMEM. */
int vm_config_add_share(struct vm_config *c, const char *tag, const char *source, bool read_only);
