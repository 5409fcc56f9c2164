/* liveness: the verdicts the supervisor acts on after ready. A failure or two is only counted;
 * probe_failures in a row mark the VM degraded (once), more keep it so, probe_restart_after in a
 * row restart it (never with 0); one success clears everything and says it recovered. */
#include "launcher/liveness.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <string.h>

START_TEST(test_failures_degrade_then_restart)
{
    struct liveness l;
    liveness_init(&l, 3, 6);
    ck_assert_int_eq(liveness_record(&l, true, NULL), LIVENESS_HEALTHY);
    ck_assert_int_eq(liveness_record(&l, false, "connect: Connection refused"), LIVENESS_FAILING);
    ck_assert_int_eq(liveness_record(&l, false, "x"), LIVENESS_FAILING);
    ck_assert(!l.degraded);
    ck_assert_int_eq(liveness_record(&l, false, "no reply in time"), LIVENESS_DEGRADED);
    ck_assert(l.degraded);
    ck_assert_str_eq(l.why, "no reply in time");
    ck_assert_int_eq(liveness_record(&l, false, "y"), LIVENESS_STILL_DEGRADED);
    ck_assert_int_eq(liveness_record(&l, false, "y"), LIVENESS_STILL_DEGRADED);
    ck_assert_int_eq(liveness_record(&l, false, "the gateway answered HTTP 503"), LIVENESS_RESTART);
    char buf[160];
    liveness_describe(&l, buf, sizeof(buf));
    ck_assert_str_eq(buf, "6 health probes failed in a row: the gateway answered HTTP 503");
}
END_TEST

START_TEST(test_success_recovers_and_restarts_the_count)
{
    struct liveness l;
    liveness_init(&l, 2, 4);
    liveness_record(&l, false, "a");
    ck_assert_int_eq(liveness_record(&l, false, "b"), LIVENESS_DEGRADED);
    ck_assert_int_eq(liveness_record(&l, true, NULL), LIVENESS_RECOVERED);
    ck_assert(!l.degraded);
    ck_assert_uint_eq(l.failures, 0);
    ck_assert_str_eq(l.why, "");
    /* the count starts again: not a restart after 2 more, and a single success is no news */
    ck_assert_int_eq(liveness_record(&l, false, "c"), LIVENESS_FAILING);
    ck_assert_int_eq(liveness_record(&l, true, NULL), LIVENESS_HEALTHY);
    ck_assert_int_eq(liveness_record(&l, false, "d"), LIVENESS_FAILING);
    ck_assert_int_eq(liveness_record(&l, false, "e"), LIVENESS_DEGRADED);
}
END_TEST

START_TEST(test_restart_zero_never_restarts)
{
    struct liveness l;
    liveness_init(&l, 1, 0);
    ck_assert_int_eq(liveness_record(&l, false, NULL), LIVENESS_DEGRADED);
    ck_assert_str_eq(l.why, "unknown failure");
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(liveness_record(&l, false, "z"), LIVENESS_STILL_DEGRADED);
    char buf[80];
    liveness_describe(&l, buf, sizeof(buf));
    ck_assert_str_eq(buf, "10001 health probes failed in a row: z");
}
END_TEST

/* probe_restart_after == probe_failures: the failure that would degrade restarts at once, and
 * the VM counts as degraded until the new boot starts a new count. */
START_TEST(test_restart_equal_to_degrade)
{
    struct liveness l;
    liveness_init(&l, 2, 2);
    ck_assert_int_eq(liveness_record(&l, false, "a"), LIVENESS_FAILING);
    ck_assert_int_eq(liveness_record(&l, false, "b"), LIVENESS_RESTART);
    ck_assert(l.degraded);
    liveness_init(&l, 2, 2);
    ck_assert(!l.degraded);
    ck_assert_uint_eq(l.failures, 0);
}
END_TEST

/* A long reason is cut, never overflows. */
START_TEST(test_long_reason_is_cut)
{
    struct liveness l;
    char why[400];
    memset(why, 'x', sizeof(why) - 1);
    why[sizeof(why) - 1] = '\0';
    liveness_init(&l, 1, 0);
    liveness_record(&l, false, why);
    ck_assert_uint_eq(strlen(l.why), sizeof(l.why) - 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("liveness");
    TCase *tc = tcase_create("liveness");
    tcase_add_test(tc, test_failures_degrade_then_restart);
    tcase_add_test(tc, test_success_recovers_and_restarts_the_count);
    tcase_add_test(tc, test_restart_zero_never_restarts);
    tcase_add_test(tc, test_restart_equal_to_degrade);
    tcase_add_test(tc, test_long_reason_is_cut);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
