/* state: what the supervisor writes, `ocvm status` and `ocvm down` read back field for field; a
 * file this version did not write is refused (-EINVAL), a missing one is -ENOENT, and a write never
 * leaves a half-written or temporary file behind. */
#include "launcher/state.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[64];
static char path[128];

static void rm_rf_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ocvm-test-state-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(path, sizeof(path), "%s/state.json", tmpdir);
}

static void teardown(void)
{
    rm_rf_tmpdir();
}

static void write_text(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static struct vm_state sample(void)
{
    struct vm_state s = {
        .phase = "ready",
        .supervisor_pid = 4242,
        .qemu_pid = 4243,
        .started_at_us = 1764000000123456ull,
        .qemu_started_at_us = 1764000001654321ull,
        .restarts = 3,
        .accel = "tcg",
        .vsock = "user",
        .n_stages = 4,
        .last_exit = "QEMU exited with status 1: \"qemu-system-x86_64: -m 2048: bad\"",
        .relay = {.open = 2,
                  .accepted = 90,
                  .bytes_to_guest = 1ull << 40,
                  .bytes_to_host = 7,
                  .errors = 3},
        .vsock_backend = {.pid = 4244, .restarts = 2, .last_exit = "killed by signal SYS"},
        .n_unsafe = 2,
        .unsafe = {"gateway.unsafe_remote_gateway", "forwards[3].unsafe_remote_listen"},
        .health = {.failures = 4, .last_error = "connect: Connection refused"},
    };
    static const char *const names[] = {"config", "lock", "qmp", "ready"};
    for (unsigned i = 0; i < s.n_stages; i++) {
        snprintf(s.stages[i].name, sizeof(s.stages[i].name), "%s", names[i]);
        s.stages[i].ms = 10 * i + (i == 3 ? 2400 : 0);
    }
    return s;
}

static void assert_state_eq(const struct vm_state *a, const struct vm_state *b)
{
    ck_assert_str_eq(a->phase, b->phase);
    ck_assert_int_eq(a->supervisor_pid, b->supervisor_pid);
    ck_assert_int_eq(a->qemu_pid, b->qemu_pid);
    ck_assert_uint_eq(a->started_at_us, b->started_at_us);
    ck_assert_uint_eq(a->qemu_started_at_us, b->qemu_started_at_us);
    ck_assert_uint_eq(a->restarts, b->restarts);
    ck_assert_str_eq(a->accel, b->accel);
    ck_assert_str_eq(a->vsock, b->vsock);
    ck_assert_str_eq(a->last_exit, b->last_exit);
    ck_assert_uint_eq(a->n_stages, b->n_stages);
    for (unsigned i = 0; i < a->n_stages; i++) {
        ck_assert_str_eq(a->stages[i].name, b->stages[i].name);
        ck_assert_uint_eq(a->stages[i].ms, b->stages[i].ms);
    }
    ck_assert_mem_eq(&a->relay, &b->relay, sizeof(a->relay));
    ck_assert_int_eq(a->vsock_backend.pid, b->vsock_backend.pid);
    ck_assert_uint_eq(a->vsock_backend.restarts, b->vsock_backend.restarts);
    ck_assert_str_eq(a->vsock_backend.last_exit, b->vsock_backend.last_exit);
    ck_assert_uint_eq(a->n_unsafe, b->n_unsafe);
    for (unsigned i = 0; i < a->n_unsafe; i++)
        ck_assert_str_eq(a->unsafe[i], b->unsafe[i]);
    ck_assert_uint_eq(a->health.failures, b->health.failures);
    ck_assert_str_eq(a->health.last_error, b->health.last_error);
}

START_TEST(test_round_trip)
{
    struct vm_state w = sample(), r;
    ck_assert_int_eq(state_write(path, &w), 0);
    memset(&r, 0x55, sizeof(r));
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&w, &r);
}
END_TEST

/* What QEMU writes on stderr ends up in last_exit as it came: cut inside a character, Latin-1,
 * control characters. The file is written all the same; what is not UTF-8 or printable reads
 * back as '?', and valid UTF-8 is kept. */
START_TEST(test_untrusted_text_is_written)
{
    struct vm_state w = sample(), r;
    snprintf(w.last_exit, sizeof(w.last_exit),
             "QEMU: Connexion refus\xe9"
             "e\x1b[0m \xc3");
    snprintf(w.health.last_error, sizeof(w.health.last_error), "caf\xc3\xa9 \xed\xa0\x80");
    snprintf(w.vsock_backend.last_exit, sizeof(w.vsock_backend.last_exit), "\xff\xfe");
    ck_assert_int_eq(state_write(path, &w), 0);
    ck_assert_int_eq(state_read(path, &r), 0);
    ck_assert_str_eq(r.last_exit, "QEMU: Connexion refus?e?[0m ?");
    ck_assert_str_eq(r.health.last_error, "caf\xc3\xa9 ???");
    ck_assert_str_eq(r.vsock_backend.last_exit, "??");
}
END_TEST

START_TEST(test_round_trip_full_and_empty)
{
    /* every stage slot used, and fields at their limits */
    struct vm_state w = sample(), r;
    w.n_stages = STATE_MAX_STAGES;
    for (unsigned i = 0; i < STATE_MAX_STAGES; i++) {
        memset(w.stages[i].name, 'a' + (char)i, sizeof(w.stages[i].name) - 1);
        w.stages[i].name[sizeof(w.stages[i].name) - 1] = '\0';
        w.stages[i].ms = 1000000ull * i;
    }
    memset(w.last_exit, 'x', sizeof(w.last_exit) - 1);
    w.last_exit[sizeof(w.last_exit) - 1] = '\0';
    memset(w.vsock_backend.last_exit, 'y', sizeof(w.vsock_backend.last_exit) - 1);
    w.vsock_backend.last_exit[sizeof(w.vsock_backend.last_exit) - 1] = '\0';
    w.vsock_backend.pid = INT32_MAX;
    w.vsock_backend.restarts = UINT32_MAX;
    memset(w.health.last_error, 'z', sizeof(w.health.last_error) - 1);
    w.health.last_error[sizeof(w.health.last_error) - 1] = '\0';
    w.health.failures = UINT32_MAX;
    snprintf(w.phase, sizeof(w.phase), "degraded");
    ck_assert_int_eq(state_write(path, &w), 0);
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&w, &r);

    /* a VM that has not reached any stage and has no QEMU yet */
    struct vm_state e = {.phase = "starting", .supervisor_pid = 1234};
    ck_assert_int_eq(state_write(path, &e), 0);
    memset(&r, 0x55, sizeof(r));
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&e, &r);
}
END_TEST

START_TEST(test_missing_file)
{
    struct vm_state r;
    ck_assert_int_eq(state_read(path, &r), -ENOENT);
}
END_TEST

/* A valid file, with one field replaced (or removed, or added) per case. */
#define RELAY                                                                                      \
    "\"relay\": {\"open\": 1, \"accepted\": 2, \"bytes_to_guest\": 3, \"bytes_to_host\": 4, "      \
    "\"errors\": 5}"
#define STAGE "{\"name\": \"s\", \"ms\": 1}"
#define STAGES "[{\"name\": \"config\", \"ms\": 0}, {\"name\": \"ready\", \"ms\": 2400}]"
#define FIELDS_BEFORE_PID "{\"phase\": \"ready\", "
#define GOOD_PIDS "\"supervisor_pid\": 4242, \"qemu_pid\": 4243, "
#define GOOD_TIMES "\"started_at_us\": 1764000000123456, \"qemu_started_at_us\": 1764000001654321, "
#define GOOD_REST "\"restarts\": 0, \"accel\": \"tcg\", \"vsock\": \"user\", "
#define GOOD_TAIL                                                                                  \
    "\"stages\": " STAGES ", \"last_exit\": \"\", " RELAY ", \"unsafe\": [], " BACKEND "}"
#define HEALTH_WITH(failures, last_error)                                                          \
    "\"health\": {\"failures\": " failures ", \"last_error\": " last_error "}"
#define HEALTH HEALTH_WITH("2", "\"no reply in time\"")
#define BACKEND_WITH(pid, restarts, last_exit)                                                     \
    "\"vsock_backend\": {\"pid\": " pid ", \"restarts\": " restarts ", \"last_exit\": " last_exit  \
    "}, " HEALTH
#define BACKEND BACKEND_WITH("4244", "1", "\"killed by signal KILL\"")
#define TAIL_BEFORE_UNSAFE "\"stages\": " STAGES ", \"last_exit\": \"\", " RELAY ", "
#define GOOD FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST GOOD_TAIL

START_TEST(test_hand_written_good_file)
{
    /* the baseline the rejection cases below are derived from: it must be accepted */
    struct vm_state r;
    write_text(path, GOOD "\n");
    ck_assert_int_eq(state_read(path, &r), 0);
    ck_assert_str_eq(r.phase, "ready");
    ck_assert_int_eq(r.supervisor_pid, 4242);
    ck_assert_uint_eq(r.n_stages, 2);
    ck_assert_str_eq(r.stages[1].name, "ready");
    ck_assert_uint_eq(r.stages[1].ms, 2400);
    ck_assert_int_eq(r.vsock_backend.pid, 4244);
    ck_assert_uint_eq(r.vsock_backend.restarts, 1);
    ck_assert_str_eq(r.vsock_backend.last_exit, "killed by signal KILL");
    ck_assert_uint_eq(r.health.failures, 2);
    ck_assert_str_eq(r.health.last_error, "no reply in time");
}
END_TEST

/* A supervisor started by an ocvm before the probes after ready wrote no "health": its VM can
 * still be shown and stopped by this one. */
START_TEST(test_file_without_health)
{
    struct vm_state r;
    write_text(path, FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
               "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0, "
               "\"last_exit\": \"\"}}\n");
    memset(&r, 0x55, sizeof(r));
    ck_assert_int_eq(state_read(path, &r), 0);
    ck_assert_int_eq(r.supervisor_pid, 4242);
    ck_assert_uint_eq(r.health.failures, 0);
    ck_assert_str_eq(r.health.last_error, "");
}
END_TEST

static const struct bad_case {
    const char *what, *text;
} bad[] = {
    {"garbage", "this is not JSON\n"},
    {"empty file", ""},
    {"truncated", "{\"phase\": \"ready\", \"supervisor_pid\": 42"},
    {"an array", "[1, 2, 3]"},
    {"empty object", "{}"},
    {"unknown key",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST "\"colour\": \"blue\", " GOOD_TAIL},
    {"missing field (qemu_pid)",
     FIELDS_BEFORE_PID "\"supervisor_pid\": 4242, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"missing field (stages)", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"last_exit\": \"\", " RELAY ", \"unsafe\": [], " BACKEND "}"},
    {"wrong type (pid as string)", FIELDS_BEFORE_PID
     "\"supervisor_pid\": \"4242\", \"qemu_pid\": 4243, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"wrong type (phase as number)", "{\"phase\": 3, " GOOD_PIDS GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"wrong type (stages as object)", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": {}, \"last_exit\": \"\", " RELAY ", \"unsafe\": [], " BACKEND "}"},
    {"wrong type (pid as float)", FIELDS_BEFORE_PID
     "\"supervisor_pid\": 4242.0, \"qemu_pid\": 4243, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"negative supervisor_pid", FIELDS_BEFORE_PID
     "\"supervisor_pid\": -1, \"qemu_pid\": 4243, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"negative qemu_pid", FIELDS_BEFORE_PID
     "\"supervisor_pid\": 4242, \"qemu_pid\": -4243, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"negative restarts", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES
     "\"restarts\": -1, \"accel\": \"tcg\", \"vsock\": \"user\", " GOOD_TAIL},
    {"stage without ms", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": [{\"name\": \"config\"}], \"last_exit\": \"\", " RELAY
     ", \"unsafe\": [], " BACKEND "}"},
    {"stage that is a string", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": [\"config\"], \"last_exit\": \"\", " RELAY ", \"unsafe\": [], " BACKEND "}"},
    {"more stages than a state holds", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": [" STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE
     "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE "," STAGE
     "], \"last_exit\": \"\", " RELAY ", \"unsafe\": [], " BACKEND "}"},
    {"trailing garbage", GOOD " x"},
    {"missing field (unsafe)", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": " STAGES ", \"last_exit\": \"\", " RELAY ", " BACKEND "}"},
    {"missing field (vsock_backend)",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE "\"unsafe\": []}"},
    {"vsock_backend as a number",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": 4244}"},
    {"health as a string", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0, \"last_exit\": \"\"}, "
     "\"health\": \"ok\"}"},
    {"negative health failures", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0, \"last_exit\": "
     "\"\"}, " HEALTH_WITH("-1", "\"\"") "}"},
    {"health without last_error",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0, "
     "\"last_exit\": \"\"}, \"health\": {\"failures\": 0}}"},
    {"vsock_backend without last_exit",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0}}"},
    {"negative vsock_backend pid",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], " BACKEND_WITH("-1", "0", "\"\"") "}"},
    {"negative vsock_backend restarts",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], " BACKEND_WITH("4244", "-2", "\"\"") "}"},
    {"vsock_backend last_exit as a number",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], " BACKEND_WITH("4244", "0", "9") "}"},
    {"unsafe key that is not a string",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE "\"unsafe\": [1], " BACKEND
                                                                         "}"},
    {"unsafe as a string", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": \"gateway.unsafe_remote_gateway\", " BACKEND "}"},
};

START_TEST(test_rejected)
{
    const struct bad_case *c = &bad[_i];
    struct vm_state r = {.supervisor_pid = 777};
    write_text(path, c->text);
    int ret = state_read(path, &r);
    ck_assert_msg(ret == -EINVAL, "%s: state_read returned %d, expected -EINVAL", c->what, ret);
    ck_assert_msg(r.supervisor_pid == 777, "%s: output written on failure", c->what);
}
END_TEST

/* Strictness the loose parts of the reader miss. `ocvm down` signals supervisor_pid: a pid that
 * does not fit pid_t must not be read as another (4294967297 as 1, 4294967296 + N as N). */
static const struct bad_case strict_bad[] = {
    {"supervisor_pid beyond pid_t (2^32 + 4242)", FIELDS_BEFORE_PID
     "\"supervisor_pid\": 4294971538, \"qemu_pid\": 4243, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"qemu_pid beyond pid_t (2^32 + 4243)", FIELDS_BEFORE_PID
     "\"supervisor_pid\": 4242, \"qemu_pid\": 4294971539, " GOOD_TIMES GOOD_REST GOOD_TAIL},
    {"unknown key inside a stage", FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST
     "\"stages\": [{\"name\": \"config\", \"ms\": 0, \"colour\": \"blue\"}], \"last_exit\": "
     "\"\", " RELAY "}"},
    {"vsock_backend pid beyond pid_t (2^32 + 4244)",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], " BACKEND_WITH("4294971540", "0", "\"\"") "}"},
    {"unknown key inside vsock_backend",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST TAIL_BEFORE_UNSAFE
     "\"unsafe\": [], \"vsock_backend\": {\"pid\": 1, \"restarts\": 0, "
     "\"last_exit\": \"\", \"uid\": 0}}"},
    {"duplicate key",
     FIELDS_BEFORE_PID GOOD_PIDS GOOD_TIMES GOOD_REST "\"phase\": \"stopped\", " GOOD_TAIL},
};

START_TEST(test_rejected_strict)
{
    const struct bad_case *c = &strict_bad[_i];
    struct vm_state r = {.supervisor_pid = 777};
    write_text(path, c->text);
    int ret = state_read(path, &r);
    ck_assert_msg(ret == -EINVAL,
                  "%s: state_read returned %d (supervisor_pid %d), expected -EINVAL", c->what, ret,
                  (int)r.supervisor_pid);
}
END_TEST

START_TEST(test_write_is_atomic)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    struct vm_state a = sample(), b = sample(), r;
    ck_assert_int_eq(state_write(path, &a), 0);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    snprintf(b.phase, sizeof(b.phase), "stopping");
    b.restarts = 4;
    ck_assert_int_eq(state_write(path, &b), 0);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&b, &r);

    /* a write that cannot complete reports it and leaves the previous state readable */
    ck_assert_int_eq(mkdir(tmp, 0700), 0); /* the temporary file cannot be created */
    struct vm_state c = sample();
    snprintf(c.phase, sizeof(c.phase), "failed");
    ck_assert_int_eq(state_write(path, &c), -EISDIR); /* the cause, not a bare -EIO */
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&b, &r);
}
END_TEST

/* A write that fails half-way (the file system refuses more bytes, as a full one does: here
 * RLIMIT_FSIZE in a child) says why, and leaves the previous state whole and no temporary file. */
START_TEST(test_write_failure_keeps_previous_state)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    struct vm_state a = sample(), r;
    ck_assert_int_eq(state_write(path, &a), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {.rlim_cur = 64, .rlim_max = 64};
        struct vm_state b = sample();
        snprintf(b.phase, sizeof(b.phase), "stopping");
        _exit(setrlimit(RLIMIT_FSIZE, &lim) == 0 && state_write(path, &b) == -EFBIG ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "state_write past RLIMIT_FSIZE did not return -EFBIG");
    ck_assert_int_eq(access(tmp, F_OK), -1);
    ck_assert_int_eq(state_read(path, &r), 0);
    assert_state_eq(&a, &r);
}
END_TEST

START_TEST(test_write_into_missing_dir)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/gone/state.json", tmpdir);
    struct vm_state s = sample();
    ck_assert_int_lt(state_write(p, &s), 0);
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_write_failure_keeps_previous_state);
    tcase_add_test(tc, test_round_trip_full_and_empty);
    tcase_add_test(tc, test_untrusted_text_is_written);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_hand_written_good_file);
    tcase_add_test(tc, test_file_without_health);
    tcase_add_loop_test(tc, test_rejected, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_loop_test(tc, test_rejected_strict, 0, sizeof(strict_bad) / sizeof(strict_bad[0]));
    tcase_add_test(tc, test_write_is_atomic);
    tcase_add_test(tc, test_write_into_missing_dir);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
