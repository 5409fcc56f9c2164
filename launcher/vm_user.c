/* The per-VM system user of libvirt domains; see vm_user.h. */
#include "launcher/vm_user.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/argv.h"

#include <ctype.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

enum { USER_NAME_MAX = 32 }; /* useradd's limit */
#define PREFIX "ocvm-"

int vm_user_name(const char *vm, char **ret)
{
    size_t n = strlen(vm);
    bool plain = strlen(PREFIX) + n <= USER_NAME_MAX;
    for (const char *p = vm; *p && plain; p++)
        plain = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '_';
    if (plain)
        return asprintf(ret, PREFIX "%s", vm) < 0 ? -ENOMEM : 0;
    /* useradd takes [a-z0-9_-]: lowercase the name, and tell names apart that differ only in
     * case or past the cut by a hash of the whole name (FNV-1a) */
    uint32_t h = 2166136261u;
    char low[19] = "";
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)vm[i]) * 16777619u;
        if (i < sizeof(low) - 1)
            low[i] = (char)tolower((unsigned char)vm[i]);
    }
    return asprintf(ret, PREFIX "%s-%08x", low, h) < 0 ? -ENOMEM : 0;
}

int vm_user_lookup(const char *vm, uid_t *uid, gid_t *gid)
{
    _cleanup_free_ char *name = NULL;
    if (vm_user_name(vm, &name) < 0)
        return -ENOMEM;
    struct passwd *pw = getpwnam(name);
    if (!pw)
        return -ENOENT;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* Runs ARGV (an absolute path first) with stdin and stdout on /dev/null; 0 when it exits 0. */
static int run(char *const argv[], char **error)
{
    pid_t pid = fork();
    if (pid < 0)
        return error_setf(error, negative_errno(), "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return error_setf(error, negative_errno(), "wait for %s: %s", argv[0], strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return error_setf(error, -EIO, "%s %s: %s %d", argv[0], argv[1],
                      WIFEXITED(status) ? "exit status" : "killed by signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* libvirt's per-domain directories (the master key QEMU reads at start, its monitor socket)
 * are made inside this one, each owned by its domain's label; Debian makes it 0750
 * libvirt-qemu:libvirt-qemu, which only the default user can enter. */
#define LIBVIRT_QEMU_STATE_DIR "/var/lib/libvirt/qemu"

/* Lets other users traverse, not list, libvirt's domain state directory (o+x, as Fedora ships
 * it), so that a QEMU with a static label reaches its own domain directory there. */
static int let_traverse(char **error)
{
    struct stat st;
    if (stat(LIBVIRT_QEMU_STATE_DIR, &st) < 0)
        return errno == ENOENT ? 0
                               : error_setf(error, negative_errno(), "%s: %s",
                                            LIBVIRT_QEMU_STATE_DIR, strerror(errno));
    if (st.st_mode & S_IXOTH)
        return 0;
    if (chmod(LIBVIRT_QEMU_STATE_DIR, (st.st_mode & 07777) | S_IXOTH) < 0)
        return error_setf(error, negative_errno(), "chmod o+x %s: %s", LIBVIRT_QEMU_STATE_DIR,
                          strerror(errno));
    return 1;
}

int vm_user_ensure(const char *vm, bool *created, bool *dir_opened, char **error)
{
    _cleanup_free_ char *name = NULL, *comment = NULL;
    *created = *dir_opened = false;
    *error = NULL;
    if (vm_user_name(vm, &name) < 0 || asprintf(&comment, "QEMU of ocvm VM %s (libvirt)", vm) < 0)
        return -ENOMEM;
    int r = let_traverse(error);
    *dir_opened = r > 0;
    if (r < 0 || getpwnam(name))
        return r < 0 ? r : 0;
    struct argv a;
    argv_init(&a);
    static const char *const fixed[] = {"/usr/sbin/useradd", "--system",          "--user-group",
                                        "--no-create-home",  "--home-dir",        "/nonexistent",
                                        "--shell",           "/usr/sbin/nologin", "--comment"};
    for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
        argv_add(&a, fixed[i]);
    argv_add(&a, comment);
    if (getgrnam("kvm")) { /* it opens /dev/kvm, as libvirt-qemu's membership does */
        argv_add(&a, "--groups");
        argv_add(&a, "kvm");
    }
    argv_add(&a, name);
    r = argv_error(&a);
    if (r == 0)
        r = run(a.v, error);
    argv_done(&a);
    *created = r == 0;
    return r;
}

int vm_user_remove(const char *vm, char **error)
{
    _cleanup_free_ char *name = NULL;
    *error = NULL;
    if (vm_user_name(vm, &name) < 0)
        return -ENOMEM;
    if (!getpwnam(name))
        return 0;
    char *argv[] = {"/usr/sbin/userdel", name, NULL}; /* its own group goes with it */
    return run(argv, error);
}
