/* runtime_dir: one supervisor per VM (the lock), a private directory (0700, sockets 0600), what a
 * dead supervisor left is cleared, and release leaves nothing behind. Runs against
 * $OCVM_RUNTIME_DIR pointed at a fresh temporary directory. */
#include "launcher/runtime_dir.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[64];
static char vmdir[128]; /* base/openclaw */

static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/ocvm-test-rundir-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(setenv("OCVM_RUNTIME_DIR", base, 1), 0);
    snprintf(vmdir, sizeof(vmdir), "%s/openclaw", base);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    ck_assert_int_eq(system(cmd), 0);
    unsetenv("OCVM_RUNTIME_DIR");
}

static void touch(const char *dir, const char *file)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    close(fd);
}

static bool exists(const char *dir, const char *file)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    return access(p, F_OK) == 0;
}

/* Runs runtime_dir_acquire(NAME) in a child process (another supervisor); returns its result. */
static int acquire_in_child(const char *name)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct runtime_dir rd = {.lock_fd = -1};
        int r = runtime_dir_acquire(name, &rd);
        /* report -r (0..255) through the exit status; never run Check's handlers here */
        _exit(r < 0 ? (-r & 0xff) : 0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return -WEXITSTATUS(status);
}

/* The names users and docs rely on (README, docs/design.md), each spelled once, all distinct. */
START_TEST(test_file_names)
{
    static const char *const want[_RUNTIME_FILE_MAX] = {
        [RUNTIME_LOCK] = "lock",
        [RUNTIME_STATE] = "state.json",
        [RUNTIME_NETSETUP] = "netsetup.json",
        [RUNTIME_SUPERVISOR_LOG] = "supervisor.log",
        [RUNTIME_QMP] = "qmp.sock",
        [RUNTIME_CONSOLE_SOCKET] = "console.sock",
        [RUNTIME_CONSOLE_LOG] = "console.log",
        [RUNTIME_CONSOLE_LOCK] = "console.lock",
        [RUNTIME_VHOST_USER_VSOCK] = "vhost-user-vsock.sock",
        [RUNTIME_HYBRID_VSOCK] = "vsock.sock",
        [RUNTIME_SECRETS] = "secrets",
    };
    for (int f = 0; f < _RUNTIME_FILE_MAX; f++) {
        ck_assert_ptr_nonnull(want[f]);
        ck_assert_str_eq(runtime_file_name((enum runtime_file)f), want[f]);
        for (int g = 0; g < f; g++)
            ck_assert_str_ne(runtime_file_name((enum runtime_file)f),
                             runtime_file_name((enum runtime_file)g));
    }
    ck_assert_ptr_null(runtime_file_name(_RUNTIME_FILE_MAX));
    char *p = runtime_file_path("/run/ocvm/openclaw", RUNTIME_CONSOLE_LOG);
    ck_assert_str_eq(p, "/run/ocvm/openclaw/console.log");
    free(p);
    p = runtime_virtiofs_socket_path("/run/ocvm/openclaw", "secrets");
    ck_assert_str_eq(p, "/run/ocvm/openclaw/virtiofs-secrets.sock");
    free(p);
}
END_TEST

START_TEST(test_path_follows_env)
{
    char *p = NULL;
    ck_assert_int_eq(runtime_dir_path("openclaw", &p), 0);
    ck_assert_str_eq(p, vmdir);
    free(p);
}
END_TEST

START_TEST(test_acquire_creates_private_dir)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert_str_eq(rd.path, vmdir);
    ck_assert_int_ge(rd.lock_fd, 0);
    struct stat st;
    ck_assert_int_eq(lstat(vmdir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_uint_eq(st.st_uid, geteuid());
    ck_assert(exists(vmdir, "lock"));

    char *f = runtime_dir_file(&rd, RUNTIME_STATE);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f + strlen(vmdir), "/state.json");
    ck_assert_int_eq(strncmp(f, vmdir, strlen(vmdir)), 0);
    free(f);

    runtime_dir_release(&rd);
    ck_assert_ptr_null(rd.path);
}
END_TEST

/* The supervisor is found by its lock alone: the kernel names the holder, and so does the file. */
START_TEST(test_lock_holder_is_found)
{
    pid_t pid = 0;
    ck_assert_int_eq(runtime_dir_lock_holder(vmdir, &pid), -ESRCH); /* absent */
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert_int_eq(runtime_dir_lock_holder(vmdir, &pid), 0);
    ck_assert_int_eq(pid, getpid());
    char p[256], buf[32] = "";
    snprintf(p, sizeof(p), "%s/lock", vmdir);
    FILE *f = fopen(p, "re");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    ck_assert_int_eq(atoi(buf), getpid());
    runtime_dir_release(&rd);
    ck_assert_int_eq(runtime_dir_lock_holder(vmdir, &pid), -ESRCH);
}
END_TEST

/* In a pid namespace that does not show the holder (its /proc/locks omits it), the pid in the
 * lock file means nothing: it is given to show, never as the holder to signal. */
static int hidden_holder_child(pid_t written)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("proc", "/proc", "proc", 0, NULL) < 0)
        return 77;
    pid_t pid = 0;
    if (runtime_dir_is_locked(vmdir) != 1)
        return 1;
    if (runtime_dir_lock_holder(vmdir, &pid) != -ESRCH)
        return 2; /* the file's pid was taken for the holder */
    if (runtime_dir_lock_pid_written(vmdir, &pid) != 0 || pid != written)
        return 3;
    return 0;
}

START_TEST(test_hidden_holder_is_not_a_pid)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0); /* writes our pid in the file */
    pid_t self = getpid(), pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0 &&
            unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS) < 0)
            _exit(77);
        pid_t inner = fork(); /* pid 1 of the new namespace, with a /proc of its own */
        if (inner == 0)
            _exit(hidden_holder_child(self));
        int st;
        _exit(inner > 0 && waitpid(inner, &st, 0) == inner && WIFEXITED(st) ? WEXITSTATUS(st) : 4);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    runtime_dir_release(&rd);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        fprintf(stderr, "test_hidden_holder_is_not_a_pid: skipped, no pid namespace here\n");
        return;
    }
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* A directory removed under its holder is made again, locked by it; a present one is left. */
START_TEST(test_check_remakes_removed_dir)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert_int_eq(runtime_dir_check(&rd), 0);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", vmdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 0);
    ck_assert_int_eq(runtime_dir_check(&rd), 1);
    ck_assert(exists(vmdir, "lock"));
    ck_assert_int_eq(acquire_in_child("openclaw"), -EBUSY); /* held again */
    pid_t pid = 0;
    ck_assert_int_eq(runtime_dir_lock_holder(vmdir, &pid), 0);
    ck_assert_int_eq(pid, getpid());
    ck_assert_int_eq(runtime_dir_check(&rd), 0);
    runtime_dir_release(&rd);
    ck_assert(!exists(base, "openclaw"));
}
END_TEST

START_TEST(test_acquire_tightens_existing_dir)
{
    /* a directory someone made world-readable is made private again */
    ck_assert_int_eq(mkdir(vmdir, 0755), 0);
    ck_assert_int_eq(chmod(vmdir, 0777), 0);
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    struct stat st;
    ck_assert_int_eq(stat(vmdir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    runtime_dir_release(&rd);
}
END_TEST

START_TEST(test_second_supervisor_is_refused)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    touch(vmdir, "state.json");
    ck_assert_int_eq(acquire_in_child("openclaw"), -EBUSY);
    /* the refused supervisor did not clear the live one's files */
    ck_assert(exists(vmdir, "state.json"));
    ck_assert(exists(vmdir, "lock"));
    /* and the same process asking again (another open of the lock) is refused too */
    struct runtime_dir rd2 = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd2), -EBUSY);
    ck_assert_ptr_null(rd2.path);
    /* another VM's name is independent */
    ck_assert_int_eq(acquire_in_child("other"), 0);

    runtime_dir_release(&rd);
    ck_assert_int_eq(acquire_in_child("openclaw"), 0);
}
END_TEST

START_TEST(test_is_locked)
{
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 0); /* absent */
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 1);
    /* asking does not take the lock away from its holder */
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 1);
    ck_assert_int_eq(acquire_in_child("openclaw"), -EBUSY);
    runtime_dir_release(&rd);
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 0);

    /* a lock file nobody holds (a supervisor that died) is not a live VM */
    ck_assert_int_eq(mkdir(vmdir, 0700), 0);
    touch(vmdir, "lock");
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 0);
}
END_TEST

START_TEST(test_release_removes_everything)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    touch(vmdir, "state.json");
    touch(vmdir, "console.log");
    /* the staged secrets: a directory of 0400 files */
    char *secrets = runtime_dir_file(&rd, RUNTIME_SECRETS), key[700];
    ck_assert_int_eq(mkdir(secrets, 0700), 0);
    snprintf(key, sizeof(key), "%s/api_key", secrets);
    int kfd = open(key, O_WRONLY | O_CREAT | O_CLOEXEC, 0400);
    ck_assert_int_ge(kfd, 0);
    close(kfd);
    free(secrets);
    char *sock = runtime_dir_file(&rd, RUNTIME_QMP);
    int fd = -1;
    ck_assert_int_eq(runtime_dir_listen(sock, &fd), 0);
    close(fd);
    free(sock);
    runtime_dir_release(&rd);
    struct stat st;
    ck_assert_int_eq(lstat(vmdir, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    runtime_dir_release(&rd); /* a second release is harmless */
}
END_TEST

START_TEST(test_acquire_clears_stale_files)
{
    /* what a supervisor that was SIGKILLed leaves: files and an unheld lock */
    ck_assert_int_eq(mkdir(vmdir, 0700), 0);
    touch(vmdir, "lock");
    touch(vmdir, "state.json");
    touch(vmdir, "qmp.sock");
    touch(vmdir, "console.sock");
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert(!exists(vmdir, "state.json"));
    ck_assert(!exists(vmdir, "qmp.sock"));
    ck_assert(!exists(vmdir, "console.sock"));
    ck_assert(exists(vmdir, "lock"));
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 1);
    runtime_dir_release(&rd);
}
END_TEST

START_TEST(test_clean_stale)
{
    ck_assert_int_eq(mkdir(vmdir, 0700), 0);
    touch(vmdir, "lock");
    touch(vmdir, "state.json");
    touch(vmdir, "qmp.sock");
    ck_assert_int_eq(runtime_dir_clean_stale(vmdir), 0);
    ck_assert_int_eq(access(vmdir, F_OK), -1);

    /* without a lock file at all (a supervisor killed before it made one) */
    ck_assert_int_eq(mkdir(vmdir, 0700), 0);
    touch(vmdir, "state.json");
    ck_assert_int_eq(runtime_dir_clean_stale(vmdir), 0);
    ck_assert_int_eq(access(vmdir, F_OK), -1);
}
END_TEST

START_TEST(test_clean_stale_spares_live_vm)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    touch(vmdir, "state.json");
    ck_assert_int_eq(runtime_dir_clean_stale(vmdir), -EBUSY);
    ck_assert(exists(vmdir, "state.json"));
    ck_assert(exists(vmdir, "lock"));
    ck_assert_int_eq(runtime_dir_is_locked(vmdir), 1);
    runtime_dir_release(&rd);
}
END_TEST

START_TEST(test_listen)
{
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), 0);
    char *p = runtime_dir_file(&rd, RUNTIME_QMP);
    ck_assert_ptr_nonnull(p);
    touch(vmdir, "qmp.sock"); /* a leftover file at the path is replaced */
    mode_t old = umask(0);    /* the socket is 0600 whatever the caller's umask */
    int lfd = -1;
    ck_assert_int_eq(runtime_dir_listen(p, &lfd), 0);
    ck_assert_uint_eq(umask(old), 0); /* and the umask is given back */
    ck_assert_int_ge(lfd, 0);
    struct stat st;
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    ck_assert(fcntl(lfd, F_GETFL) & O_NONBLOCK);

    /* non-blocking: nothing to accept yet */
    ck_assert_int_eq(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
    ck_assert_int_eq(errno, EAGAIN);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(write(c, "hi", 2), 2);
    char buf[2];
    ck_assert_int_eq(read(a, buf, 2), 2);
    ck_assert_int_eq(memcmp(buf, "hi", 2), 0);
    close(a);
    close(c);
    close(lfd);
    free(p);
    runtime_dir_release(&rd);
}
END_TEST

START_TEST(test_listen_path_length)
{
    const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1; /* 107 */
    char p[300];
    /* base + "/" + a name padded so the whole path is exactly MAX bytes */
    size_t bl = strlen(base);
    ck_assert_uint_lt(bl + 2, max);
    snprintf(p, sizeof(p), "%s/", base);
    memset(p + bl + 1, 's', max - bl - 1);
    p[max] = '\0';
    int fd = -1;
    ck_assert_int_eq(runtime_dir_listen(p, &fd), 0);
    close(fd);

    p[max] = 's';
    p[max + 1] = '\0';
    fd = -1;
    ck_assert_int_eq(runtime_dir_listen(p, &fd), -ENAMETOOLONG);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(access(p, F_OK), -1); /* nothing created, nothing truncated onto */
}
END_TEST

START_TEST(test_refuses_symlink)
{
    char target[160];
    snprintf(target, sizeof(target), "%s/elsewhere", base);
    ck_assert_int_eq(mkdir(target, 0755), 0);
    touch(target, "precious");
    ck_assert_int_eq(symlink(target, vmdir), 0);
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), -EPERM);
    ck_assert_ptr_null(rd.path);
    /* the symlink's target is left alone */
    ck_assert(exists(target, "precious"));
    ck_assert(!exists(target, "lock"));
    struct stat st;
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0755);
}
END_TEST

START_TEST(test_refuses_regular_file)
{
    touch(base, "openclaw");
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_lt(runtime_dir_acquire("openclaw", &rd), 0);
    ck_assert_ptr_null(rd.path);
}
END_TEST

START_TEST(test_refuses_foreign_owner)
{
    if (geteuid() != 0) { /* only root can make a directory owned by someone else */
        fprintf(stderr, "test_refuses_foreign_owner: skipped, needs root\n");
        return;
    }
    ck_assert_int_eq(mkdir(vmdir, 0755), 0);
    touch(vmdir, "theirs");
    ck_assert_int_eq(chown(vmdir, 65534, 65534), 0);
    struct runtime_dir rd = {.lock_fd = -1};
    ck_assert_int_eq(runtime_dir_acquire("openclaw", &rd), -EPERM);
    ck_assert(exists(vmdir, "theirs"));
    struct stat st;
    ck_assert_int_eq(stat(vmdir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0755);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runtime_dir");
    TCase *tc = tcase_create("runtime_dir");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_file_names);
    tcase_add_test(tc, test_path_follows_env);
    tcase_add_test(tc, test_acquire_creates_private_dir);
    tcase_add_test(tc, test_acquire_tightens_existing_dir);
    tcase_add_test(tc, test_second_supervisor_is_refused);
    tcase_add_test(tc, test_is_locked);
    tcase_add_test(tc, test_release_removes_everything);
    tcase_add_test(tc, test_acquire_clears_stale_files);
    tcase_add_test(tc, test_clean_stale);
    tcase_add_test(tc, test_clean_stale_spares_live_vm);
    tcase_add_test(tc, test_listen);
    tcase_add_test(tc, test_listen_path_length);
    tcase_add_test(tc, test_refuses_symlink);
    tcase_add_test(tc, test_refuses_regular_file);
    tcase_add_test(tc, test_refuses_foreign_owner);
    tcase_add_test(tc, test_lock_holder_is_found);
    tcase_add_test(tc, test_check_remakes_removed_dir);
    tcase_add_test(tc, test_hidden_holder_is_not_a_pid);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
