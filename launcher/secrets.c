#include "launcher/secrets.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "config/config.h"
#include "launcher/runtime_dir.h"
#include "policy/gateway_config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TOKEN_BYTES = 32, TOKEN_MIN_CHARS = 32 };

int secrets_state_dir(const char *name, char **ret)
{
    const char *env = getenv("OCVM_STATE_DIR");
    int r;
    if (env && *env)
        r = asprintf(ret, "%s/%s", env, name);
    else if (geteuid() == 0)
        r = asprintf(ret, "/var/lib/ocvm/%s", name);
    else if ((env = getenv("XDG_STATE_HOME")) && *env)
        r = asprintf(ret, "%s/ocvm/%s", env, name);
    else if ((env = getenv("HOME")) && *env)
        r = asprintf(ret, "%s/.local/state/ocvm/%s", env, name);
    else
        return -ENXIO;
    return r < 0 ? -ENOMEM : 0;
}

int secrets_plan_share(struct vm_config *c, const char *runtime_dir)
{
    _cleanup_free_ char *dir = runtime_file_path(runtime_dir, RUNTIME_SECRETS);
    return dir ? vm_config_add_share(c, SECRETS_SHARE_TAG, dir, true) : -ENOMEM;
}

bool secrets_planned(const struct vm_config *c)
{
    for (size_t i = 0; i < c->n_shares; i++)
        if (strcmp(c->shares[i].tag, SECRETS_SHARE_TAG) == 0)
            return true;
    return false;
}

int secrets_read_file(const char *path, char **ret, size_t *ret_len, char **error)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s", path, strerror(-r));
    }
    if (!S_ISREG(st.st_mode))
        return error_setf(error, -EINVAL, "%s: not a regular file", path);
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return error_setf(error, -EPERM,
                          "%s: owned by uid %u: a secret must belong to root or to the user "
                          "running ocvm (uid %u)",
                          path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 077)
        return error_setf(error, -EPERM,
                          "%s: mode %04o lets others read it: a secret must be its owner's alone "
                          "(chmod 0600 %s)",
                          path, (unsigned)(st.st_mode & 07777), path);
    if (st.st_size > (off_t)SECRETS_MAX_SIZE)
        return error_setf(error, -EFBIG, "%s: larger than %u bytes", path, SECRETS_MAX_SIZE);
    _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int r = negative_errno();
            return error_setf(error, r, "%s: %s", path, strerror(-r));
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    buf[n] = 0;
    *ret = TAKE_PTR(buf);
    *ret_len = n;
    return 0;
}

/* A token read from a file: one line of printable ASCII (a final newline is dropped), long
 * enough. Names only PATH and the token's length on error. */
static int check_token(const char *path, char *tok, size_t len, char **error)
{
    if (len && tok[len - 1] == '\n')
        tok[--len] = 0;
    for (size_t i = 0; i < len; i++)
        if (tok[i] <= ' ' || tok[i] > '~')
            return error_setf(error, -EINVAL,
                              "%s: the gateway token must be one line of printable characters "
                              "without spaces (byte %zu is not)",
                              path, i + 1);
    if (len < TOKEN_MIN_CHARS)
        return error_setf(error, -EINVAL,
                          "%s: the gateway token has %zu characters, fewer than %d (make one with "
                          "`openssl rand -hex 32`)",
                          path, len, TOKEN_MIN_CHARS);
    return 0;
}

/* Makes a token (32 random bytes, hex) and keeps it at PATH (0600, O_EXCL: never overwritten). */
static int make_token(const char *dir, const char *path, char **ret, char **error)
{
    unsigned char raw[TOKEN_BYTES];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        int r = negative_errno();
        return error_setf(error, r, "getrandom: %s", strerror(-r));
    }
    _cleanup_free_ char *hex = malloc(2 * TOKEN_BYTES + 2);
    if (!hex)
        return -ENOMEM;
    for (size_t i = 0; i < TOKEN_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof(raw));
    _cleanup_free_ char *parent = strdup(dir);
    char *slash = parent ? strrchr(parent, '/') : NULL;
    if (!parent)
        return -ENOMEM;
    if (slash && slash != parent) {
        *slash = 0;
        if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
            int r = negative_errno();
            return error_setf(error, r, "%s: %s", parent, strerror(-r));
        }
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s", dir, strerror(-r));
    }
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(hex);
    hex[len] = '\n';
    if (fd < 0 || write(fd, hex, len + 1) != (ssize_t)(len + 1) || fsync(fd) < 0) {
        int r = negative_errno();
        if (fd >= 0)
            unlink(path);
        return error_setf(error, r, "keep the new gateway token in %s: %s", path, strerror(-r));
    }
    hex[len] = 0;
    *ret = TAKE_PTR(hex);
    return 0;
}

int secrets_gateway_token(const struct vm_config *c, char **ret, char **error)
{
    *error = NULL;
    _cleanup_free_ char *dir = NULL, *kept = NULL;
    const char *path = c->secrets.gateway_token;
    if (!path) {
        int r = secrets_state_dir(c->name, &dir);
        if (r < 0)
            return error_setf(error, r,
                              "no state directory for the gateway token (set "
                              "OCVM_STATE_DIR, or secrets.gateway_token)");
        if (asprintf(&kept, "%s/%s", dir, SECRETS_TOKEN_FILE) < 0)
            return -ENOMEM;
        if (access(kept, F_OK) < 0 && errno == ENOENT)
            return make_token(dir, kept, ret, error);
        path = kept;
    }
    char *tok;
    size_t len;
    int r = secrets_read_file(path, &tok, &len, error);
    if (r < 0)
        return r;
    if ((r = check_token(path, tok, len, error)) < 0) {
        explicit_bzero(tok, len);
        free(tok);
        return r;
    }
    *ret = tok;
    return 0;
}

/* Writes LEN bytes of DATA as DIRFD/NAME, 0400, owned by UID:GID (-1: ours). */
static int put(int dirfd, const char *name, const char *data, size_t len, uid_t uid, gid_t gid)
{
    _cleanup_close_ int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd < 0)
        return negative_errno();
    for (size_t n = 0; n < len;) {
        ssize_t k = write(fd, data + n, len - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? negative_errno() : -EIO;
        n += (size_t)k;
    }
    if ((uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || fchmod(fd, 0400) < 0)
        return negative_errno();
    return 0;
}

/* Everything in DIR, staged: the files, the token, the OpenClaw config. */
static int stage_into(const struct vm_config *c, int dirfd, uid_t uid, gid_t gid, char **error)
{
    _cleanup_free_ char *token = NULL, *rendered = NULL;
    int r = secrets_gateway_token(c, &token, error);
    if (r < 0)
        return r;
    size_t token_len = strlen(token);
    if ((r = gateway_config_render(c, token, &rendered, error)) < 0 ||
        (r = put(dirfd, SECRETS_TOKEN_FILE, token, token_len, uid, gid)) < 0 ||
        (r = put(dirfd, SECRETS_OPENCLAW_FILE, rendered, strlen(rendered), uid, gid)) < 0) {
        if (r < 0 && !*error)
            error_setf(error, r, "stage the gateway token: %s", strerror(-r));
        explicit_bzero(token, token_len);
        if (rendered)
            explicit_bzero(rendered, strlen(rendered));
        return r;
    }
    explicit_bzero(token, token_len);
    explicit_bzero(rendered, strlen(rendered));
    for (size_t i = 0; i < c->secrets.n_files; i++) {
        const struct vm_secret *s = &c->secrets.files[i];
        char *data;
        size_t len;
        if ((r = secrets_read_file(s->path, &data, &len, error)) < 0)
            return r;
        r = put(dirfd, s->name, data, len, uid, gid);
        explicit_bzero(data, len);
        free(data);
        if (r < 0)
            return error_setf(error, r, "stage secret %s: %s", s->name, strerror(-r));
    }
    return 0;
}

int secrets_stage(const struct vm_config *c, const char *runtime_dir, const char *owner,
                  char **error)
{
    *error = NULL;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (owner) {
        struct passwd *pw = getpwnam(owner);
        if (!pw)
            return error_setf(error, -ENOENT, "stage secrets: no user %s", owner);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    _cleanup_free_ char *dir = runtime_file_path(runtime_dir, RUNTIME_SECRETS);
    if (!dir)
        return -ENOMEM;
    if (mkdir(dir, 0700) < 0) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s", dir, strerror(-r));
    }
    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    int r = dirfd < 0 ? negative_errno() : stage_into(c, dirfd, uid, gid, error);
    if (r == 0 && uid != (uid_t)-1 && fchown(dirfd, uid, gid) < 0)
        r = negative_errno();
    if (r < 0) {
        if (!*error)
            error_setf(error, r, "%s: %s", dir, strerror(-r));
        /* all or nothing: what was staged goes */
        for (size_t i = 0; dirfd >= 0 && i < c->secrets.n_files; i++)
            unlinkat(dirfd, c->secrets.files[i].name, 0);
        if (dirfd >= 0) {
            unlinkat(dirfd, SECRETS_TOKEN_FILE, 0);
            unlinkat(dirfd, SECRETS_OPENCLAW_FILE, 0);
        }
        rmdir(dir);
        return r;
    }
    return 0;
}
