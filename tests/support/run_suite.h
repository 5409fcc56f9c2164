/* run_suite: the end of every Check unit suite's main(). */
#pragma once

#include <check.h>
#include <stdlib.h>

/* Runs S (forking per test as CK_FORK says) and makes its failures the exit status. */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
