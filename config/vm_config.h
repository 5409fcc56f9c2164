/* struct vm_config: one VM's configuration, as loaded from /etc/ocvm/NAME.json by config.c: the
 * one model of a VM that policy/ and launcher/ share. vsock/ and netsetup/ never see it: the
 * launcher fills their own input structs from it. Plain data, owned by whoever loaded it and
 * released with vm_config_free(). Enum <-> string tables live in config.c so the parser and every
 * printer use the same words. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum machine_type { MACHINE_MICROVM, MACHINE_Q35, _MACHINE_TYPE_MAX };
enum accel { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG, _ACCEL_MAX };
enum vsock_backend {
    VSOCK_BACKEND_AUTO,
    VSOCK_BACKEND_KERNEL,
    VSOCK_BACKEND_USER,
    _VSOCK_BACKEND_MAX
};
enum share_proto { SHARE_VIRTIOFS, SHARE_9P, _SHARE_PROTO_MAX };
enum forward_dir { FORWARD_TO_GUEST, FORWARD_TO_HOST, _FORWARD_DIR_MAX };

struct vm_machine {
    enum machine_type type;
    enum accel accel;
    unsigned vcpu;
    uint64_t memory_mib;
    char *qemu; /* binary name or path */
    char *user; /* QEMU drops to this user when ocvm runs as root (default "ocvm"); NULL: never */
    char **extra_args;        /* NULL-terminated */
    bool unsafe_qemu_as_root; /* waives OCVM-P007 (policy/rules.h) */
    bool unsafe_extra_args;   /* waives OCVM-P006 */
};

struct vm_boot {
    char *kernel;
    char *initrd; /* or NULL */
    char *cmdline;
    bool unsafe_cmdline; /* waives OCVM-P003 */
};

struct vm_vsock {
    bool enabled; /* false for "vsock": null: no vsock device, no relay */
    enum vsock_backend backend;
    uint32_t guest_cid;
};

struct vm_network {
    char *bridge;
    char *bridge_address; /* CIDR, e.g. 192.168.83.1/24 */
    char *tap;
    char *guest_address;
    char *mac;
    char *uplink; /* interface name or "auto" */
    char *dns;
    struct vm_egress_rule {
        char *host;
        uint16_t *ports;
        size_t n_ports;
    } * egress_allow;
    size_t n_egress_allow;
};

struct vm_gateway {
    uint16_t guest_port;
    char *host_listen; /* HOST:PORT */
    char *health_path;
    /* after ready: a probe of health_path through the whole chain every probe_interval_s (0:
     * never); probe_failures in a row mark the VM degraded, probe_restart_after in a row restart it
     * (0: never) */
    unsigned probe_interval_s;
    unsigned probe_failures;
    unsigned probe_restart_after;
    /* gateway.openclaw: the user's settings for OpenClaw's own config file, as compact JSON with
     * sorted keys ("{}" when absent); policy/gateway_config.c merges them over ocvm's defaults */
    char *openclaw_json;
    bool unsafe_remote_gateway; /* waives OCVM-P001 */
    bool unsafe_openclaw_bind;  /* waives OCVM-P008 */
    bool unsafe_openclaw_auth;  /* waives OCVM-P009 */
    bool unsafe_openclaw_tools; /* waives OCVM-P010 */
};

struct vm_forward {
    enum forward_dir to;
    char *listen;  /* to=guest: host endpoint to listen on */
    char *connect; /* to=host: host endpoint to connect to */
    uint16_t guest_port;
    bool unsafe_remote_listen; /* waives OCVM-P002 for this forward */
};

struct vm_share {
    char *tag;
    char *source;
    enum share_proto proto;
    bool read_only;
};

/* Files on the host the guest needs but nobody else may see (config key "secrets"): staged by
 * the launcher into the VM's runtime directory and shared read-only as SECRETS_SHARE_TAG. */
struct vm_secret {
    char *name; /* the file's name in the guest: A-Z a-z 0-9 _ . -, 1-64 */
    char *path; /* absolute path on the host */
};

struct vm_secrets {
    char *gateway_token; /* a file holding the gateway's token, or NULL: generated and kept */
    struct vm_secret *files;
    size_t n_files;
};

/* The tag of the read-only virtiofs share that carries the secrets into the guest, and the names
 * ocvm itself writes there. */
#define SECRETS_SHARE_TAG "ocvm-secrets"
#define SECRETS_TOKEN_FILE "gateway.token"
#define SECRETS_OPENCLAW_FILE "openclaw.json"

struct vm_restart {
    unsigned max_restarts;
    unsigned backoff_initial_ms;
    unsigned backoff_max_ms;
};

struct vm_timeouts {
    unsigned ready_s;
    unsigned shutdown_s;
};

struct vm_config {
    char *path; /* the file it was loaded from */
    char *text; /* its text, so that later checks (policy/) can point at a line and column */
    size_t text_len;
    char *name;
    struct vm_machine machine;
    struct vm_boot boot;
    struct vm_vsock vsock;
    struct vm_network *network; /* NULL: no TAP, reached only over vsock */
    struct vm_gateway gateway;
    struct vm_forward *forwards;
    size_t n_forwards;
    struct vm_share *shares;
    size_t n_shares;
    struct vm_secrets secrets;
    struct vm_restart restart;
    struct vm_timeouts timeouts;
};

void vm_config_free(struct vm_config *c);

/* TAP queues for C: one per vCPU, at most 8, when there is a network; else 0. Netsetup opens
 * this many TAP fds and the QEMU argv refers to this many, so both read it from here. */
static inline unsigned vm_config_tap_queues(const struct vm_config *c)
{
    if (!c->network)
        return 0;
    return c->machine.vcpu > 8 ? 8 : c->machine.vcpu;
}

const char *machine_type_to_string(enum machine_type t);
const char *accel_to_string(enum accel a);
const char *vsock_backend_to_string(enum vsock_backend b);
const char *share_proto_to_string(enum share_proto p);
const char *forward_dir_to_string(enum forward_dir d);
