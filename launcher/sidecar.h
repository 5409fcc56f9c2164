/* sidecar: what runs beside one of ocvm's libvirt domains (`ocvm attach NAME`), for as long as
 * the domain may run, so that `virsh start` and `virsh shutdown` are all a user does: the VM's
 * runtime directory (locked: `ocvm up` of the same VM is refused meanwhile), its network
 * (netsetup: bridge, nft table, and a persistent TAP that libvirt opens by name, managed='no'),
 * the staged secrets, one virtiofsd per virtiofs share, the vsock backend and host relay
 * (vsock_host.h), and on each boot the guest's READY and a health probe through the chain.
 * libvirt runs QEMU as the VM's own user (vm_user.h); QEMU reaches the vhost-user sockets in the
 * socket directory, 0710 root:that user's group, which holds hard links, owned by that user, to
 * the sockets in the 0700 runtime directory. A virtiofsd ends with its QEMU; a new set is started
 * for the next boot once all have ended. */
#pragma once

#include "config/vm_config.h"
#include "launcher/host_facts.h"

/* Where the socket directories live: $OCVM_LIBVIRT_DIR when set, else this. */
#define SIDECAR_SOCKET_BASE "/run/ocvm-libvirt"

/* The socket directory of VM NAME (allocated): what the domain XML names. */
int sidecar_socket_dir(const char *name, char **ret);

/* The host facts of C's libvirt domain: as host_facts_resolve(), but machine.user does not apply
 * (libvirt runs QEMU as the VM's own user). -ENODEV after logging why. */
int sidecar_host_facts(const struct vm_config *c, struct host_facts *ret);

/* Runs the sidecar of C (its shares planned, cli_plan_shares()) with the resolved facts HF until
 * SIGTERM or SIGINT; QEMU's user is USER (the VM's, vm_user.h). Returns the exit status: 0 after
 * a signal, 1 when it could not start (logged). */
int sidecar_run(const struct vm_config *c, const struct host_facts *hf, const char *user);
