/* qemu_proc: a VM's QEMU is recognised by its whole command line (the -name tag and the console
 * log in its runtime directory), never by a process name or a prefix of another VM's, and only
 * when it runs the configured binary (also once upgraded) as us or as the VM's user; its
 * supervisor by the lock it holds, or as an ocvm binary (also once upgraded). The processes are
 * real: copies of /bin/sh given a QEMU's command line. */
#include "launcher/qemu_proc.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ELEMENTS = 4 };

/* WORDS joined as /proc/PID/cmdline holds them; returns the length. */
static size_t cmdline(char *buf, size_t size, const char *const *words)
{
    size_t len = 0;
    for (; *words; words++) {
        size_t n = strlen(*words) + 1;
        ck_assert_uint_le(len + n, size);
        memcpy(buf + len, *words, n);
        len += n;
    }
    return len;
}

static const char *const good[] = {
    "qemu-system-x86_64",
    "-name",
    "demo,process=ocvm-demo",
    "-chardev",
    "socket,id=console,fd=4,server=on,wait=off,logfile=/run/ocvm/demo/console.log,logappend=on",
    NULL};

START_TEST(test_matches_its_own)
{
    char buf[1024];
    size_t n = cmdline(buf, sizeof(buf), good);
    ck_assert(qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
}
END_TEST

START_TEST(test_refuses_others)
{
    char buf[1024];
    size_t n = cmdline(buf, sizeof(buf), good);
    /* another VM, or the same name under another runtime directory (another user, a test) */
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "dem", "/run/ocvm/dem"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/tmp/x/run/demo"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/de"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm"));
    /* the -name tag alone, or the path alone, is not enough */
    const char *const no_log[] = {"qemu-system-x86_64", "-name", "demo,process=ocvm-demo", NULL};
    n = cmdline(buf, sizeof(buf), no_log);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    const char *const no_name[] = {"sh", "-c", "logfile=/run/ocvm/demo/console.log,", NULL};
    n = cmdline(buf, sizeof(buf), no_name);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    /* the tag must follow -name, whole */
    const char *const loose[] = {"x",
                                 "demo,process=ocvm-demo",
                                 "-name",
                                 "demo,process=ocvm-demox",
                                 "logfile=/run/ocvm/demo/console.log,",
                                 NULL};
    n = cmdline(buf, sizeof(buf), loose);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    /* a cut-off last word is not read past its end */
    n = cmdline(buf, sizeof(buf), good);
    ck_assert(!qemu_proc_cmdline_matches(buf, n - 1, "demo", "/run/ocvm/demo"));
}
END_TEST

/* A runtime directory with a comma is matched in its escaped form, as QEMU's option holds it. */
START_TEST(test_escaped_dir)
{
    const char *const w[] = {"q", "-name", "a,process=ocvm-a",
                             "socket,logfile=/t/x,,y/a/console.log,logappend=on", NULL};
    char buf[512];
    size_t n = cmdline(buf, sizeof(buf), w);
    ck_assert(qemu_proc_cmdline_matches(buf, n, "a", "/t/x,y/a"));
}
END_TEST

/* Nothing here is anyone's QEMU; a pid that is not one is never signalled. */
START_TEST(test_find_and_stop_nothing)
{
    struct qemu_proc_id id;
    ck_assert_int_eq(
        qemu_proc_id_init(&id, "nosuchvm", "/nonexistent/ocvm/nosuchvm", "/bin/sh", NULL), 0);
    pid_t pids[4];
    ck_assert_int_eq(qemu_proc_find(&id, pids, 4), 0);
    ck_assert_int_eq(qemu_proc_stop(&id, getpid(), 0), -ESRCH);
    qemu_proc_id_done(&id);
}
END_TEST

/* /proc/PID/exe of a replaced binary ends in " (deleted)": still that binary, and still ocvm. */
START_TEST(test_exe_names)
{
    ck_assert(qemu_proc_exe_is("/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-system-x86_64"));
    ck_assert(
        qemu_proc_exe_is("/usr/bin/qemu-system-x86_64 (deleted)", "/usr/bin/qemu-system-x86_64"));
    ck_assert(!qemu_proc_exe_is("/usr/bin/qemu-system-x86_64x", "/usr/bin/qemu-system-x86_64"));
    ck_assert(!qemu_proc_exe_is("/tmp/qemu-system-x86_64", "/usr/bin/qemu-system-x86_64"));
    ck_assert(!qemu_proc_exe_is("/usr/bin/qemu (deleted) x", "/usr/bin/qemu"));
    ck_assert(qemu_proc_exe_is_ocvm("/usr/bin/ocvm"));
    ck_assert(qemu_proc_exe_is_ocvm("/usr/bin/ocvm (deleted)"));
    ck_assert(!qemu_proc_exe_is_ocvm("/usr/bin/ocvm-evil"));
    ck_assert(!qemu_proc_exe_is_ocvm("/usr/bin/bash"));
}
END_TEST

static char tmp[64], rundir[128], sh_copy[128]; /* TMP/qemu-system-x86_64: a copy of /bin/sh */
static char fake_qemu[1024];                    /* runs sh_copy with a QEMU's command line */
static pid_t started[4];

/* SRC copied to DST, executable; a DST already there is replaced (a new inode: an upgrade). */
static void copy_binary(const char *src, const char *dst)
{
    char part[256];
    snprintf(part, sizeof(part), "%s.part", dst);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ck_assert_int_ge(in, 0);
    ck_assert_int_ge(out, 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    ck_assert_int_eq(rename(part, dst), 0);
}

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/ocvm-test-qproc-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    ck_assert_int_eq(chmod(tmp, 0755), 0); /* another user runs its binaries too */
    snprintf(rundir, sizeof(rundir), "%s/run/demo", tmp);
    snprintf(sh_copy, sizeof(sh_copy), "%s/qemu-system-x86_64", tmp);
    copy_binary("/bin/sh", sh_copy);
    /* it waits in a builtin (no child process) until killed */
    snprintf(fake_qemu, sizeof(fake_qemu),
             "'%s' -c 'read x <%s/fifo' qemu -name demo,process=ocvm-demo -chardev "
             "socket,id=console,logfile=%s/console.log,logappend=on",
             sh_copy, tmp, rundir);
    char fifo[128];
    snprintf(fifo, sizeof(fifo), "%s/fifo", tmp);
    ck_assert_int_eq(mkfifo(fifo, 0666), 0);
    ck_assert_int_eq(chmod(fifo, 0666), 0);
    memset(started, 0, sizeof(started));
}

static void teardown(void)
{
    for (size_t i = 0; i < ELEMENTS; i++)
        if (started[i] > 0) {
            kill(-started[i], SIGKILL); /* its group: a fake supervisor's QEMU too */
            waitpid(started[i], NULL, 0);
        }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs `exec CMD` in /bin/sh as UID ((uid_t)-1: as we are), in a process group of its own. */
static pid_t start(const char *cmd, uid_t uid)
{
    char line[2048];
    snprintf(line, sizeof(line), "exec %s", cmd);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        if (uid != (uid_t)-1 && (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
            _exit(126);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    for (size_t i = 0; i < ELEMENTS; i++)
        if (!started[i]) {
            started[i] = pid;
            break;
        }
    return pid;
}

/* How many QEMUs ID finds (into PIDS, 4), waiting up to 3 s for WANT of them. */
static int find(const struct qemu_proc_id *id, pid_t *pids, int want)
{
    int n = 0;
    for (int i = 0; i < 150 && (n = qemu_proc_find(id, pids, 4)) != want; i++)
        usleep(20000);
    return n;
}

/* The right command line is not enough: the binary must be the configured one. */
START_TEST(test_found_by_binary)
{
    pid_t qemu = start(fake_qemu, (uid_t)-1), pids[4];
    struct qemu_proc_id id, other, by_path;
    ck_assert_int_eq(qemu_proc_id_init(&id, "demo", rundir, sh_copy, NULL), 0);
    ck_assert_int_eq(find(&id, pids, 1), 1);
    ck_assert_int_eq(pids[0], qemu);
    ck_assert(qemu_proc_is(&id, qemu));
    /* the same command line run by another binary (an impostor) is not the VM's QEMU */
    ck_assert_int_eq(qemu_proc_id_init(&other, "demo", rundir, "/bin/true", NULL), 0);
    ck_assert_int_eq(qemu_proc_find(&other, pids, 4), 0);
    ck_assert_int_eq(qemu_proc_stop(&other, qemu, 0), -ESRCH);
    ck_assert_int_eq(kill(qemu, 0), 0); /* not signalled */
    /* a bare machine.qemu is looked up in $PATH, as the launcher's execvp does */
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL, newpath[256];
    snprintf(newpath, sizeof(newpath), "/nonexistent:%s:/usr/bin", tmp);
    setenv("PATH", newpath, 1);
    ck_assert_int_eq(qemu_proc_id_init(&by_path, "demo", rundir, "qemu-system-x86_64", NULL), 0);
    if (path)
        setenv("PATH", path, 1);
    else
        unsetenv("PATH");
    free(path);
    ck_assert_str_eq(by_path.exe, sh_copy);
    ck_assert_int_eq(qemu_proc_find(&by_path, pids, 4), 1);
    qemu_proc_id_done(&id);
    qemu_proc_id_done(&other);
    qemu_proc_id_done(&by_path);
}
END_TEST

/* A QEMU another user runs (any local user can start one) is not root's VM's, unless that user
 * is the VM's machine.user. */
START_TEST(test_found_by_user)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_found_by_user: skipped, needs root (to run as another user)\n");
        return;
    }
    pid_t qemu = start(fake_qemu, 65534), pids[4];
    struct qemu_proc_id mine, theirs;
    ck_assert_int_eq(qemu_proc_id_init(&mine, "demo", rundir, sh_copy, NULL), 0);
    ck_assert_int_eq(qemu_proc_id_init(&theirs, "demo", rundir, sh_copy, "nobody"), 0);
    ck_assert_int_eq(find(&theirs, pids, 1), 1); /* it runs: as machine.user, it is the VM's */
    ck_assert_int_eq(pids[0], qemu);
    ck_assert_int_eq(qemu_proc_find(&mine, pids, 4), 0);
    ck_assert_int_eq(qemu_proc_stop(&mine, qemu, 0), -ESRCH);
    ck_assert_int_eq(kill(qemu, 0), 0); /* not signalled */
    qemu_proc_id_done(&mine);
    qemu_proc_id_done(&theirs);
}
END_TEST

/* A package upgrade replaces QEMU's binary: the QEMU still running from the old one is found,
 * and stopped, all the same. */
START_TEST(test_found_after_upgrade)
{
    pid_t qemu = start(fake_qemu, (uid_t)-1), pids[4];
    struct qemu_proc_id id;
    ck_assert_int_eq(qemu_proc_id_init(&id, "demo", rundir, sh_copy, NULL), 0);
    ck_assert_int_eq(find(&id, pids, 1), 1);
    copy_binary("/bin/sh", sh_copy);
    char link[PATH_MAX], exe[64];
    snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)qemu);
    ssize_t n = readlink(exe, link, sizeof(link) - 1);
    ck_assert_int_gt(n, 0);
    link[n] = '\0';
    ck_assert_ptr_nonnull(strstr(link, " (deleted)"));
    ck_assert_int_eq(qemu_proc_find(&id, pids, 4), 1);
    ck_assert_int_eq(qemu_proc_stop(&id, qemu, 0), 0);
    ck_assert_int_eq(waitpid(qemu, NULL, 0), qemu);
    started[0] = 0;
    qemu_proc_id_done(&id);
}
END_TEST

/* The QEMU among PIDS (N) that is not in NOT (M), or 0. */
static pid_t new_one(const pid_t *pids, int n, const pid_t * not, int m)
{
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < m; j++)
            seen |= pids[i] == not [j];
        if (!seen)
            return pids[i];
    }
    return 0;
}

/* The supervisor: with its runtime directory gone, a parent that is ocvm (also once upgraded),
 * never another parent; with the directory, whoever holds its lock, whatever its binary. */
START_TEST(test_supervisor)
{
    char ocvm[128], notocvm[128], cmd[2048];
    snprintf(ocvm, sizeof(ocvm), "%s/ocvm", tmp);
    snprintf(notocvm, sizeof(notocvm), "%s/ocvm-evil", tmp);
    copy_binary("/bin/sh", ocvm);
    copy_binary("/bin/sh", notocvm);
    struct qemu_proc_id id;
    ck_assert_int_eq(qemu_proc_id_init(&id, "demo", rundir, sh_copy, NULL), 0);
    pid_t pids[4], seen[4];

    /* the supervisor forks QEMU, then waits, as ocvm does */
    snprintf(cmd, sizeof(cmd), "'%s' -c \"%s & read x <%s/fifo\"", ocvm, fake_qemu, tmp);
    pid_t sup = start(cmd, (uid_t)-1);
    ck_assert_int_eq(find(&id, seen, 1), 1);
    ck_assert_int_eq(qemu_proc_supervisor(seen[0], rundir), sup);
    copy_binary("/bin/sh", ocvm); /* ocvm upgraded under its running supervisor */
    ck_assert_int_eq(qemu_proc_supervisor(seen[0], rundir), sup);

    /* a parent that is not ocvm runs no VM: its QEMU is an orphan */
    snprintf(cmd, sizeof(cmd), "'%s' -c \"%s & read x <%s/fifo\"", notocvm, fake_qemu, tmp);
    start(cmd, (uid_t)-1);
    ck_assert_int_eq(find(&id, pids, 2), 2);
    seen[1] = new_one(pids, 2, seen, 1);
    ck_assert_int_gt(seen[1], 0);
    ck_assert_int_eq(qemu_proc_supervisor(seen[1], rundir), 0);

    /* with its runtime directory, the supervisor is the lock's holder, whatever its binary */
    snprintf(cmd, sizeof(cmd), "%s/run", tmp);
    ck_assert_int_eq(mkdir(cmd, 0700), 0);
    ck_assert_int_eq(mkdir(rundir, 0700), 0);
    snprintf(cmd, sizeof(cmd), "flock '%s/lock' %s", rundir, fake_qemu);
    pid_t holder = start(cmd, (uid_t)-1);
    ck_assert_int_eq(find(&id, pids, 3), 3);
    pid_t held = new_one(pids, 3, seen, 2);
    ck_assert_int_gt(held, 0);
    ck_assert_int_eq(qemu_proc_supervisor(held, rundir), holder);
    ck_assert_int_eq(qemu_proc_supervisor(seen[1], rundir), 0);
    qemu_proc_id_done(&id);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qemu_proc");
    TCase *tc = tcase_create("qemu_proc");
    tcase_add_test(tc, test_matches_its_own);
    tcase_add_test(tc, test_refuses_others);
    tcase_add_test(tc, test_escaped_dir);
    tcase_add_test(tc, test_find_and_stop_nothing);
    tcase_add_test(tc, test_exe_names);
    suite_add_tcase(s, tc);
    TCase *procs = tcase_create("processes");
    tcase_add_checked_fixture(procs, setup, teardown);
    tcase_add_test(procs, test_found_by_binary);
    tcase_add_test(procs, test_found_by_user);
    tcase_add_test(procs, test_found_after_upgrade);
    tcase_add_test(procs, test_supervisor);
    suite_add_tcase(s, procs);
    return run_suite(s);
}
