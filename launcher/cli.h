/* cli: the `ocvm` verbs, one file each (cli_up.c, cli_down.c, cli_status.c, ...), and what they
 * share: the argument conventions, loading a VM's config, resolving its name. A verb takes the
 * arguments after "ocvm" (argv[0] is the verb) and returns the exit status: 0 success, 1 the
 * operation failed, 2 usage or configuration error (status: 3 not running). */
#pragma once

#include "config/vm_config.h"

#include <getopt.h>
#include <stdbool.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_RUNNING = 3 };

/* A verb: its line in `ocvm --help`, its own --help text, and what runs it. */
struct cli_verb {
    const char *name;     /* as typed: "dns-config" */
    const char *synopsis; /* for `ocvm --help`: "dns-config NAME|--config FILE" */
    const char *summary;  /* for `ocvm --help`: one line */
    const char *help;     /* `ocvm VERB --help`: "usage: ..." and the options (NULL: its own) */
    int (*run)(int argc, char **argv);
};

extern const struct cli_verb cli_verb_up, cli_verb_down, cli_verb_status, cli_verb_console,
    cli_verb_cmdline, cli_verb_check, cli_verb_relay, cli_verb_dns_config, cli_verb_vsock_backend,
    cli_verb_relay_child, cli_verb_libvirt_xml, cli_verb_libvirt, cli_verb_attach,
    cli_verb_caddy_config;

/* getopt_long() with what every verb shares. Set optind = 0 before the first call. OPTSTRING
 * starts with ":h" and OPTS holds {"help", no_argument, NULL, 'h'}. Options may come before or
 * after the operands, which end up in argv[optind..argc-1]. Returns the next option, or -1 after
 * the last; 'h' after printing V's help to stdout (exit 0); ':' after printing the one line saying
 * an option lacks its value (exit 2); '?' for an unknown option, for the verb to report with
 * cli_option_error(). */
int cli_getopt(const struct cli_verb *v, int argc, char **argv, const char *optstring,
               const struct option *opts);
/* Prints the one line "ocvm VERB: WHAT "OPTION" (see ocvm VERB --help)" about the option
 * cli_getopt() just returned as '?' or ':'. */
void cli_option_error(const struct cli_verb *v, const char *what, int argc, char **argv);

struct cli_args {
    const char *name, *config; /* NAME and --config FILE; either, or both, may be given */
    bool detach, json, force;
};
enum { CLI_DETACH = 1 << 0, CLI_JSON = 1 << 1, CLI_NAME_OPTIONAL = 1 << 2, CLI_FORCE = 1 << 3 };
/* Parses the arguments of a verb that names a VM: NAME and/or --config FILE, plus -d/--detach,
 * --json and -f/--force when FLAGS allow them. Returns 1 to run the verb; 0 after printing its
 * --help (with the lines on NAME and --config every such verb shares), exit 0; -EINVAL after
 * printing the one usage error, exit 2. */
int cli_parse(const struct cli_verb *v, int argc, char **argv, unsigned flags,
              struct cli_args *ret);

/* Loads and validates the VM's config: CONFIG_PATH, else NAME's file in the config directory.
 * With both, the file's "name" must be NAME. Returns 0, or EXIT_USAGE after printing the one
 * error line. */
int cli_load_config(const char *name, const char *config_path, struct vm_config **ret);
/* The name of the VM given by NAME and/or CONFIG_PATH (loading the file when there is one, so a
 * disagreement is refused as in cli_load_config()): sets *name_ret (allocated). Returns 0, or the
 * exit status after printing the error. */
int cli_vm_name(const char *name, const char *config_path, char **name_ret);

/* Runs the policy rules (policy/rules.h) on C before anything starts: each violation is one line
 * on stderr ("ocvm: FILE:LINE:COL: key: what [OCVM-Pnnn]") and the result is EXIT_USAGE; with
 * none, each unsafe_* key in use is a warning naming it, and the result is 0. */
int cli_enforce_policy(const struct vm_config *c);

/* Adds what ocvm itself shares with the guest to C (the read-only secrets share, see
 * launcher/secrets.h), so that `ocvm cmdline` prints what `ocvm up` runs. 0, or EXIT_FAILED after
 * saying why. */
int cli_plan_shares(struct vm_config *c);

struct netsetup_state;
/* Reads the network record the supervisor keeps in its runtime directory DIR (down and status
 * read it): 1 if there is one, 0 if none, -EINVAL if it cannot be read, -ENOMEM. *PATH names the
 * file (allocated). */
int cli_read_net_record(const char *dir, struct netsetup_state *ret, char **path);
