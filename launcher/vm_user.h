/* vm_user: the system user a libvirt domain's QEMU runs as (a static DAC <seclabel>), one per VM,
 * so that no other libvirt guest, running as libvirt-qemu, can reach this VM's sockets: "ocvm-"
 * and the VM's name (lowercased, and shortened with a hash where useradd would refuse it). It is
 * created by `ocvm libvirt define` (useradd --system, its own group and kvm, no home, no shell) and
 * removed by `undefine`. libvirt makes each domain's private directory (its master key, its
 * monitor) in /var/lib/libvirt/qemu, which Debian makes 0750 for libvirt-qemu: ensuring the user
 * also lets others traverse it (o+x, never list, as Fedora ships it). ocvm's own `up` uses
 * machine.user instead. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* The user's name for VM (a valid VM name): pure, allocated. -ENOMEM. */
int vm_user_name(const char *vm, char **ret);
/* Its uid and gid: 0, -ENOENT when it does not exist. */
int vm_user_lookup(const char *vm, uid_t *uid, gid_t *gid);
/* Creates it unless it exists (*created says which), and lets it reach libvirt's domain state
 * directory (*dir_opened: its mode was changed now). On failure *error is one line. */
int vm_user_ensure(const char *vm, bool *created, bool *dir_opened, char **error);
/* Removes it (and its group) if it exists; 0 when there was none. */
int vm_user_remove(const char *vm, char **error);
