#!/bin/bash
# systemd/ocvm@.service and systemd/ocvm-gateway@.socket, checked offline (PID 1 here is not
# systemd): `systemd-analyze verify` says nothing about either, `systemd-analyze security --offline=true` scores the instance
# ocvm@openclaw.service at most 4.0 ("OK") and reads each hardening directive as on, the lines
# tests/boot/unit_sandbox.sh builds its sandbox from are the ones docs/systemd.md justifies, and
# every directive has its comment; the socket's ListenStream= is gateway.host_listen's default and
# its Service= the VM's instance. verify checks that ExecStart's binary exists, so both run on a
# copy whose /usr/bin/ocvm (where packaging installs it) is BUILD_DIR/ocvm.
# Usage: systemd_unit.sh BUILD_DIR   (ctest sets OCVM_SOURCE_DIR; OCVM_UNIT checks another file)
set -uo pipefail
build=$(realpath "${1:?usage: systemd_unit.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
unit=${OCVM_UNIT:-$src/systemd/ocvm@.service}
socket_unit=${OCVM_SOCKET_UNIT:-$src/systemd/ocvm-gateway@.socket}
max_exposure=4.0
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

if ! command -v systemd-analyze >/dev/null; then
    echo "skip: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
[ -x "$build/ocvm" ] || { echo "FAIL: $build/ocvm is not built"; exit 1; }
tmp=$(mktemp -d /tmp/ocvm-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# values KEY: what KEY= is given in the unit, one assignment a line (keys given more than once
# add up, as CapabilityBoundingSet= and SystemCallFilter= do here)
values() { sed -n "s/^$1=//p" "$unit"; }
# words LIST: the words of LIST, one a line, sorted
words() { tr -s ' \n' '\n\n' <<<"$1" | sed '/^$/d' | sort; }
# same NAME WANT GOT: the two lists hold the same words, in any order
same() {
    [ "$(words "$2")" = "$(words "$3")" ]
    result "$1" $? "want: $(words "$2" | paste -sd' ')"$'\n'"got:  $(words "$3" | paste -sd' ')"
}

grep -qx 'ExecStart=/usr/bin/ocvm up %i' "$unit"
result "ExecStart runs /usr/bin/ocvm up %i" $?
inst="$tmp/ocvm@openclaw.service"
sed "s|^\(Exec[A-Za-z]*=\)/usr/bin/ocvm |\1$build/ocvm |" "$unit" >"$inst"

out=$(cd "$tmp" && systemd-analyze verify "$inst" 2>&1)
rc=$?
[ $rc = 0 ] && ! grep -qF "ocvm@" <<<"$out"
result "systemd-analyze verify: passes and says nothing about the unit" $? "exit $rc: $out"

# The socket unit, beside the service it activates (verify loads Service= from the same
# directory): nothing to say about either.
sock="$tmp/ocvm-gateway@openclaw.socket"
cp "$socket_unit" "$sock"
out=$(cd "$tmp" && systemd-analyze verify "$sock" "$inst" 2>&1)
rc=$?
[ $rc = 0 ] && ! grep -qF "ocvm" <<<"$out"
result "systemd-analyze verify: the socket unit passes, with its service" $? "exit $rc: $out"
default_listen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gateway"]["host_listen"])' \
    "$src/examples/openclaw.json")
[ "$(sed -n 's/^ListenStream=//p' "$socket_unit")" = "$default_listen" ]
result "the socket listens on gateway.host_listen's default, $default_listen, alone" $? \
    "$(grep '^ListenStream=' "$socket_unit")"
for l in 'Service=ocvm@%i.service' Accept=no FileDescriptorName=gateway; do
    grep -qxF "$l" "$socket_unit"
    result "socket: $l" $?
done
! grep -q '^FreeBind=yes' "$socket_unit"
result "socket: no FreeBind=yes (an address that is missing fails at once)" $?
bare=$(awk '/^\[/ { s = ($0 == "[Socket]"); prev = ""; next }
    s && /^[A-Za-z]+=/ && prev !~ /^#/ { print FNR ": " $0 } { prev = $0 }' "$socket_unit")
[ -z "$bare" ]
result "every [Socket] directive has its comment" $? "$bare"

report=$(cd "$tmp" && systemd-analyze security --offline=true "$inst" 2>&1)
score=$(sed -n 's/.*Overall exposure level for ocvm@openclaw\.service: \([0-9.]*\) .*/\1/p' <<<"$report")
[ -n "$score" ] && awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'
result "systemd-analyze security --offline=true: exposure ${score:-?} (at most $max_exposure)" $? \
    "$(grep '✗' <<<"$report")"$'\n'"$(tail -1 <<<"$report")"

# Each of these must be read as on (✓) by the security report; deleting or misspelling the
# directive behind it turns it into ✗.
on=(NoNewPrivileges= ProtectSystem= ProtectHome= PrivateTmp= PrivateMounts= ProtectProc=
    ProtectKernelTunables= ProtectKernelModules= ProtectKernelLogs= ProtectControlGroups=
    ProtectClock= ProtectHostname= LockPersonality= RestrictRealtime= RestrictSUIDSGID=
    SystemCallArchitectures= UMask= RestrictNamespaces=~user RestrictNamespaces=~uts
    RestrictNamespaces=~ipc RestrictNamespaces=~cgroup RestrictNamespaces=~mnt RestrictNamespaces=~pid
    RestrictNamespaces=~net RestrictAddressFamilies=~AF_PACKET 'CapabilityBoundingSet=~CAP_SYS_ADMIN'
    'CapabilityBoundingSet=~CAP_SYS_MODULE' 'CapabilityBoundingSet=~CAP_SYS_PTRACE'
    'CapabilityBoundingSet=~CAP_SYS_RAWIO' 'CapabilityBoundingSet=~CAP_BPF'
    'CapabilityBoundingSet=~CAP_SYS_TIME' 'CapabilityBoundingSet=~CAP_SYS_BOOT'
    SystemCallFilter=~@module SystemCallFilter=~@raw-io SystemCallFilter=~@reboot
    SystemCallFilter=~@swap SystemCallFilter=~@debug SystemCallFilter=~@obsolete
    SystemCallFilter=~@clock SystemCallFilter=~@cpu-emulation)
off=""
for d in "${on[@]}"; do
    grep -qF "✓ $d " <<<"$report" || off="$off $d"
done
[ -z "$off" ]
result "the security report reads ${#on[@]} hardening directives as on" $? "not on:$off"

# The sets the boot sandbox (tests/boot/unit_sandbox.sh) is built from and docs/systemd.md
# justifies one by one: a change to them is deliberate.
same "CapabilityBoundingSet= is the justified set" "CAP_NET_ADMIN CAP_SETUID CAP_SETGID CAP_KILL
CAP_SETPCAP CAP_SYS_CHROOT CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID" \
    "$(values CapabilityBoundingSet)"
same "SystemCallFilter= is @system-service chroot seccomp" "@system-service chroot seccomp" \
    "$(values SystemCallFilter)"
same "RestrictAddressFamilies= is Unix, IP, netlink, vsock" \
    "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_VSOCK" "$(values RestrictAddressFamilies)"
same "RestrictNamespaces= is yes: nothing unshares" "yes" "$(values RestrictNamespaces)"
[ "$(values DeviceAllow | sort)" = "$(printf '%s rw\n' /dev/kvm /dev/net/tun /dev/vhost-net /dev/vhost-vsock)" ]
result "DeviceAllow= is KVM, TUN, vhost-vsock, vhost-net, each rw" $? "$(values DeviceAllow)"

# directive LINE...: each LINE is in the unit as it stands
directive() {
    local missing=""
    for l in "$@"; do grep -qxF "$l" "$unit" || missing="$missing $l"; done
    [ -z "$missing" ]
    result "directives: $*" $? "missing:$missing"
}
directive NoNewPrivileges=yes ProtectSystem=strict DevicePolicy=closed
directive RuntimeDirectory=ocvm RuntimeDirectoryPreserve=yes StateDirectory=ocvm \
    ReadWritePaths=/proc/sys/net/ipv4/conf
directive SystemCallErrorNumber=EPERM SystemCallArchitectures=native UMask=0077
directive Type=notify KillMode=mixed Slice=machine.slice Restart=on-failure
! grep -q '^MemoryDenyWriteExecute=yes' "$unit"
result "no MemoryDenyWriteExecute=yes (QEMU's TCG JIT writes code)" $?

# TimeoutStopSec= is ocvm's own bound for down: the default timeouts.shutdown_s (as in
# examples/openclaw.json, every key at its default) plus 5 s of grace.
shutdown_s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timeouts"]["shutdown_s"])' \
    "$src/examples/openclaw.json")
grep -qx "TimeoutStopSec=$((shutdown_s + 5))s" "$unit"
result "TimeoutStopSec= is timeouts.shutdown_s ($shutdown_s s) + 5 s" $? \
    "$(grep '^TimeoutStopSec=' "$unit")"

# Every directive of [Service] has a comment line right above it saying why.
bare=$(awk '/^\[/ { s = ($0 == "[Service]"); prev = ""; next }
    s && /^[A-Za-z]+=/ && prev !~ /^#/ { print FNR ": " $0 } { prev = $0 }' "$unit")
[ -z "$bare" ]
result "every [Service] directive has its comment" $? "$bare"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
