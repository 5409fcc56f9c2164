/* run_log: what the supervisor writes on stderr reaches the caller as it comes, the kept log and
 * the runtime directory's copy; the caller is let go at the verdict; the run before is kept as
 * NAME.log.1; a run is bounded; a kept log that cannot be made costs nothing else. Each test runs
 * in its own process (Check's fork), so moving stderr around stays there. */
#include "launcher/run_log.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64];
static char rundir_log[128], kept[128];

static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/ocvm-test-runlog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    char logdir[100];
    snprintf(logdir, sizeof(logdir), "%s/log/deeper", base);
    ck_assert_int_eq(setenv("OCVM_LOG_DIR", logdir, 1), 0);
    snprintf(rundir_log, sizeof(rundir_log), "%s/supervisor.log", base);
    snprintf(kept, sizeof(kept), "%s/vm.log", logdir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    ck_assert_int_eq(system(cmd), 0);
    unsetenv("OCVM_LOG_DIR");
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static char buf[1 << 21];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

/* Reads FD (blocking) until WANT is seen or the pipe ends; returns what came. */
static char *read_until(int fd, const char *want)
{
    static char buf[65536];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (want && strstr(buf, want))
            break;
    }
    buf[len] = '\0';
    return strdup(buf);
}

/* stderr becomes a pipe we read: the caller's side */
static int caller_pipe(void)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
    close(p[1]);
    return p[0];
}

START_TEST(test_path)
{
    char *p;
    ck_assert_int_eq(run_log_path("vm", &p), 0);
    ck_assert_str_eq(p, kept);
    free(p);
    unsetenv("OCVM_LOG_DIR");
    ck_assert_int_eq(run_log_path("vm", &p), 0);
    if (geteuid() == 0)
        ck_assert_str_eq(p, "/var/log/ocvm/vm.log");
    free(p);
}
END_TEST

START_TEST(test_lines_reach_caller_and_logs_then_caller_is_let_go)
{
    int caller = caller_pipe();
    struct run_log *l;
    char *error = NULL;
    ck_assert_int_eq(run_log_open("vm", rundir_log, &l, &error), 0);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(run_log_kept_path(l), kept);
    fprintf(stderr, "stage one\n");
    char *got = read_until(caller, "stage one\n"); /* before anything else happens: live */
    ck_assert_str_eq(got, "stage one\n");
    free(got);
    fprintf(stderr, "the verdict\n");
    run_log_detach_caller(l);
    got = read_until(caller, NULL); /* to the end of the pipe: nothing holds it any more */
    ck_assert_str_eq(got, "the verdict\n");
    free(got);
    fprintf(stderr, "after ready\n");
    run_log_close(l);
    char *k = slurp(kept), *r = slurp(rundir_log);
    ck_assert_str_eq(k, "stage one\nthe verdict\nafter ready\n");
    ck_assert_str_eq(r, k);
    struct stat st;
    ck_assert_int_eq(stat(kept, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    free(k);
    free(r);
    close(caller);
}
END_TEST

START_TEST(test_run_before_is_kept_as_dot_1)
{
    for (int run = 1; run <= 3; run++) {
        int caller = caller_pipe();
        struct run_log *l;
        char *error = NULL;
        ck_assert_int_eq(run_log_open("vm", NULL, &l, &error), 0);
        fprintf(stderr, "run %d\n", run);
        run_log_close(l); /* a foreground run: stderr is the caller's again */
        char *got = read_until(caller, "\n");
        ck_assert_ptr_nonnull(strstr(got, "run"));
        free(got);
        close(caller);
    }
    char old[160];
    snprintf(old, sizeof(old), "%s.1", kept);
    char *k = slurp(kept), *o = slurp(old);
    ck_assert_str_eq(k, "run 3\n");
    ck_assert_str_eq(o, "run 2\n");
    free(k);
    free(o);
    ck_assert_int_eq(access(rundir_log, F_OK), -1); /* a foreground run has no RUNDIR copy */
}
END_TEST

START_TEST(test_a_long_run_is_bounded)
{
    int devnull = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(dup2(devnull, STDERR_FILENO), 0);
    struct run_log *l;
    char *error = NULL;
    ck_assert_int_eq(run_log_open("vm", NULL, &l, &error), 0);
    char line[1025];
    memset(line, 'x', 1023);
    line[1023] = '\n';
    line[1024] = '\0';
    for (int i = 0; i < 1500; i++) /* 1.5 MiB */
        fputs(line, stderr);
    run_log_close(l);
    char old[160];
    snprintf(old, sizeof(old), "%s.1", kept);
    struct stat a, b;
    ck_assert_int_eq(stat(kept, &a), 0);
    ck_assert_int_eq(stat(old, &b), 0);
    ck_assert_int_ge(b.st_size, RUN_LOG_MAX_BYTES);
    ck_assert_int_lt(b.st_size, RUN_LOG_MAX_BYTES + 16384);
    ck_assert_int_eq(a.st_size + b.st_size, 1500 * 1024);
}
END_TEST

START_TEST(test_no_kept_log_costs_nothing_else)
{
    ck_assert_int_eq(setenv("OCVM_LOG_DIR", "/proc/no-such-dir", 1), 0);
    int caller = caller_pipe();
    struct run_log *l;
    char *error = NULL;
    ck_assert_int_eq(run_log_open("vm", NULL, &l, &error), 0);
    ck_assert_ptr_null(run_log_kept_path(l));
    fprintf(stderr, "still here\n");
    char *got = read_until(caller, "still here\n");
    ck_assert_ptr_nonnull(
        strstr(got, "the log of this run is not kept in /proc/no-such-dir/vm.log"));
    ck_assert_ptr_nonnull(strstr(got, "still here\n"));
    free(got);
    run_log_close(l);
    close(caller);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_log");
    TCase *tc = tcase_create("run_log");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_path);
    tcase_add_test(tc, test_lines_reach_caller_and_logs_then_caller_is_let_go);
    tcase_add_test(tc, test_run_before_is_kept_as_dot_1);
    tcase_add_test(tc, test_a_long_run_is_bounded);
    tcase_add_test(tc, test_no_kept_log_costs_nothing_else);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
