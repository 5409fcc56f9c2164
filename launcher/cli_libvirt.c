/* `ocvm libvirt-xml NAME|--config FILE` and `ocvm libvirt define|undefine|import`: an ocvm VM
 * into libvirt and back (docs/libvirt.md). The XML is libvirt_xml.h's, the way back
 * libvirt_import.h's, the libvirt calls libvirt_domain.h's; what runs beside the domain is
 * `ocvm attach` (cli_attach.c), installed here as ocvm-libvirt@NAME.service where systemd runs. */
#include "launcher/cli.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "config/config.h"
#include "config/config_json.h"
#include "launcher/host_facts.h"
#include "launcher/libvirt_domain.h"
#include "launcher/libvirt_import.h"
#include "launcher/libvirt_xml.h"
#include "launcher/runtime_dir.h"
#include "launcher/sidecar.h"
#include "launcher/sidecar_unit.h"
#include "launcher/vm_user.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>

/* where libvirt keeps its QEMU domains' logs (qemu:///system) */
#define CONSOLE_LOG_DIR "/var/log/libvirt/qemu"

/* QEMU's absolute path: machine.qemu, looked up in $PATH when it is a bare name. */
static int find_emulator(const char *qemu, char **ret)
{
    if (strchr(qemu, '/'))
        return (*ret = realpath(qemu, NULL)) ? 0 : -errno;
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", d, qemu) < 0)
            return -ENOMEM;
        if (d[0] == '/' && access(p, X_OK) == 0) {
            *ret = TAKE_PTR(p);
            return 0;
        }
    }
    return copy ? -ENOENT : -ENOMEM;
}

/* C's domain XML (C's shares planned), replacing the domain UUID (or NULL). Returns the exit
 * status, having said why when not 0. */
static int domain_xml(const struct vm_config *c, const char *uuid, char **ret)
{
    struct host_facts hf;
    if (sidecar_host_facts(c, &hf) < 0)
        return EXIT_FAILED;
    _cleanup_free_ char *emulator = NULL, *sockets = NULL, *user = NULL, *log = NULL, *error = NULL;
    int r = find_emulator(c->machine.qemu, &emulator);
    if (r < 0) {
        log_error(NULL, "machine.qemu: %s: %s", c->machine.qemu, strerror(-r));
        return EXIT_FAILED;
    }
    if (sidecar_socket_dir(c->name, &sockets) < 0 || vm_user_name(c->name, &user) < 0 ||
        asprintf(&log, CONSOLE_LOG_DIR "/%s-console.log", c->name) < 0)
        return EXIT_FAILED;
    struct libvirt_plan p = {.accel = hf.accel,
                             .vsock = hf.vsock,
                             .tsc_khz = hf.tsc_khz,
                             .emulator = emulator,
                             .socket_dir = sockets,
                             .console_log = log,
                             .seclabel_user = user,
                             .uuid = uuid};
    r = libvirt_xml_from_config(c, &p, ret, &error);
    if (r < 0)
        log_error(NULL, "domain XML: %s", error ? error : strerror(-r));
    return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_FAILED : 0;
}

/* VM NAME (or --config CONFIG) loaded, checked by the policy and its shares planned, as up and
 * cmdline do. Returns the exit status. */
static int load_checked(const char *name, const char *config, struct vm_config **ret)
{
    int r = cli_load_config(name, config, ret);
    if (r == 0 && ((r = cli_enforce_policy(*ret)) || (r = cli_plan_shares(*ret))))
        vm_config_free(TAKE_PTR(*ret));
    return r;
}

static int verb_libvirt_xml(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_libvirt_xml, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    struct vm_config *c;
    if ((r = load_checked(a.name, a.config, &c)))
        return r;
    _cleanup_free_ char *xml = NULL;
    if ((r = domain_xml(c, NULL, &xml)) == 0)
        fputs(xml, stdout);
    vm_config_free(c);
    return r;
}

const struct cli_verb cli_verb_libvirt_xml = {
    .name = "libvirt-xml",
    .synopsis = "libvirt-xml NAME|--config FILE",
    .summary = "print the VM as libvirt domain XML",
    .help = "usage: ocvm libvirt-xml NAME|--config FILE\n"
            "Print the libvirt domain of the VM: the machine ocvm cmdline prints, for\n"
            "qemu:///system, with ocvm's config in <metadata>. The config is checked as ocvm up\n"
            "checks it (exit 2 when it is wrong). See docs/libvirt.md.\n",
    .run = verb_libvirt_xml,
};

/* --- ocvm libvirt define|undefine|import --- */

struct libvirt_args {
    const char *command, *operand, *config, *uri, *output;
};

/* The connection ocvm prepares the host for: the system QEMU driver (libvirt's default as root).
 */
static bool local_system(const char *uri)
{
    return !uri || strcmp(uri, "qemu:///system") == 0;
}

static int connect_to(const char *uri, bool read_only, virConnectPtr *ret)
{
    _cleanup_free_ char *error = NULL;
    int r = libvirt_domain_connect(uri, read_only, ret, &error);
    if (r < 0)
        log_error("libvirt", "%s", error ? error : strerror(-r));
    return r < 0 ? EXIT_FAILED : 0;
}

/* The VM's user and sidecar unit, which libvirt cannot make. */
static int prepare_host(const char *name)
{
    _cleanup_free_ char *error = NULL, *user = NULL;
    bool created, opened;
    int r = geteuid() == 0 ? vm_user_ensure(name, &created, &opened, &error) : -EPERM;
    if (r < 0) {
        log_error("libvirt", "the VM's user: %s",
                  r == -EPERM ? "run as root (ocvm creates it)"
                  : error     ? error
                              : strerror(-r));
        return EXIT_FAILED;
    }
    if (created && vm_user_name(name, &user) == 0)
        log_info("libvirt", "created the system user %s, which QEMU runs as", user);
    if (opened)
        log_notice("libvirt", "made /var/lib/libvirt/qemu traversable by other users (o+x), so "
                              "that a QEMU with its own user reaches its domain directory");
    return 0;
}

static int start_sidecar(const char *name)
{
    _cleanup_free_ char *error = NULL;
    int r = sidecar_unit_enable(name, &error);
    if (r < 0) {
        log_error("libvirt", "%s", error ? error : strerror(-r));
        return EXIT_FAILED;
    }
    if (r > 0)
        log_info("libvirt", "ocvm-libvirt@%s.service enabled and started (ocvm attach %s)", name,
                 name);
    else
        log_notice("libvirt",
                   "no systemd here: run `ocvm attach %s` (it must run while the "
                   "domain does), then `virsh start %s`",
                   name, name);
    return 0;
}

static int run_define(const struct libvirt_args *la)
{
    struct vm_config *c;
    int r = load_checked(la->operand, la->config, &c);
    if (r)
        return r;
    _cleanup_(libvirt_domain_disconnectp) virConnectPtr conn = NULL;
    _cleanup_free_ char *xml = NULL, *error = NULL;
    struct libvirt_domain_info info;
    if ((r = connect_to(la->uri, false, &conn)) == 0 &&
        libvirt_domain_info(conn, c->name, &info, &error) < 0) {
        log_error("libvirt", "%s", error);
        r = EXIT_FAILED;
    } else if (r == 0 && info.exists && !info.ocvm) {
        log_error("libvirt", "a domain %s exists that ocvm did not define: left alone", c->name);
        r = EXIT_FAILED;
    }
    if (r == 0 && local_system(la->uri))
        r = prepare_host(c->name);
    if (r == 0)
        r = domain_xml(c, info.exists ? info.uuid : NULL, &xml);
    if (r == 0 && libvirt_domain_define(conn, xml, &error) < 0) {
        log_error("libvirt", "%s", error);
        r = EXIT_FAILED;
    }
    if (r == 0 && local_system(la->uri))
        r = start_sidecar(c->name);
    if (r == 0)
        printf("%s domain %s on %s%s\n", info.exists ? "redefined" : "defined", c->name,
               la->uri ? la->uri : "libvirt's default connection",
               info.active ? " (it runs: the new definition applies from its next start)" : "");
    vm_config_free(c);
    return r;
}

static int run_undefine(const struct libvirt_args *la)
{
    _cleanup_free_ char *name = NULL, *dir = NULL, *error = NULL;
    int r = cli_vm_name(la->operand, la->config, &name);
    if (r)
        return r;
    bool local = local_system(la->uri);
    if (local && (r = sidecar_unit_disable(name, &error)) < 0) {
        log_error("libvirt", "%s", error);
        return EXIT_FAILED;
    }
    if (local && r == 0 && runtime_dir_path(name, &dir) == 0 && runtime_dir_is_locked(dir) > 0) {
        log_error("libvirt", "the VM runs here (ocvm attach or up): stop it first");
        return EXIT_FAILED;
    }
    _cleanup_(libvirt_domain_disconnectp) virConnectPtr conn = NULL;
    if ((r = connect_to(la->uri, false, &conn)))
        return r;
    r = libvirt_domain_undefine(conn, name, &error);
    if (r < 0 && !(r == -ENOENT && local)) { /* a half-undefined VM can be finished */
        log_error("libvirt", "%s", error);
        return EXIT_FAILED;
    }
    free(TAKE_PTR(error));
    if (local && vm_user_remove(name, &error) < 0) {
        log_error("libvirt", "remove the VM's user: %s", error ? error : "failed");
        return EXIT_FAILED;
    }
    printf("undefined domain %s%s\n", name, r == -ENOENT ? " (it was not defined)" : "");
    return EXIT_OK;
}

/* Writes TEXT to PATH (0600, replaced atomically) or to stdout when PATH is NULL. */
static int write_out(const char *path, const char *text)
{
    if (!path)
        return fputs(text, stdout) < 0 ? -EIO : 0;
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return -ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t n = strlen(text);
    int r = fd < 0 || write(fd, text, n) != (ssize_t)n ? -errno : 0;
    if (fd >= 0 && close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* JSON (the import) as the config file it becomes: canonical when it loads. The policy is checked
 * on the canonical text, so that its lines point into the file written. */
static int check_import(const char *where, const char *json, char **ret)
{
    struct vm_config *c = NULL;
    _cleanup_free_ char *error = NULL;
    int r = config_load_text(where, json, strlen(json), &c, &error);
    if (r == 0 && (r = config_json_text(c, ret)) == 0) {
        vm_config_free(TAKE_PTR(c));
        r = config_load_text(where, *ret, strlen(*ret), &c, &error);
    }
    if (r < 0) {
        fprintf(stderr, "ocvm: %s\n", error ? error : strerror(-r));
        return EXIT_USAGE;
    }
    r = cli_enforce_policy(c);
    vm_config_free(c);
    return r;
}

static int run_import(const struct libvirt_args *la)
{
    _cleanup_(libvirt_domain_disconnectp) virConnectPtr conn = NULL;
    _cleanup_free_ char *xml = NULL, *error = NULL, *canonical = NULL, *where = NULL;
    int r = connect_to(la->uri, true, &conn);
    if (r)
        return r;
    if (libvirt_domain_xml(conn, la->operand, &xml, &error) < 0) {
        log_error("libvirt", "%s", error);
        return EXIT_FAILED;
    }
    struct libvirt_import im;
    if ((r = libvirt_import_xml(xml, strlen(xml), &im, &error)) < 0) {
        log_error("import", "%s: %s", la->operand, error ? error : strerror(-r));
        return r == -ENOMEM ? EXIT_FAILED : EXIT_USAGE;
    }
    for (size_t i = 0; i < im.n_notes; i++)
        log_warning("import", "%s: %s", la->operand, im.notes[i]);
    if (asprintf(&where, "%s", la->output ? la->output : "<import>") < 0)
        r = -ENOMEM;
    int status = r < 0 ? EXIT_FAILED : check_import(where, im.json, &canonical);
    r = write_out(la->output, canonical ? canonical : im.json);
    if (r < 0) {
        log_error("import", "write %s: %s", la->output, strerror(-r));
        status = EXIT_FAILED;
    } else if (status == 0)
        log_info("import", "%s: written to %s, from %s", la->operand,
                 la->output ? la->output : "stdout",
                 im.from_metadata ? "ocvm's metadata" : "the domain's XML");
    libvirt_import_done(&im);
    return status;
}

static const char libvirt_help[] =
    "usage: ocvm libvirt define NAME|--config FILE [--connect URI]\n"
    "       ocvm libvirt undefine NAME [--connect URI]\n"
    "       ocvm libvirt import DOMAIN [--connect URI] [-o FILE]\n"
    "define: define the VM as a libvirt domain (ocvm libvirt-xml), create the user QEMU\n"
    "  runs as, and enable ocvm-libvirt@NAME.service (ocvm attach: vsock backend, relay,\n"
    "  virtiofsd), so that virsh start and virsh shutdown are all that is left to do.\n"
    "undefine: remove all of it again (the domain must not run).\n"
    "import: write an ocvm config for a domain (its name or UUID): from ocvm's metadata\n"
    "  when the domain has it, else from its XML; what cannot be carried over is listed on\n"
    "  stderr. Exit 2 when the config does not load or breaks a safety rule (it is still\n"
    "  written).\n"
    "  -C, --connect URI  libvirt connection (default: libvirt's; qemu:///system as root);\n"
    "                     the user and unit are prepared for qemu:///system only\n"
    "  -c, --config FILE  (define, undefine) the VM's config file\n"
    "  -o, --output FILE  (import) write the config there (0600), not to stdout\n"
    "  -h, --help         print this help\n";

/* Parses ARGV into *LA: 1 to run, 0 after --help, -EINVAL after the one usage line. */
static int parse_libvirt(int argc, char **argv, struct libvirt_args *la)
{
    static const struct option opts[] = {{"connect", required_argument, NULL, 'C'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *v = cli_verb_libvirt.name;
    *la = (struct libvirt_args){0};
    optind = 0;
    int c;
    while ((c = cli_getopt(&cli_verb_libvirt, argc, argv, ":hC:c:o:", opts)) != -1)
        switch (c) {
        case 'h':
            return 0;
        case 'C':
            la->uri = optarg;
            break;
        case 'c':
            la->config = optarg;
            break;
        case 'o':
            la->output = optarg;
            break;
        case '?':
            cli_option_error(&cli_verb_libvirt, "unknown or misplaced option", argc, argv);
            return -EINVAL;
        default:
            return -EINVAL;
        }
    la->command = optind < argc ? argv[optind++] : NULL;
    la->operand = optind < argc ? argv[optind++] : NULL;
    const char *bad = NULL, *value = NULL;
    bool import = la->command && strcmp(la->command, "import") == 0;
    if (!la->command)
        bad = "what? define, undefine or import";
    else if (!import && strcmp(la->command, "define") && strcmp(la->command, "undefine"))
        bad = "unknown command (define, undefine or import):", value = la->command;
    else if (optind < argc)
        bad = "unexpected argument", value = argv[optind];
    else if (!la->operand && (import || !la->config))
        bad = import ? "which domain? give its name or UUID" : "which VM? give a NAME or --config";
    else if (la->config && import)
        bad = "--config is for define and undefine";
    else if (la->output && !import)
        bad = "--output is for import";
    else if (la->operand && !import && !config_name_is_valid(la->operand))
        bad = "not a VM name (1-32 of A-Z a-z 0-9 - _):", value = la->operand;
    if (bad && value)
        fprintf(stderr, "ocvm %s: %s \"%s\"\n", v, bad, value);
    else if (bad)
        fprintf(stderr, "ocvm %s: %s\n", v, bad);
    return bad ? -EINVAL : 1;
}

static int verb_libvirt(int argc, char **argv)
{
    struct libvirt_args la;
    int r = parse_libvirt(argc, argv, &la);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    if (strcmp(la.command, "define") == 0)
        return run_define(&la);
    if (strcmp(la.command, "undefine") == 0)
        return run_undefine(&la);
    return run_import(&la);
}

const struct cli_verb cli_verb_libvirt = {
    .name = "libvirt",
    .synopsis = "libvirt define|undefine|import ...",
    .summary = "move a VM into libvirt (define, undefine) and back (import)",
    .help = libvirt_help,
    .run = verb_libvirt,
};
