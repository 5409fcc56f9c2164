#include "tests/support/vm_fixture.h"

#include "common/cleanup.h"
#include "tests/support/golden.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[PATH_MAX]; /* empty while there is none */
static char config_path[PATH_MAX];

/* The examples' host paths, and what vm_fixture_read() puts in their place. */
static const struct {
    const char *host, *stand_in;
} host_paths[] = {
    {"/var/lib/ocvm/openclaw/vmlinuz", "KERNEL"},
    {"/var/lib/ocvm/openclaw/initrd.img", "TMP/initrd.img"},
    {"../build/guest/vmlinuz", "KERNEL"},
    {"../build/guest/initrd.img", "TMP/initrd.img"},
    {"/run/openclaw-secrets", "TMP/share"},
};

/* DIR/NAME into BUF: 0, or -ENAMETOOLONG. */
static int path_in_dir(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int make_stand_ins(void)
{
    static const char *const files[] = {"vmlinuz", "initrd.img"};
    char p[PATH_MAX];
    int r;
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        if ((r = path_in_dir(p, sizeof(p), files[i])) < 0)
            return r;
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    if ((r = path_in_dir(p, sizeof(p), "share")) < 0)
        return r;
    if (mkdir(p, 0700) < 0)
        return -errno;
    return path_in_dir(config_path, sizeof(config_path), "vm.json");
}

int vm_fixture_make(void)
{
    int n = snprintf(dir, sizeof(dir), "/tmp/ocvm-%s-XXXXXX", program_invocation_short_name);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        dir[0] = '\0';
        return -ENAMETOOLONG;
    }
    if (!mkdtemp(dir)) {
        int r = -errno;
        dir[0] = '\0';
        return r;
    }
    int r = make_stand_ins();
    if (r < 0)
        vm_fixture_remove();
    return r;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

int vm_fixture_remove(void)
{
    if (!dir[0])
        return 0;
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
        return -errno;
    dir[0] = config_path[0] = '\0';
    return 0;
}

void vm_fixture_setup(void)
{
    int r = vm_fixture_make();
    ck_assert_msg(r == 0, "cannot make a temporary directory: %s", strerror(-r));
}

void vm_fixture_teardown(void)
{
    int r = vm_fixture_remove();
    ck_assert_msg(r == 0, "cannot remove %s: %s", dir, strerror(-r));
}

const char *vm_fixture_dir(void)
{
    return dir;
}

const char *vm_fixture_config_path(void)
{
    return config_path;
}

char *vm_fixture_read(const char *file)
{
    _cleanup_free_ char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/%s", SOURCE_DIR, file), 0);
    char *text = golden_read_file(path);
    ck_assert_msg(text, "cannot read %s", path);
    for (size_t i = 0; i < ELEMENTSOF(host_paths); i++)
        text = golden_replace(text, host_paths[i].host, host_paths[i].stand_in);
    return text;
}

struct vm_config *vm_fixture_load_as(const char *path, const char *json)
{
    char kernel[PATH_MAX];
    ck_assert_int_eq(path_in_dir(kernel, sizeof(kernel), "vmlinuz"), 0);
    char *copy = strdup(json);
    ck_assert_ptr_nonnull(copy);
    /* TMP first: the directory's random name may hold "TMP", and KERNEL's path holds it */
    _cleanup_free_ char *text = golden_replace(golden_replace(copy, "TMP", dir), "KERNEL", kernel);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    int r = config_load_text(path, text, strlen(text), &c, &err);
    ck_assert_msg(r == 0, "%s", err ? err : strerror(-r));
    return c;
}

struct vm_config *vm_fixture_load(const char *json)
{
    return vm_fixture_load_as(config_path, json);
}

struct vm_config *vm_fixture_load_file(const char *file)
{
    _cleanup_free_ char *path = NULL, *text = vm_fixture_read(file);
    ck_assert_int_ge(asprintf(&path, "%s/%s", SOURCE_DIR, file), 0);
    return vm_fixture_load_as(path, text);
}

struct vm_config *vm_fixture_load_example(const char *name)
{
    _cleanup_free_ char *file = NULL, *path = NULL, *text = NULL;
    ck_assert_int_ge(asprintf(&file, "examples/%s", name), 0);
    ck_assert_int_ge(asprintf(&path, "/etc/ocvm/%s", name), 0);
    text = vm_fixture_read(file);
    return vm_fixture_load_as(path, text);
}
