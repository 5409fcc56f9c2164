#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"

#include "launcher/guest_notify.h"
#include "common/cleanup.h"

#include <errno.h>
#include <string.h>

unsigned qemu_tap_queues(const struct vm_config *c)
{
    return vm_config_tap_queues(c);
}

int qemu_opt_escape(const char *value, char **ret)
{
    size_t n = 0;
    for (const char *p = value; *p; p++) {
        if (*p == '\n' || *p == '\r')
            return -EINVAL;
        n += *p == ',' ? 2 : 1;
    }
    char *s = malloc(n + 1), *q = s;
    if (!s)
        return -ENOMEM;
    for (const char *p = value; *p; p++) {
        *q++ = *p;
        if (*p == ',')
            *q++ = ',';
    }
    *q = '\0';
    *ret = s;
    return 0;
}

/* Appends PREFIX VALUE SUFFIX as one argument, with VALUE's commas doubled. */
static void add_escaped(struct argv *a, const char *prefix, const char *value, const char *suffix)
{
    _cleanup_free_ char *e = NULL;
    int r = qemu_opt_escape(value, &e);
    if (r < 0) {
        argv_fail(a, r);
        return;
    }
    argv_addf(a, "%s%s%s", prefix, e, suffix);
}

/* What the guest side needs to know about vsock: where to send READY (systemd's own
 * vmm.notify_socket credential, so a systemd guest needs no ocvm code) and which relays to run
 * (`ocvm.relay=LISTEN,CONNECT`, read by `ocvm-guest relay`). */
static int vsock_cmdline(const struct vm_config *c, char **ret)
{
    *ret = NULL;
    if (!c->vsock.enabled)
        return 0;
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return -ENOMEM;
    fprintf(f, " systemd.set_credential=vmm.notify_socket:vsock-stream:2:%u", GUEST_NOTIFY_PORT);
    fprintf(f, " ocvm.relay=vsock:any:%u,tcp:127.0.0.1:%u", c->gateway.guest_port,
            c->gateway.guest_port);
    for (size_t i = 0; i < c->n_forwards; i++) {
        unsigned port = c->forwards[i].guest_port;
        if (c->forwards[i].to == FORWARD_TO_GUEST)
            fprintf(f, " ocvm.relay=vsock:any:%u,tcp:127.0.0.1:%u", port, port);
        else
            fprintf(f, " ocvm.relay=tcp:127.0.0.1:%u,vsock:2:%u", port, port);
    }
    if (fclose(f) != 0) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

/* Which virtiofs tags the guest should mount, and whether read-only (`ocvm.share=TAG[,ro]`). */
static int shares_cmdline(const struct vm_config *c, char **ret)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_shares; i++)
        if (c->shares[i].proto == SHARE_VIRTIOFS)
            fprintf(f, " ocvm.share=%s%s", c->shares[i].tag, c->shares[i].read_only ? ",ro" : "");
    if (fclose(f) != 0) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

int qemu_kernel_cmdline(const struct vm_config *c, const struct qemu_plan *p, char **ret)
{
    _cleanup_free_ char *net = NULL, *tsc = NULL;
    /* microvm has no HPET and no PM timer: under TCG the kernel may fail to calibrate the TSC
     * and hang; telling it the (host's) rate avoids that. Only if the user did not set it. */
    if (p->accel == ACCEL_TCG && p->tsc_khz && c->machine.type == MACHINE_MICROVM &&
        !strstr(c->boot.cmdline, "tsc_early_khz=") &&
        asprintf(&tsc, " tsc_early_khz=%lu", p->tsc_khz) < 0)
        return -ENOMEM;
    if (c->network) {
        const char *slash = strchr(c->network->bridge_address, '/');
        size_t gwlen = slash ? (size_t)(slash - c->network->bridge_address) : 0;
        if (asprintf(&net, " ocvm.ip=%s%s ocvm.gw=%.*s ocvm.dns=%s", c->network->guest_address,
                     slash ? slash : "/24", (int)gwlen, c->network->bridge_address,
                     c->network->dns) < 0)
            return -ENOMEM;
    }
    _cleanup_free_ char *vsock = NULL, *shares = NULL;
    int r = vsock_cmdline(c, &vsock);
    if (r < 0 || (r = shares_cmdline(c, &shares)) < 0)
        return r;
    /* reboot=t: a guest reboot or panic becomes a triple fault, which -no-reboot turns into a
     * QEMU exit the supervisor sees (and restarts from). */
    bool has_reboot = strstr(c->boot.cmdline, "reboot=") != NULL;
    if (asprintf(ret, "%s%s%s%s%s%s", c->boot.cmdline, has_reboot ? "" : " reboot=t",
                 tsc ? tsc : "", net ? net : "", vsock ? vsock : "", shares) < 0)
        return -ENOMEM;
    return 0;
}

static const char *dev(const struct vm_config *c, const char *base)
{
    /* microvm has only virtio-mmio; q35 uses PCI. Callers pass the "virtio-X" stem. */
    static const struct {
        const char *stem, *mmio, *pci;
    } names[] = {
        {"rng", "virtio-rng-device", "virtio-rng-pci"},
        {"net", "virtio-net-device", "virtio-net-pci"},
        {"vhost-vsock", "vhost-vsock-device", "vhost-vsock-pci"},
        {"vhost-user-vsock", "vhost-user-vsock-device", "vhost-user-vsock-pci"},
        {"vhost-user-fs", "vhost-user-fs-device", "vhost-user-fs-pci"},
        {"9p", "virtio-9p-device", "virtio-9p-pci"},
    };
    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        if (strcmp(names[i].stem, base) == 0)
            return c->machine.type == MACHINE_MICROVM ? names[i].mmio : names[i].pci;
    return NULL;
}

bool qemu_shared_memory(const struct vm_config *c, enum vsock_backend vsock)
{
    if (c->vsock.enabled && vsock == VSOCK_BACKEND_USER)
        return true;
    for (size_t i = 0; i < c->n_shares; i++)
        if (c->shares[i].proto == SHARE_VIRTIOFS)
            return true;
    return false;
}

static void add_machine(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    bool kvm = p->accel == ACCEL_KVM;
    bool memfd = qemu_shared_memory(c, p->vsock);
    if (c->machine.type == MACHINE_MICROVM)
        /* pit=off hangs the boot under TCG; isa-serial stays on for the console. */
        argv_addf(a, "microvm,acpi=on,rtc=on,pic=off%s", kvm ? ",pit=off" : "");
    else
        argv_add(a, "q35");
    argv_add(a, "-accel");
    argv_add(a, kvm ? "kvm" : "tcg");
    argv_add(a, "-cpu");
    argv_add(a, kvm ? "host,+x2apic,-sgx" : "max");
    argv_add(a, "-smp");
    argv_addf(a, "%u", c->machine.vcpu);
    argv_add(a, "-m");
    argv_addf(a, "%lluM", (unsigned long long)c->machine.memory_mib);
    if (memfd) {
        /* vhost-user backends (vsock, virtiofsd) map guest RAM: it must be a shareable fd. */
        argv_add(a, "-object");
        argv_addf(a, "memory-backend-memfd,id=mem,size=%lluM,share=on",
                  (unsigned long long)c->machine.memory_mib);
        argv_add(a, "-numa");
        argv_add(a, "node,memdev=mem");
    }
    if (c->machine.type == MACHINE_MICROVM) {
        /* vhost-user refuses legacy virtio-mmio devices */
        argv_add(a, "-global");
        argv_add(a, "virtio-mmio.force-legacy=false");
        /* the keyboard controller: lets QMP send ctrl-alt-del, which a guest without ACPI
         * power-button handling still obeys */
        argv_add(a, "-device");
        argv_add(a, "i8042");
    }
}

static void add_boot(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    argv_add(a, "-kernel");
    argv_add(a, c->boot.kernel);
    if (c->boot.initrd) {
        argv_add(a, "-initrd");
        argv_add(a, c->boot.initrd);
    }
    _cleanup_free_ char *cmdline = NULL;
    int r = qemu_kernel_cmdline(c, p, &cmdline);
    if (r < 0) {
        argv_fail(a, r);
        return;
    }
    argv_add(a, "-append");
    argv_add(a, cmdline);
}

static void add_control(const struct qemu_plan *p, struct argv *a)
{
    int qmp = argv_add_fd(a, "qmp", p->qmp_fd);
    int con = argv_add_fd(a, "console", p->console_fd);
    _cleanup_free_ char *log = runtime_file_path(p->runtime_dir, RUNTIME_CONSOLE_LOG);
    if (!log) {
        argv_fail(a, -ENOMEM);
        return;
    }
    argv_add(a, "-chardev");
    argv_addf(a, "socket,id=qmp,fd=%d,server=on,wait=off", qmp);
    argv_add(a, "-mon");
    argv_add(a, "chardev=qmp,mode=control");
    argv_add(a, "-chardev");
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "socket,id=console,fd=%d,server=on,wait=off,logfile=", con);
    add_escaped(a, prefix, log, ",logappend=on");
    argv_add(a, "-serial");
    argv_add(a, "chardev:console");
}

static void add_network(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    if (!c->network || p->tap_queues == 0)
        return;
    char fds[8 * 12] = "";
    size_t off = 0;
    static const char *const roles[8] = {"tap0", "tap1", "tap2", "tap3",
                                         "tap4", "tap5", "tap6", "tap7"};
    for (unsigned q = 0; q < p->tap_queues && q < 8; q++) {
        int child = argv_add_fd(a, roles[q], p->tap_fds ? p->tap_fds[q] : -1);
        int w = snprintf(fds + off, sizeof(fds) - off, "%s%d", q ? ":" : "", child);
        if (w < 0 || (size_t)w >= sizeof(fds) - off) {
            argv_fail(a, -ENOBUFS);
            return;
        }
        off += (size_t)w;
    }
    argv_add(a, "-netdev");
    if (p->tap_queues > 1) /* the queue count is the number of fds; QEMU refuses queues= */
        argv_addf(a, "tap,id=net0,fds=%s", fds);
    else
        argv_addf(a, "tap,id=net0,fd=%s", fds);
    argv_add(a, "-device");
    bool pci = c->machine.type == MACHINE_Q35;
    char mq[48] = "";
    if (p->tap_queues > 1 &&
        snprintf(mq, sizeof(mq), pci ? ",mq=on,vectors=%u" : ",mq=on", 2 * p->tap_queues + 2) < 0)
        argv_fail(a, -EINVAL);
    /* romfile= skips the iPXE option ROM on PCI (QEMU refuses it on virtio-mmio) */
    argv_addf(a, "%s,netdev=net0,mac=%s%s%s", dev(c, "net"), c->network->mac, mq,
              pci ? ",romfile=" : "");
}

static void add_vsock(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    if (!c->vsock.enabled)
        return;
    if (p->vsock == VSOCK_BACKEND_KERNEL) {
        argv_add(a, "-device");
        argv_addf(a, "%s,guest-cid=%u", dev(c, "vhost-vsock"), c->vsock.guest_cid);
        return;
    }
    _cleanup_free_ char *sock = runtime_file_path(p->runtime_dir, RUNTIME_VHOST_USER_VSOCK);
    if (!sock) {
        argv_fail(a, -ENOMEM);
        return;
    }
    argv_add(a, "-chardev");
    add_escaped(a, "socket,id=vsock0,path=", sock, "");
    argv_add(a, "-device");
    argv_addf(a, "%s,chardev=vsock0", dev(c, "vhost-user-vsock"));
}

static void add_shares(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    for (size_t i = 0; i < c->n_shares; i++) {
        const struct vm_share *s = &c->shares[i];
        if (s->proto == SHARE_VIRTIOFS) {
            _cleanup_free_ char *sock = runtime_virtiofs_socket_path(p->runtime_dir, s->tag);
            if (!sock) {
                argv_fail(a, -ENOMEM);
                return;
            }
            char prefix[48];
            snprintf(prefix, sizeof(prefix), "socket,id=fs%zu,path=", i);
            argv_add(a, "-chardev");
            add_escaped(a, prefix, sock, "");
            argv_add(a, "-device");
            argv_addf(a, "%s,chardev=fs%zu,tag=%s", dev(c, "vhost-user-fs"), i, s->tag);
        } else {
            char prefix[48];
            snprintf(prefix, sizeof(prefix), "local,id=fsdev%zu,path=", i);
            argv_add(a, "-fsdev");
            add_escaped(a, prefix, s->source,
                        s->read_only ? ",security_model=none,readonly=on" : ",security_model=none");
            argv_add(a, "-device");
            argv_addf(a, "%s,fsdev=fsdev%zu,mount_tag=%s", dev(c, "9p"), i, s->tag);
        }
    }
}

int qemu_argv_build(const struct vm_config *c, const struct qemu_plan *p, struct argv *a)
{
    argv_add(a, c->machine.qemu);
    argv_add(a, "-name");
    argv_addf(a, "%s,process=ocvm-%s", c->name, c->name);
    argv_add(a, "-nodefaults");
    argv_add(a, "-no-user-config");
    argv_add(a, "-no-reboot");
    argv_add(a, "-display");
    argv_add(a, "none");
    argv_add(a, "-M");
    add_machine(c, p, a);
    add_boot(c, p, a);
    add_control(p, a);
    argv_add(a, "-device");
    argv_add(a, dev(c, "rng"));
    add_network(c, p, a);
    add_vsock(c, p, a);
    add_shares(c, p, a);
    argv_add(a, "-sandbox");
    if (p->qemu_user) {
        /* -runas drops to the user after the devices are open, with set*id calls the seccomp
         * filter is already installed for: elevateprivileges=deny (and =children) kill QEMU with
         * SIGSYS there. Once QEMU runs as the user, allowing set*id gains it nothing. */
        argv_add(a, "on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny");
        argv_add(a, "-runas");
        argv_add(a, p->qemu_user);
    } else {
        argv_add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    }
    for (char **e = c->machine.extra_args; e && *e; e++)
        argv_add(a, *e);
    return argv_error(a);
}
