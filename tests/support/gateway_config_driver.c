/* gateway_config_driver: policy/gateway_config and the static rules from the command line, for
 * tests/integration/gateway_config_openclaw.sh. Not installed: the launcher writes the file
 * itself once it delivers it to the guest.
 *   render CONFIG   prints the OpenClaw config for CONFIG; the token is read from stdin (one
 *                   line), never from argv, which every user can read in /proc
 *   check CONFIG    prints the policy findings, one per line; exit 0 none unwaived, 1 some
 * Errors print as "gateway_config_driver: MESSAGE" on one line: exit 2 for a config that does not
 * load, 1 otherwise. */
#include "common/cleanup.h"
#include "config/config.h"
#include "policy/gateway_config.h"
#include "policy/rules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fail(int status, const char *msg)
{
    fprintf(stderr, "gateway_config_driver: %s\n", msg);
    return status;
}

static int render(const struct vm_config *c)
{
    _cleanup_free_ char *token = NULL, *json = NULL, *error = NULL;
    size_t size = 0;
    ssize_t n = getline(&token, &size, stdin);
    if (n <= 0)
        return fail(1, "no token on stdin");
    token[strcspn(token, "\n")] = '\0';
    int r = gateway_config_render(c, token, &json, &error);
    if (r < 0)
        return fail(1, error ? error : strerror(-r));
    fputs(json, stdout);
    return fflush(stdout) == 0 ? 0 : fail(1, strerror(errno));
}

static int check(const struct vm_config *c)
{
    struct policy_report pr;
    if (policy_check(c, &pr) < 0)
        return fail(1, strerror(ENOMEM));
    for (size_t i = 0; i < pr.n; i++)
        printf("%s\n", pr.findings[i].line);
    int status = pr.n_violations ? 1 : 0;
    policy_report_done(&pr);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "render") != 0 && strcmp(argv[1], "check") != 0))
        return fail(2, "usage: gateway_config_driver render|check CONFIG");
    struct vm_config *c = NULL;
    _cleanup_free_ char *error = NULL;
    int r = config_load(argv[2], &c, &error);
    if (r < 0)
        return fail(2, error ? error : strerror(-r));
    int status = strcmp(argv[1], "render") == 0 ? render(c) : check(c);
    vm_config_free(c);
    return status;
}
