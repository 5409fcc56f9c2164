/* vm_fixture: the temporary directory the config-loading unit suites share, and loading configs
 * with it. The directory (/tmp/ocvm-SUITE-XXXXXX) holds empty stand-ins for the host files a
 * config names: "vmlinuz", "initrd.img" and a "share" directory. Texts name them as KERNEL (its
 * vmlinuz) and TMP (the directory itself); the examples' host paths are swapped for them. */
#pragma once

#include "config/config.h"

/* Makes the directory and its stand-ins, outside any test: 0 or -errno (nothing is left). */
int vm_fixture_make(void);
/* Removes the directory and all in it: 0 or -errno. */
int vm_fixture_remove(void);
/* The checked fixture for tcase_add_checked_fixture: make and remove, per test, asserting. */
void vm_fixture_setup(void);
void vm_fixture_teardown(void);

/* The directory, without a trailing '/'. */
const char *vm_fixture_dir(void);
/* DIR/vm.json: the name vm_fixture_load() loads its texts as, so errors read "DIR/vm.json:L:C:". */
const char *vm_fixture_config_path(void);

/* SOURCE_DIR/FILE's text (allocated) with the examples' host paths (their kernels, the demo's
 * initrd, the secrets share) swapped for KERNEL, TMP/initrd.img and TMP/share. */
char *vm_fixture_read(const char *file);

/* Loads JSON, its KERNEL and TMP replaced, as if read from PATH; fails the test with the loader's
 * error. */
struct vm_config *vm_fixture_load_as(const char *path, const char *json);
/* vm_fixture_load_as() from DIR/vm.json. */
struct vm_config *vm_fixture_load(const char *json);
/* SOURCE_DIR/FILE (an example or a corpus file) through vm_fixture_read(), as its own path, so
 * its relative file names resolve where they do in the tree. */
struct vm_config *vm_fixture_load_file(const char *file);
/* examples/NAME through vm_fixture_read(), as /etc/ocvm/NAME: where a user installs it. */
struct vm_config *vm_fixture_load_example(const char *name);
