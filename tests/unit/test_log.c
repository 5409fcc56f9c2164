/* log: the one logger. What a user reads on stderr (program, VM, stage, message on one line),
 * what the journal receives when stderr is the journal (native fields), levels, and rate limits
 * that say how much they held back. */
#include "common/cleanup.h"
#include "common/log.h"

#include "tests/support/run_suite.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/ocvm-test-log-XXXXXX";
static char err_path[600];
static int saved_stderr = -1;

/* stderr goes to a file of the test's, read back by captured(). */
static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(err_path, sizeof(err_path), "%s/stderr", tmpdir);
    int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    unsetenv("JOURNAL_STREAM");
    unsetenv("OCVM_LOG_LEVEL");
    log_setup("ocvm");
    log_set_vm(NULL);
    log_set_qemu_pid(0);
    log_set_max_level(LOG_INFO);
}

static void teardown(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    strcpy(tmpdir, "/tmp/ocvm-test-log-XXXXXX");
}

static char *captured(void)
{
    fflush(stderr);
    FILE *f = fopen(err_path, "re");
    ck_assert_ptr_nonnull(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

START_TEST(line_names_program_vm_and_stage)
{
    log_msg(LOG_ERR, "netsetup", "create tap %s: %s", "vm-openclaw", "Operation not permitted");
    log_set_vm("openclaw");
    log_error("netsetup", "create tap vm-openclaw: Operation not permitted");
    log_info(NULL, "ready in %.1f s", 3.2);
    log_setup("ocvm-guest");
    log_set_vm(NULL);
    log_warning("relay", "two\nlines");
    _cleanup_free_ char *out = captured();
    ck_assert_str_eq(out, "ocvm: netsetup: create tap vm-openclaw: Operation not permitted\n"
                          "ocvm: openclaw: netsetup: create tap vm-openclaw: Operation not "
                          "permitted\n"
                          "ocvm: openclaw: ready in 3.2 s\n"
                          "ocvm-guest: relay: two lines\n");
}
END_TEST

START_TEST(levels)
{
    log_debug("x", "hidden");
    log_set_max_level(LOG_WARNING);
    log_info("x", "hidden too");
    log_warning("x", "shown");
    setenv("OCVM_LOG_LEVEL", "debug", 1);
    log_setup("ocvm");
    ck_assert_int_eq(log_get_max_level(), LOG_DEBUG);
    log_debug("x", "now shown");
    setenv("OCVM_LOG_LEVEL", "err", 1);
    log_setup("ocvm");
    log_warning("x", "hidden again");
    log_error("x", "error shown");
    _cleanup_free_ char *out = captured();
    ck_assert_str_eq(out, "ocvm: x: shown\nocvm: x: now shown\nocvm: x: error shown\n");
}
END_TEST

/* BURST lines per interval go out; the rest are counted and the next line says how many. */
START_TEST(ratelimit_counts_what_it_held_back)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(5000, 2);
    uint64_t held = 99;
    ck_assert(log_ratelimit_pass(&rl, 1000, &held));
    ck_assert_uint_eq(held, 0);
    ck_assert(log_ratelimit_pass(&rl, 1001, &held));
    for (int i = 0; i < 7; i++)
        ck_assert(!log_ratelimit_pass(&rl, 2000 + (uint64_t)i, &held));
    ck_assert(!log_ratelimit_pass(&rl, 5999, &held));
    ck_assert(log_ratelimit_pass(&rl, 6000, &held)); /* a new window */
    ck_assert_uint_eq(held, 8);
    ck_assert(log_ratelimit_pass(&rl, 6001, &held));
    ck_assert_uint_eq(held, 0);
    ck_assert(!log_ratelimit_pass(&rl, 6002, NULL));
}
END_TEST

START_TEST(ratelimited_line_says_how_many)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(60000, 1);
    ck_assert(log_ratelimited(&rl, LOG_WARNING, "vsock-backend", "bad packet %d", 1));
    for (int i = 2; i <= 4; i++)
        ck_assert(!log_ratelimited(&rl, LOG_WARNING, "vsock-backend", "bad packet %d", i));
    rl.window_start_ms -= 60000; /* as if a minute passed */
    ck_assert(log_ratelimited(&rl, LOG_WARNING, "vsock-backend", "bad packet %d", 5));
    _cleanup_free_ char *out = captured();
    ck_assert_str_eq(out, "ocvm: vsock-backend: bad packet 1\n"
                          "ocvm: vsock-backend: bad packet 5 (3 similar messages suppressed)\n");
}
END_TEST

/* A datagram socket at TMPDIR/journal.sock standing in for the journal (its path into SA),
 * stderr made the journal's stream (JOURNAL_STREAM), and the logger set up for VM "openclaw"
 * with that socket: returns the socket. */
static int journal_listen(struct sockaddr_un *sa)
{
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/journal.sock", tmpdir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    struct stat st;
    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    char stream[64];
    snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", stream, 1);
    log_setup("ocvm");
    log_set_journal_socket(sa->sun_path);
    log_set_vm("openclaw");
    return fd;
}

/* With stderr the journal's stream, a line is one native datagram with ocvm's fields. */
START_TEST(journal_gets_fields)
{
    struct sockaddr_un sa;
    int fd = journal_listen(&sa);
    const char *sock_path = sa.sun_path;
    log_warning("netsetup", "uplink %s is down", "eth0");

    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_str_eq(buf, "PRIORITY=4\nSYSLOG_IDENTIFIER=ocvm\n"
                          "MESSAGE=ocvm: openclaw: netsetup: uplink eth0 is down\n"
                          "OCVM_VM=openclaw\nOCVM_STAGE=netsetup\n");
    _cleanup_free_ char *out = captured();
    ck_assert_str_eq(out, ""); /* not twice */

    /* the journal gone: the line still reaches stderr */
    close(fd);
    unlink(sock_path);
    log_error(NULL, "still heard");
    _cleanup_free_ char *out2 = captured();
    ck_assert_str_eq(out2, "ocvm: openclaw: still heard\n");

    /* a JOURNAL_STREAM that names another stream is not the journal */
    setenv("JOURNAL_STREAM", "1:2", 1);
    log_setup("ocvm");
    ck_assert_int_ge(fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    log_set_journal_socket(sock_path);
    log_error(NULL, "plain");
    ck_assert_int_lt(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
    close(fd);
    _cleanup_free_ char *out3 = captured();
    ck_assert_str_eq(out3, "ocvm: openclaw: still heard\nocvm: openclaw: plain\n");
}
END_TEST

/* While a QEMU runs, each journal entry names it (OCVM_PID_QEMU=); before and after, the field is
 * left out, and the line on stderr never changes. */
START_TEST(journal_names_the_qemu)
{
    struct sockaddr_un sa;
    int fd = journal_listen(&sa);
    char buf[4096];
    ssize_t n;

    log_set_qemu_pid(4242);
    log_info(NULL, "[%6.3fs] %s", 0.002, "QEMU started");
    ck_assert_int_gt(n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 0);
    buf[n] = 0;
    ck_assert_str_eq(buf, "PRIORITY=6\nSYSLOG_IDENTIFIER=ocvm\n"
                          "MESSAGE=ocvm: openclaw: [ 0.002s] QEMU started\n"
                          "OCVM_VM=openclaw\nOCVM_STAGE=\nOCVM_PID_QEMU=4242\n");

    log_set_qemu_pid(0); /* it exited */
    log_warning(NULL, "QEMU exited with status 1; restart 1/5 in 500 ms");
    ck_assert_int_gt(n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 0);
    buf[n] = 0;
    ck_assert_ptr_null(strstr(buf, "OCVM_PID_QEMU"));

    log_set_qemu_pid(4243); /* the next one */
    log_error("guest", "gone");
    ck_assert_int_gt(n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 0);
    buf[n] = 0;
    ck_assert_ptr_nonnull(strstr(buf, "\nOCVM_STAGE=guest\nOCVM_PID_QEMU=4243\n"));
    close(fd);

    /* not the journal: stderr reads as it always did */
    unsetenv("JOURNAL_STREAM");
    log_setup("ocvm");
    log_info(NULL, "ready");
    _cleanup_free_ char *out = captured();
    ck_assert_str_eq(out, "ocvm: openclaw: ready\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, line_names_program_vm_and_stage);
    tcase_add_test(tc, levels);
    tcase_add_test(tc, ratelimit_counts_what_it_held_back);
    tcase_add_test(tc, ratelimited_line_says_how_many);
    tcase_add_test(tc, journal_gets_fields);
    tcase_add_test(tc, journal_names_the_qemu);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
