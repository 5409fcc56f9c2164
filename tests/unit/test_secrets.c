/* secrets: what reaches the guest's read-only secrets share, with which modes, and that no error
 * ever says a secret's value: the gateway token made once and kept, a token file refused when it
 * is short or readable by others, a secret source refused by its path, all or nothing. */
#include "common/cleanup.h"
#include "config/config.h"
#include "launcher/secrets.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char rundir[700];

#define VALUE "sk-this-is-the-api-key-value-0123456789"

static void write_file(const char *name, const char *text, mode_t mode)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", vm_fixture_dir(), name);
    FILE *f = fopen(p, "we");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(p, mode), 0);
}

static void setup(void)
{
    vm_fixture_setup();
    write_file("api.key", VALUE, 0600);
    snprintf(rundir, sizeof(rundir), "%s/run", vm_fixture_dir());
    ck_assert_int_eq(mkdir(rundir, 0700), 0);
    char state[700];
    snprintf(state, sizeof(state), "%s/state", vm_fixture_dir());
    setenv("OCVM_STATE_DIR", state, 1);
}

/* A VM whose "secrets" is SECRETS (JSON text, TMP for the fixture's directory), or none. */
static struct vm_config *load(const char *secrets)
{
    _cleanup_free_ char *text = NULL;
    ck_assert_int_ge(asprintf(&text, "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}%s%s}",
                              secrets ? ", \"secrets\": " : "", secrets ? secrets : ""),
                     0);
    return vm_fixture_load(text);
}

static char *read_staged(const char *name, mode_t *mode)
{
    char p[800];
    snprintf(p, sizeof(p), "%s/secrets/%s", rundir, name);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    *mode = st.st_mode & 07777;
    return golden_read_file(p);
}

START_TEST(token_made_once_and_kept)
{
    struct vm_config *c = load(NULL);
    _cleanup_free_ char *a = NULL, *b = NULL, *err = NULL;
    ck_assert_int_eq(secrets_gateway_token(c, &a, &err), 0);
    ck_assert_uint_eq(strlen(a), 64);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 64);
    ck_assert_int_eq(secrets_gateway_token(c, &b, &err), 0);
    ck_assert_str_eq(a, b); /* the next start finds the same one */
    char kept[700];
    snprintf(kept, sizeof(kept), "%s/state/vm/gateway.token", vm_fixture_dir());
    struct stat st;
    ck_assert_int_eq(stat(kept, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    snprintf(kept, sizeof(kept), "%s/state/vm", vm_fixture_dir());
    ck_assert_int_eq(stat(kept, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    vm_config_free(c);
}
END_TEST

START_TEST(token_file_checked)
{
    write_file("token", "shortsecret\n", 0600);
    struct vm_config *c = load("{\"gateway_token\": \"TMP/token\"}");
    _cleanup_free_ char *tok = NULL;
    char *err = NULL;
    ck_assert_int_eq(secrets_gateway_token(c, &tok, &err), -EINVAL);
    ck_assert_ptr_nonnull(
        strstr(err, "/token: the gateway token has 11 characters, fewer than 32"));
    ck_assert_ptr_null(strstr(err, "shortsecret"));
    free(err);
    write_file("token", VALUE "\n", 0644);
    ck_assert_int_eq(secrets_gateway_token(c, &tok, &err), -EPERM);
    ck_assert_ptr_nonnull(strstr(err, "/token: mode 0644 lets others read it"));
    ck_assert_ptr_null(strstr(err, VALUE));
    free(err);
    write_file("token", VALUE "\n", 0600);
    ck_assert_int_eq(secrets_gateway_token(c, &tok, &err), 0);
    ck_assert_str_eq(tok, VALUE); /* the newline is not part of it */
    vm_config_free(c);
}
END_TEST

START_TEST(stage_everything_owner_only)
{
    struct vm_config *c = load("{\"files\": {\"api_key\": \"TMP/api.key\"}}");
    _cleanup_free_ char *err = NULL;
    ck_assert_msg(secrets_stage(c, rundir, NULL, &err) == 0, "%s", err);
    char dir[800];
    snprintf(dir, sizeof(dir), "%s/secrets", rundir);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    mode_t m;
    _cleanup_free_ char *key = read_staged("api_key", &m);
    ck_assert_str_eq(key, VALUE);
    ck_assert_uint_eq(m, 0400);
    _cleanup_free_ char *token = read_staged("gateway.token", &m);
    ck_assert_uint_eq(m, 0400);
    ck_assert_uint_eq(strlen(token), 64);
    _cleanup_free_ char *oc = read_staged("openclaw.json", &m);
    ck_assert_uint_eq(m, 0400);
    char want[128];
    snprintf(want, sizeof(want), "\"token\": \"%s\"", token);
    ck_assert_ptr_nonnull(strstr(oc, want)); /* the gateway reads the token staged beside it */
    ck_assert_ptr_nonnull(strstr(oc, "\"bind\": \"loopback\""));
    vm_config_free(c);
}
END_TEST

START_TEST(stage_refuses_a_readable_secret_and_leaves_nothing)
{
    write_file("api.key", VALUE, 0644);
    struct vm_config *c = load("{\"files\": {\"api_key\": \"TMP/api.key\"}}");
    char *err = NULL;
    ck_assert_int_eq(secrets_stage(c, rundir, NULL, &err), -EPERM);
    ck_assert_ptr_nonnull(strstr(err, "/api.key: mode 0644 lets others read it"));
    ck_assert_ptr_null(strstr(err, VALUE));
    free(err);
    char dir[800];
    snprintf(dir, sizeof(dir), "%s/secrets", rundir);
    ck_assert_int_eq(access(dir, F_OK), -1); /* all or nothing */
    vm_config_free(c);
}
END_TEST

/* The share that carries them is read-only, and names the staging directory, never a value. */
START_TEST(share_planned)
{
    struct vm_config *c = load(NULL);
    ck_assert_int_eq(secrets_plan_share(c, "/run/ocvm/vm"), 0);
    ck_assert_uint_eq(c->n_shares, 1);
    ck_assert_str_eq(c->shares[0].tag, "ocvm-secrets");
    ck_assert_str_eq(c->shares[0].source, "/run/ocvm/vm/secrets");
    ck_assert(c->shares[0].read_only);
    ck_assert_int_eq(c->shares[0].proto, SHARE_VIRTIOFS);
    ck_assert_int_eq(secrets_plan_share(c, "/run/ocvm/vm"), -EEXIST);
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("secrets");
    TCase *tc = tcase_create("secrets");
    tcase_add_checked_fixture(tc, setup, vm_fixture_teardown);
    tcase_add_test(tc, token_made_once_and_kept);
    tcase_add_test(tc, token_file_checked);
    tcase_add_test(tc, stage_everything_owner_only);
    tcase_add_test(tc, stage_refuses_a_readable_secret_and_leaves_nothing);
    tcase_add_test(tc, share_planned);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
