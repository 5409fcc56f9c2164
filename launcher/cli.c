/* What the verbs share: the argument conventions (cli_getopt, cli_parse), loading a VM's config,
 * resolving its name, reading the supervisor's network record. */
#include "launcher/cli.h"
#include "config/config.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/runtime_dir.h"
#include "launcher/secrets.h"
#include "policy/rules.h"
#include "netsetup/netsetup.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_getopt(const struct cli_verb *v, int argc, char **argv, const char *optstring,
               const struct option *opts)
{
    opterr = 0; /* the errors are ours to word */
    int c = getopt_long(argc, argv, optstring, opts, NULL);
    if (c == 'h')
        fputs(v->help, stdout);
    else if (c == ':')
        cli_option_error(v, "no value given for option", argc, argv);
    return c;
}

void cli_option_error(const struct cli_verb *v, const char *what, int argc, char **argv)
{
    /* getopt has moved optind past the word it refused, unless the refused letter came before
     * the last one of a cluster ("-xd"): optind is then still on the cluster */
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    const char *here = optind < argc ? argv[optind] : "";
    bool in_cluster =
        optopt && here[0] == '-' && here[1] && here[1] != '-' && strchr(here + 1, optopt);
    if (!optopt || (strncmp(word, "--", 2) == 0 && !in_cluster)) /* a long option */
        fprintf(stderr, "ocvm %s: %s \"%.*s\" (see ocvm %s --help)\n", v->name, what,
                (int)strcspn(word, "="), word, v->name);
    else
        fprintf(stderr, "ocvm %s: %s \"-%c\" (see ocvm %s --help)\n", v->name, what, optopt,
                v->name);
}

/* Ends the --help of every verb that names a VM. */
static const char vm_help[] =
    "  NAME               the VM: its config is $OCVM_CONFIG_DIR/NAME.json, else\n"
    "                     " CONFIG_DIR_DEFAULT "/NAME.json\n"
    "  -c, --config FILE  the VM's config file; with NAME too, its \"name\" must be NAME\n"
    "  -h, --help         print this help\n"
    "Options may come before or after NAME.\n";

int cli_parse(const struct cli_verb *v, int argc, char **argv, unsigned flags, struct cli_args *ret)
{
    struct option opts[6] = {{"config", required_argument, NULL, 'c'},
                             {"help", no_argument, NULL, 'h'}};
    size_t n = 2;
    if (flags & CLI_DETACH)
        opts[n++] = (struct option){"detach", no_argument, NULL, 'd'};
    if (flags & CLI_JSON)
        opts[n++] = (struct option){"json", no_argument, NULL, 'j'};
    if (flags & CLI_FORCE)
        opts[n++] = (struct option){"force", no_argument, NULL, 'f'};
    *ret = (struct cli_args){0};
    optind = 0;
    int c;
    const char *optstring = flags & CLI_DETACH ? ":hc:d" : flags & CLI_FORCE ? ":hc:f" : ":hc:";
    while ((c = cli_getopt(v, argc, argv, optstring, opts)) != -1) {
        switch (c) {
        case 'c':
            if (ret->config) {
                fprintf(stderr, "ocvm %s: --config given twice\n", v->name);
                return -EINVAL;
            }
            ret->config = optarg;
            break;
        case 'd':
            ret->detach = true;
            break;
        case 'j':
            ret->json = true;
            break;
        case 'f':
            ret->force = true;
            break;
        case 'h':
            fputs(vm_help, stdout);
            return 0;
        case '?':
            cli_option_error(v, "unknown or misplaced option", argc, argv);
            return -EINVAL;
        default: /* ':', reported */
            return -EINVAL;
        }
    }
    if (optind < argc)
        ret->name = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "ocvm %s: unexpected argument \"%s\"\n", v->name, argv[optind]);
        return -EINVAL;
    }
    if (!ret->name && !ret->config && !(flags & CLI_NAME_OPTIONAL)) {
        fprintf(stderr, "ocvm %s: which VM? give a NAME or --config FILE\n", v->name);
        return -EINVAL;
    }
    if (ret->name && !config_name_is_valid(ret->name)) {
        fprintf(stderr, "ocvm %s: \"%s\" is not a VM name (1-32 of A-Z a-z 0-9 - _)\n", v->name,
                ret->name);
        return -EINVAL;
    }
    return 1;
}

int cli_load_config(const char *name, const char *config_path, struct vm_config **ret)
{
    _cleanup_free_ char *path = NULL;
    bool named_file = !config_path; /* the file is NAME's, in the config directory */
    if (named_file) {
        if (config_path_for_name(name, &path) < 0)
            return EXIT_USAGE;
        config_path = path;
    }
    _cleanup_free_ char *error = NULL;
    int r = config_load(config_path, ret, &error);
    if (r < 0) {
        fprintf(stderr, "ocvm: %s\n", error ? error : strerror(-r));
        return EXIT_USAGE;
    }
    if (name && strcmp((*ret)->name, name) != 0) {
        fprintf(stderr, "ocvm: %s: \"name\" is \"%s\", but %s VM \"%s\"\n", config_path,
                (*ret)->name, named_file ? "the file is for" : "the command line names", name);
        vm_config_free(TAKE_PTR(*ret));
        return EXIT_USAGE;
    }
    log_set_vm((*ret)->name); /* every later line is about this VM */
    return 0;
}

int cli_vm_name(const char *name, const char *config_path, char **name_ret)
{
    if (!config_path) {
        log_set_vm(name);
        return (*name_ret = strdup(name)) ? 0 : EXIT_FAILED;
    }
    struct vm_config *c;
    int r = cli_load_config(name, config_path, &c);
    if (r)
        return r;
    *name_ret = strdup(c->name);
    vm_config_free(c);
    return *name_ret ? 0 : EXIT_FAILED;
}

int cli_read_net_record(const char *dir, struct netsetup_state *ret, char **path)
{
    if (!(*path = runtime_file_path(dir, RUNTIME_NETSETUP)))
        return -ENOMEM;
    _cleanup_fclose_ FILE *f = fopen(*path, "re");
    char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (n == 0)
        return 0;
    buf[n] = '\0';
    return netsetup_state_from_json(buf, ret) < 0 ? -EINVAL : 1;
}

int cli_enforce_policy(const struct vm_config *c)
{
    struct policy_report pr;
    if (policy_check(c, &pr) < 0) {
        log_error(NULL, "policy: out of memory");
        return EXIT_FAILED;
    }
    for (size_t i = 0; i < pr.n; i++)
        if (!pr.findings[i].waiver)
            fprintf(stderr, "ocvm: %s\n", pr.findings[i].line);
    int r = pr.n_violations ? EXIT_USAGE : 0;
    for (char **u = pr.unsafe_in_use; r == 0 && *u; u++) {
        bool waives = false;
        for (size_t i = 0; i < pr.n; i++)
            if (pr.findings[i].waiver && strcmp(pr.findings[i].waiver, *u) == 0) {
                log_warning("policy", "UNSAFE: %s", pr.findings[i].line);
                waives = true;
            }
        if (!waives)
            log_warning("policy", "UNSAFE: %s is set (it waives nothing in this config)", *u);
    }
    policy_report_done(&pr);
    return r;
}

int cli_plan_shares(struct vm_config *c)
{
    _cleanup_free_ char *dir = NULL;
    int r = runtime_dir_path(c->name, &dir);
    if (r < 0) {
        log_error(NULL, "no runtime directory (set XDG_RUNTIME_DIR or run as root)");
        return EXIT_FAILED;
    }
    /* virtiofsd needs root: its sandbox is a chroot(2) into the share (CAP_SYS_CHROOT), and
     * QEMU 7.2's daemon cannot run in an unprivileged user namespace instead (its setgroups()
     * is refused there, and it exits). A VM that ocvm runs as another user gets no secrets
     * share (and must name no secret). */
    if (geteuid() != 0) {
        if (c->secrets.n_files || c->secrets.gateway_token) {
            log_error("secrets", "secrets reach the guest through virtiofsd, which needs root: run "
                                 "ocvm as root, or leave \"secrets\" out");
            return EXIT_FAILED;
        }
        return 0;
    }
    if ((r = secrets_plan_share(c, dir)) < 0) {
        log_error("secrets", "%s", strerror(-r));
        return EXIT_FAILED;
    }
    return 0;
}
