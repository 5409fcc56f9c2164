/* cli: the `ocvm` verbs. Each takes the arguments after the verb and returns the exit status:
 * 0 success, 1 the operation failed, 2 usage or configuration error (status: 3 not running). */
#pragma once

#include "config/vm_config.h"

#include <stdbool.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_RUNNING = 3 };

int verb_up(int argc, char **argv);
int verb_down(int argc, char **argv);
int verb_status(int argc, char **argv);
int verb_console(int argc, char **argv);
int verb_cmdline(int argc, char **argv);
int verb_relay(int argc, char **argv);
int verb_vsock_backend(int argc, char **argv);
int verb_dns_config(int argc, char **argv);

struct cli_args {
    const char *name, *config;
    bool detach, json;
};
enum { CLI_DETACH = 1 << 0, CLI_JSON = 1 << 1, CLI_NAME_OPTIONAL = 1 << 2 };
/* Parses the verb's options (FLAGS says which it takes) and its NAME or --config FILE. Prints the
 * one usage error and returns EXIT_USAGE on bad arguments. */
int cli_parse(int argc, char **argv, unsigned flags, struct cli_args *ret);

/* Parses "[--config FILE] [NAME]" style arguments left after options; loads and validates the
 * config, printing the one error line. Returns 0, or EXIT_USAGE after printing. */
int cli_load_config(const char *name, const char *config_path, struct vm_config **ret);
/* Where the VM named NAME (or the one in CONFIG_PATH) is: sets *name_ret (allocated). */
int cli_vm_name(const char *name, const char *config_path, char **name_ret);
