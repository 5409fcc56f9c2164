#include "policy/audit.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "netsetup/netsetup.h"
#include "vsock/endpoint.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct auditor {
    const struct audit_input *in;
    struct audit_report *r;
    int error;
};

__attribute__((format(printf, 3, 4))) static void add(struct auditor *a, const char *id,
                                                      const char *fmt, ...)
{
    if (a->error)
        return;
    struct audit_finding *v = reallocarray(a->r->findings, a->r->n + 1, sizeof(*v));
    if (!v) {
        a->error = -ENOMEM;
        return;
    }
    a->r->findings = v;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&v[a->r->n].line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->error = -ENOMEM;
        return;
    }
    v[a->r->n++].id = id;
}

/* L001: the links and the nft table, as netsetup compares them with the plan. */
static void check_network(struct auditor *a, char **error)
{
    if (!a->in->plan)
        return;
    char **diffs = NULL;
    int r = netsetup_audit(a->in->plan, &diffs, error);
    if (r < 0) {
        a->error = r;
        return;
    }
    for (char **d = diffs; *d; d++)
        add(a, "OCVM-L001", "network: %s; fix: `ocvm down %s && ocvm up %s` makes it again", *d,
            a->in->c->name, a->in->c->name);
    netsetup_differences_free(diffs);
}

int audit_proc_addr_is_loopback(const char *hex)
{
    size_t len = strlen(hex);
    unsigned char b[16];
    if (len != 8 && len != 32)
        return -EINVAL;
    for (size_t w = 0; w < len / 8; w++) {
        char word[9];
        memcpy(word, hex + 8 * w, 8);
        word[8] = 0;
        char *end;
        unsigned long v = strtoul(word, &end, 16);
        if (*end)
            return -EINVAL;
        uint32_t v32 = (uint32_t)v; /* the kernel prints each 32-bit word in host order */
        memcpy(b + 4 * w, &v32, 4);
    }
    if (len == 8)
        return b[0] == 127;
    static const unsigned char loop6[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(b, loop6, 16) == 0 || (memcmp(b, mapped, 12) == 0 && b[12] == 127);
}

/* The listening TCP sockets on PORT whose address is not loopback, from /proc/net/FILE. */
static void scan_listeners(struct auditor *a, const char *file, uint16_t port, const char *what)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/net/%s", file);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[512];
    if (!f)
        return; /* no IPv6 here: nothing listens on it */
    while (fgets(line, sizeof(line), f)) {
        char local[64], remote[64];
        unsigned lport, state;
        if (sscanf(line, " %*u: %63[0-9A-Fa-f]:%x %63[0-9A-Fa-f]:%*x %x", local, &lport, remote,
                   &state) != 4 ||
            state != 0x0A /* TCP_LISTEN */ || lport != port)
            continue;
        if (audit_proc_addr_is_loopback(local) != 0)
            continue;
        add(a, "OCVM-L002",
            "%s port %u is listened on beyond loopback (%s address %s): it is reachable from "
            "the network; fix: find the listener with `ss -ltnp 'sport = :%u'` and bind it to "
            "127.0.0.1, or stop it",
            what, port, strcmp(file, "tcp") == 0 ? "IPv4" : "IPv6", local, port);
    }
}

/* L002: every host port ocvm listens on for the VM is listened on by loopback sockets only. */
static void check_listeners(struct auditor *a)
{
    const struct vm_config *c = a->in->c;
    struct endpoint e = {.kind = ENDPOINT_TCP};
    const char *why;
    if (c->vsock.enabled &&
        endpoint_parse_hostport(c->gateway.host_listen, e.host, &e.port, &why) == 0) {
        scan_listeners(a, "tcp", e.port, "the gateway's");
        scan_listeners(a, "tcp6", e.port, "the gateway's");
    }
    for (size_t i = 0; i < c->n_forwards; i++) {
        const struct vm_forward *f = &c->forwards[i];
        if (f->to != FORWARD_TO_GUEST || endpoint_parse(f->listen, &e, &why) < 0 ||
            e.kind != ENDPOINT_TCP)
            continue;
        char what[48];
        snprintf(what, sizeof(what), "forwards[%zu]'s", i);
        scan_listeners(a, "tcp", e.port, what);
        scan_listeners(a, "tcp6", e.port, what);
    }
}

/* The files of DIR (the staged secrets) are their owner's alone. */
static void check_private_dir(struct auditor *a, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (st.st_mode & 077)
            add(a, "OCVM-L003",
                "%s/%s has mode %04o: group or others can read it (a staged secret is 0400); "
                "fix: chmod 0400 %s/%s",
                dir, de->d_name, (unsigned)(st.st_mode & 07777), dir, de->d_name);
    }
    if (d)
        closedir(d);
}

/* L003: the runtime directory is 0700 and its sockets and files are the owner's alone. */
static void check_runtime_dir(struct auditor *a)
{
    const char *dir = a->in->runtime_dir;
    struct stat st;
    if (!dir)
        return;
    if (lstat(dir, &st) < 0) {
        add(a, "OCVM-L003", "runtime directory %s: %s; fix: `ocvm down` then `ocvm up`", dir,
            strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0700 || st.st_uid != geteuid())
        add(a, "OCVM-L003",
            "runtime directory %s has mode %04o and owner uid %u, not 0700 and uid %u: other "
            "users could reach the VM's QMP, console and vsock sockets; fix: chmod 0700 %s",
            dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)geteuid(), dir);
    for (const char *const *p = a->in->private_files; p && *p; p++) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, *p) < 0) {
            a->error = -ENOMEM;
            return;
        }
        if (lstat(path, &st) < 0)
            continue; /* not used by this VM */
        if ((st.st_mode & 077) != 0)
            add(a, "OCVM-L003",
                "%s has mode %04o: group or others can use it (it must be 0600); fix: chmod "
                "0600 %s",
                path, (unsigned)(st.st_mode & 07777), path);
        if (S_ISDIR(st.st_mode))
            check_private_dir(a, path);
    }
}

/* L004: a TCP connection from the host to the guest's TAP address on the gateway port fails. */
static void check_tap_probe(struct auditor *a)
{
    const struct netsetup_plan *p = a->in->plan;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p ? p->gateway_port : 0)};
    if (!p || inet_pton(AF_INET, p->guest_address, &sa.sin_addr) != 1)
        return;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        a->error = negative_errno();
        return;
    }
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        unsigned ms = a->in->probe_timeout_ms ? a->in->probe_timeout_ms : 1000;
        int err = 0;
        socklen_t len = sizeof(err);
        if (poll(&pfd, 1, (int)ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
            r = err ? -1 : 0;
    }
    if (r == 0)
        add(a, "OCVM-L004",
            "gateway port %u answers on %s (the VM's TAP address): the gateway is reachable "
            "over the TAP network, not only as localhost; fix: bind the gateway to 127.0.0.1 in "
            "the guest and check the nft table (`ocvm check` OCVM-L001)",
            p->gateway_port, p->guest_address);
}

/* L005: QEMU runs as the configured user, never root (unless waived), under seccomp. */
static void check_qemu(struct auditor *a)
{
    pid_t pid = a->in->qemu_pid;
    const struct vm_machine *m = &a->in->c->machine;
    if (pid <= 0)
        return;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    long uid = -1, seccomp = -1;
    while (f && fgets(line, sizeof(line), f)) {
        long v;
        if (sscanf(line, "Uid: %*d %ld", &v) == 1)
            uid = v;
        else if (sscanf(line, "Seccomp: %ld", &v) == 1)
            seccomp = v;
    }
    if (uid < 0)
        return; /* gone between reading the state and now: nothing to say */
    /* machine.user applies when ocvm runs as root (launcher/host_facts.c); else QEMU is ours */
    struct passwd *pw = m->user && geteuid() == 0 ? getpwnam(m->user) : NULL;
    if (pw && (long)pw->pw_uid != uid)
        add(a, "OCVM-L005",
            "QEMU (pid %d) runs as uid %ld, not as machine.user %s (uid %u); fix: restart the "
            "VM",
            (int)pid, uid, m->user, (unsigned)pw->pw_uid);
    else if (uid == 0 && !m->unsafe_qemu_as_root)
        add(a, "OCVM-L005",
            "QEMU (pid %d) runs as root: a guest that breaks into it owns the host; fix: set "
            "machine.user to an unprivileged user (e.g. \"ocvm\")",
            (int)pid);
    if (seccomp != 2)
        add(a, "OCVM-L005",
            "QEMU (pid %d) runs without a seccomp filter (Seccomp: %ld); fix: do not remove "
            "ocvm's -sandbox option",
            (int)pid, seccomp);
}

/* The credentials of process PID (effective uid, gid and supplementary groups), from /proc. */
struct creds {
    long uid, gid;
    long groups[64];
    size_t n_groups;
};

static int read_creds(pid_t pid, struct creds *ret)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    *ret = (struct creds){.uid = -1, .gid = -1};
    while (f && fgets(line, sizeof(line), f)) {
        long v;
        if (sscanf(line, "Uid: %*d %ld", &v) == 1)
            ret->uid = v;
        else if (sscanf(line, "Gid: %*d %ld", &v) == 1)
            ret->gid = v;
        else if (strncmp(line, "Groups:", 7) == 0)
            for (char *p = line + 7, *end; ret->n_groups < 64; p = end) {
                v = strtol(p, &end, 10);
                if (end == p)
                    break;
                ret->groups[ret->n_groups++] = v;
            }
    }
    return ret->uid < 0 ? -ESRCH : 0;
}

static bool in_group(const struct creds *c, long gid)
{
    if (c->gid == gid)
        return true;
    for (size_t i = 0; i < c->n_groups; i++)
        if (c->groups[i] == gid)
            return true;
    return false;
}

/* Whether C may write ST (by its mode bits; root is L005's business). */
static bool writable_by(const struct stat *st, const struct creds *c)
{
    if ((long)st->st_uid == c->uid)
        return st->st_mode & S_IWUSR;
    if (in_group(c, (long)st->st_gid))
        return st->st_mode & S_IWGRP;
    return st->st_mode & S_IWOTH;
}

/* L006: what QEMU boots and shares read-only cannot be changed by QEMU's own user: a guest that
 * broke into QEMU must not be able to plant a kernel, an initrd or a file for its next boot. */
static void check_boot_files(struct auditor *a)
{
    struct creds qc;
    if (a->in->qemu_pid <= 0 || read_creds(a->in->qemu_pid, &qc) < 0 || qc.uid == 0)
        return;
    const struct vm_config *c = a->in->c;
    const char *paths[3 + 64];
    size_t n = 0;
    paths[n++] = c->boot.kernel;
    if (c->boot.initrd)
        paths[n++] = c->boot.initrd;
    /* (not the staged secrets: made afresh by each `ocvm up`, and QEMU holds the guest's
     * memory, where they go anyway) */
    for (size_t i = 0; i < c->n_shares && n < 3 + 64; i++)
        if (c->shares[i].read_only && strcmp(c->shares[i].tag, SECRETS_SHARE_TAG) != 0)
            paths[n++] = c->shares[i].source;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *dir = strdup(paths[i]);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash && slash != dir)
            *slash = 0;
        struct stat st, dst;
        bool file_w = stat(paths[i], &st) == 0 && writable_by(&st, &qc);
        bool dir_w = dir && stat(dir, &dst) == 0 && writable_by(&dst, &qc) &&
                     !(dst.st_mode & S_ISVTX && (long)st.st_uid != qc.uid);
        if (file_w || dir_w)
            add(a, "OCVM-L006",
                "%s%s is writable by QEMU's user (uid %ld): a guest that breaks into QEMU could "
                "change what the next boot uses; fix: chown root and chmod go-w %s",
                file_w ? paths[i] : dir, file_w ? "" : " (the directory holding it)", qc.uid,
                file_w ? paths[i] : dir);
    }
}

/* PID (WHAT, a process that parses what the guest writes) runs without root (unless waived),
 * with no_new_privs, a seccomp filter and no capability outside MAX_CAPS: finding ID otherwise.
 * False when it is gone (being restarted): nothing to say. */
static bool check_sandboxed(struct auditor *a, const char *id, const char *what, pid_t pid,
                            unsigned long long max_caps)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    long uid = -1, nnp = -1, seccomp = -1;
    unsigned long long capeff = 0;
    while (f && fgets(line, sizeof(line), f)) {
        long v;
        if (sscanf(line, "Uid: %*d %ld", &v) == 1)
            uid = v;
        else if (sscanf(line, "NoNewPrivs: %ld", &v) == 1)
            nnp = v;
        else if (sscanf(line, "Seccomp: %ld", &v) == 1)
            seccomp = v;
        else
            (void)sscanf(line, "CapEff: %llx", &capeff);
    }
    if (uid < 0)
        return false;
    if (uid == 0 && geteuid() == 0 && !a->in->c->machine.unsafe_qemu_as_root)
        add(a, id, "%s (pid %d) runs as root; fix: restart the VM", what, (int)pid);
    if ((capeff & ~max_caps) || nnp != 1 || seccomp != 2) {
        char caps[32] = "0";
        if (max_caps)
            snprintf(caps, sizeof(caps), "at most %llx", max_caps);
        add(a, id,
            "%s (pid %d) is not sandboxed (CapEff %llx, NoNewPrivs %ld, Seccomp %ld; want %s, "
            "1, 2): it parses what the guest writes; fix: restart the VM",
            what, (int)pid, capeff, nnp, seccomp, caps);
    }
    return true;
}

/* L007: the vsock backend runs without root, without any capability, with no_new_privs and its
 * seccomp filter (vsock/backend_sandbox.h). */
static void check_backend(struct auditor *a)
{
    if (a->in->backend_pid > 0)
        check_sandboxed(a, "OCVM-L007", "the vsock backend", a->in->backend_pid, 0);
}

/* L009: the host relay (the gateway listener's clients, the guest's bytes) runs as the backend
 * does: without root, any capability, with no_new_privs and its seccomp filter
 * (launcher/relay_child.h). */
static void check_relay(struct auditor *a)
{
    if (a->in->relay_pid > 0)
        check_sandboxed(a, "OCVM-L009", "the host relay", a->in->relay_pid, 0);
}

/* What a read-write share's virtiofsd may keep (launcher/virtiofsd.c, virtiofsd_user_caps()
 * once sandboxed): CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID; a read-only one keeps none. */
#define VIRTIOFSD_MAX_CAPS                                                                         \
    ((1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_FOWNER) |                     \
     (1ULL << CAP_FSETID) | (1ULL << CAP_SETGID) | (1ULL << CAP_SETUID))

/* True when ROOT (a virtiofsd's /proc/PID/root) is a read-only share's directory: the staged
 * secrets, or a share the config marks read_only. */
static bool read_only_share(const struct auditor *a, const char *root)
{
    if (a->in->secrets_dir && strcmp(root, a->in->secrets_dir) == 0)
        return true;
    const struct vm_config *c = a->in->c;
    for (size_t i = 0; i < c->n_shares; i++) {
        char real[PATH_MAX];
        if (c->shares[i].read_only && realpath(c->shares[i].source, real) &&
            strcmp(real, root) == 0)
            return true;
    }
    return false;
}

/* L008: each virtiofsd the supervisor runs (it parses what the guest sends over FUSE) is
 * sandboxed as the backend is, with no capability beyond what serving files takes (none for a
 * read-only share), and chroot(2)ed away from the host's root. */
static void check_one_virtiofsd(struct auditor *a, pid_t pid)
{
    char path[64], root[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
    ssize_t n = readlink(path, root, sizeof(root) - 1);
    root[n > 0 ? n : 0] = '\0';
    bool ro = n > 1 && read_only_share(a, root);
    if (!check_sandboxed(a, "OCVM-L008", ro ? "virtiofsd of a read-only share" : "virtiofsd", pid,
                         ro ? 0 : VIRTIOFSD_MAX_CAPS))
        return;
    if (n == 1 && root[0] == '/') /* unreadable (no CAP_SYS_PTRACE): not a finding */
        add(a, "OCVM-L008",
            "virtiofsd (pid %d) sees the host's whole filesystem (its root is /, not the "
            "share); fix: restart the VM",
            (int)pid);
}

static void check_virtiofsd(struct auditor *a)
{
    pid_t parent = a->in->supervisor_pid;
    if (parent <= 0)
        return;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], comm[64] = "";
        int pid = 0, ppid = 0;
        if (sscanf(e->d_name, "%d", &pid) != 1 || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        /* "PID (COMM) STATE PPID": virtiofsd's comm holds no space or parenthesis */
        if (f && fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == parent &&
            strcmp(comm, "virtiofsd") == 0)
            check_one_virtiofsd(a, pid);
    }
    closedir(d);
}

int audit_run(const struct audit_input *in, struct audit_report *ret, char **error)
{
    *ret = (struct audit_report){0};
    *error = NULL;
    struct auditor a = {.in = in, .r = ret};
    check_network(&a, error);
    check_listeners(&a);
    check_runtime_dir(&a);
    check_tap_probe(&a);
    check_qemu(&a);
    check_boot_files(&a);
    check_backend(&a);
    check_relay(&a);
    check_virtiofsd(&a);
    if (a.error) {
        audit_report_done(ret);
        if (!*error)
            *error = strdup(strerror(-a.error));
        return a.error;
    }
    return 0;
}

void audit_report_done(struct audit_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->findings[i].line);
    free(r->findings);
    *r = (struct audit_report){0};
}
