#include "launcher/host_facts.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <pwd.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

static bool cpu_has_flag(const char *flag)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
    char line[8192];
    size_t n = strlen(flag);
    if (!f)
        return false;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "flags", 5) == 0) {
            for (const char *p = strstr(line, flag); p; p = strstr(p + 1, flag))
                if (p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n'))
                    return true;
            return false;
        }
    return false;
}

static bool cpu_has_virt_flag(void)
{
    return cpu_has_flag("vmx") || cpu_has_flag("svm");
}

unsigned long host_facts_tsc_khz(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (!cpu_has_flag("constant_tsc"))
        return 0;
    struct timespec t0, t1, pause = {.tv_nsec = 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC_RAW, &t0);
    unsigned long long c0 = __rdtsc();
    nanosleep(&pause, NULL);
    unsigned long long c1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC_RAW, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    if (ns <= 0 || c1 <= c0)
        return 0;
    return (unsigned long)((double)(c1 - c0) / ns * 1e6 + 0.5);
#else
    return 0;
#endif
}

int host_facts_kvm_probe(const char **why)
{
    _cleanup_close_ int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        *why = "/dev/kvm does not open";
        return negative_errno();
    }
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        *why = "/dev/kvm has an unexpected API version";
        return -ENODEV;
    }
    _cleanup_close_ int vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
    if (vm < 0) {
        *why = "KVM_CREATE_VM failed";
        return negative_errno();
    }
    /* One page of guest memory at 0x1000 holding "hlt". */
    void *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        *why = "cannot map probe memory";
        return negative_errno();
    }
    int r = -ENODEV;
    ((unsigned char *)mem)[0] = 0xf4; /* hlt */
    struct kvm_userspace_memory_region region = {.slot = 0,
                                                 .guest_phys_addr = 0x1000,
                                                 .memory_size = 0x1000,
                                                 .userspace_addr = (uintptr_t)mem};
    _cleanup_close_ int vcpu = -1;
    struct kvm_run *run = MAP_FAILED;
    long run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 || run_size <= 0 ||
        (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL)) < 0) {
        *why = "KVM cannot create a probe vCPU";
        goto out;
    }
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    struct kvm_sregs sregs;
    struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2};
    if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
        *why = "KVM cannot read probe vCPU state";
        goto out;
    }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
        *why = "KVM cannot set probe vCPU state";
        goto out;
    }
    for (int i = 0; i < 4; i++) { /* tolerate spurious interrupted runs */
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            *why = "KVM_RUN fails (a nested or restricted KVM)";
            break;
        }
        if (run->exit_reason == KVM_EXIT_HLT) {
            r = 0;
        } else {
            *why = "the KVM probe guest did not halt cleanly";
        }
        break;
    }
out:
    if (run != MAP_FAILED)
        munmap(run, (size_t)run_size);
    munmap(mem, 0x1000);
    return r;
}

/* WANT (auto/kvm/tcg) to KVM or TCG. For an explicit "kvm" that cannot work: -ENODEV and *why.
 * For "auto", *why says why TCG was picked, if it was. */
static int resolve_accel(enum accel want, enum accel *ret, const char **why)
{
    *why = NULL;
    if (want == ACCEL_TCG) {
        *ret = ACCEL_TCG;
        return 0;
    }
    const char *probe_why = NULL;
    bool ok = cpu_has_virt_flag();
    if (!ok)
        probe_why = "the CPU advertises neither vmx nor svm";
    else if (host_facts_kvm_probe(&probe_why) < 0)
        ok = false;
    if (ok) {
        *ret = ACCEL_KVM;
        return 0;
    }
    *why = probe_why;
    if (want == ACCEL_KVM)
        return -ENODEV;
    *ret = ACCEL_TCG;
    return 0;
}

/* WANT (auto/kernel/user) to KERNEL or USER; -ENODEV for "kernel" without /dev/vhost-vsock. */
static int resolve_vsock(enum vsock_backend want, enum vsock_backend *ret, const char **why)
{
    *why = NULL;
    if (want == VSOCK_BACKEND_USER) {
        *ret = VSOCK_BACKEND_USER;
        return 0;
    }
    _cleanup_close_ int fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        *ret = VSOCK_BACKEND_KERNEL;
        return 0;
    }
    *why = errno == ENOENT ? "/dev/vhost-vsock does not exist (no vhost_vsock module)"
                           : "/dev/vhost-vsock does not open";
    if (want == VSOCK_BACKEND_KERNEL)
        return -ENODEV;
    *ret = VSOCK_BACKEND_USER;
    return 0;
}

int host_facts_resolve(const struct vm_config *c, struct host_facts *ret, const char **ret_key,
                       const char **ret_why)
{
    struct host_facts f = {.vsock = VSOCK_BACKEND_USER};
    const char *why = NULL;
    *ret_key = *ret_why = NULL;
    if (c->vsock.enabled && resolve_vsock(c->vsock.backend, &f.vsock, &why) < 0) {
        *ret_key = "vsock.backend";
        *ret_why = why;
        return -ENODEV;
    }
    if (resolve_accel(c->machine.accel, &f.accel, &why) < 0) {
        *ret_key = "machine.accel";
        *ret_why = why;
        return -ENODEV;
    }
    f.tcg_why = why;
    if (f.accel == ACCEL_TCG)
        f.tsc_khz = host_facts_tsc_khz();
    /* Only root can hand QEMU to another user; anyone else runs everything as themselves. */
    if (geteuid() == 0 && c->machine.user) {
        if (!getpwnam(c->machine.user)) {
            *ret_key = "machine.user";
            *ret_why =
                "that user does not exist on this host: create it with `useradd --system "
                "--user-group --no-create-home --shell /usr/sbin/nologin ocvm` (scripts/deps "
                "does), or name another unprivileged user";
            return -ENOENT;
        }
        f.qemu_user = c->machine.user;
    }
    *ret = f;
    return 0;
}
