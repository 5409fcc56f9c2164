/* `ocvm relay-child --forward FD=TARGET... --connect-fd K`: the host relay as `ocvm up` runs it, a
 * sandboxed child handed its sockets; vsock/relay_child_main.c parses the rest and runs it. */
#include "launcher/cli.h"
#include "vsock/relay_child_main.h"

static const char help_text[] =
    "usage: ocvm relay-child --forward FD=TARGET... --connect-fd K [OPTIONS]\n"
    "The host relay as `ocvm up` starts it (launcher/relay_child.h), not for typing by hand:\n"
    "  --forward FD=TARGET  accept on the listening socket FD, relay each client to TARGET\n"
    "                       (endpoint form); once per listener, numbered from 0 in order\n"
    "  --connect-fd K       the connect broker (SOCK_SEQPACKET): it opens every target socket\n"
    "  --control-fd C       the supervisor holds and releases listeners through it\n"
    "  --stats-fd S         a memfd the counters are published in\n"
    "  --held I             start with forward I held (its clients wait in the backlog)\n"
    "  --user USER          run as USER once everything is open (when started as root)\n"
    "  --vm NAME            the VM's name, for log lines\n"
    "  --max-connections N, --connect-timeout-ms N, --idle-timeout-ms N\n"
    "                       the relay's limits (see ocvm relay --help)\n"
    "Before it accepts anyone it drops every capability, sets no_new_privs and installs a\n"
    "seccomp filter of the calls it uses; any other call kills it (SIGSYS).\n";

static int verb_relay_child(int argc, char **argv)
{
    return relay_child_main(argc, argv);
}

const struct cli_verb cli_verb_relay_child = {
    .name = "relay-child",
    .synopsis = "relay-child --forward FD=TARGET... --connect-fd K",
    .summary = "the host relay as `ocvm up` runs it (internal)",
    .help = help_text,
    .run = verb_relay_child,
};
