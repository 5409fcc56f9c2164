#!/bin/bash
# The demo guest as a libvirt domain on a real libvirtd (qemu:///system, TCG), as microvm and as
# q35: `ocvm libvirt define` makes the domain and the VM's user, `ocvm attach` runs beside it,
# `virsh start` boots it, the guest reports READY and the stand-in gateway answers on the host's
# loopback through the whole chain (relay -> hybrid socket -> vhost-user backend -> guest relay
# -> gateway); QEMU runs as the VM's own user; `virsh shutdown`, (microvm) a second boot and a
# `virsh reset` work with the same sidecar; the domain imports back into the same config; `undefine` removes the
# domain and the user. libvirtd and
# virtlogd are started here, by hand, and stopped by pid at the end; nothing is left behind.
# Skipped (77, one line) only where they cannot run: not root, not installed, or no start.
set -uo pipefail
build=$(realpath "${1:?usage: libvirt.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm="$build/ocvm"
guest="$build/guest"
[ -f "$guest/vmlinuz" ] || guest="$src/build/guest"
skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "libvirtd and the VM's user need root"
for tool in libvirtd virtlogd virsh qemu-system-x86_64; do
    PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null ||
        skip "$tool is not installed (scripts/deps installs libvirt-daemon-system)"
done
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initrd.img" ]; then
    skip "no demo guest in $build/guest or $src/build/guest (scripts/build-guest makes it)"
fi
if virsh -c qemu:///system uri >/dev/null 2>&1; then
    skip "a libvirtd not started by this test already serves qemu:///system"
fi
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

names=()
tmp=$(mktemp -d /tmp/ocvm-lvboot-XXXXXX)
chmod 0711 "$tmp" # QEMU, as the VM's user, reaches the guest's files and the socket directory
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_LIBVIRT_DIR="$tmp/sockets" OCVM_STATE_DIR="$tmp/state"
virsh=(virsh -q -c qemu:///system)
state_dir=/var/lib/libvirt/qemu
state_mode=$(stat -c %a "$state_dir" 2>/dev/null || true)
run_existed=""
[ -e /run/libvirt ] && run_existed=yes
libvirtd_pid="" virtlogd_pid="" attach_pid=""

# stop PID: SIGTERM, then SIGKILL after 10 s; only our own children
stop() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill "$1"
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
}
cleanup() {
    stop "$attach_pid"
    for n in "${names[@]}"; do
        "${virsh[@]}" destroy "$n" >/dev/null 2>&1
        [ -n "$libvirtd_pid" ] && "$ocvm" libvirt undefine "$n" >/dev/null 2>&1
        getent passwd "ocvm-$n" >/dev/null && userdel "ocvm-$n"
        rm -f "/var/log/libvirt/qemu/$n.log" "/var/log/libvirt/qemu/$n-console.log"
    done
    stop "$libvirtd_pid"
    stop "$virtlogd_pid"
    [ -n "$state_mode" ] && chmod "$state_mode" "$state_dir"
    [ -z "$run_existed" ] && [ -n "$libvirtd_pid" ] && rm -rf /run/libvirt
    rm -rf "$tmp"
}
trap cleanup EXIT
wait_for() { # SECONDS COMMAND...: true once COMMAND succeeds
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do "$@" && return 0; sleep 0.2; done
    return 1
}
in_log() { grep -q -- "$1" "$tmp/attach.log"; }
count_in_log() { [ "$(grep -c -- "$1" "$tmp/attach.log")" -ge "$2" ]; }
health() { curl -s -m 5 "http://127.0.0.1:$port/health"; }
is_off() { [ "$("${virsh[@]}" domstate "$name" 2>/dev/null)" = "shut off" ]; }

# --- the daemons, by hand
PATH=$PATH:/usr/sbin
virtlogd >"$tmp/virtlogd.log" 2>&1 &
virtlogd_pid=$!
libvirtd >"$tmp/libvirtd.log" 2>&1 &
libvirtd_pid=$!
daemon_up() { "${virsh[@]}" uri >/dev/null 2>&1; }
if ! wait_for 30 daemon_up; then
    echo "skip: libvirtd does not start here: $(grep -m1 ' error ' "$tmp/libvirtd.log")"
    exit 77
fi

# --- the demo, under its own name and port, its guest files copied (libvirt relabels them)
mkdir -p "$tmp/guest"
cp "$guest/vmlinuz" "$guest/initrd.img" "$tmp/guest/"
chmod 0644 "$tmp/guest/"*
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# boot N: virsh start, then READY and the gateway through the chain
boot() {
    local t0=$SECONDS out
    out=$("${virsh[@]}" start "$name" 2>&1)
    result "$name boot $1: virsh start" $? "$out $(tail -3 "/var/log/libvirt/qemu/$name.log")"
    wait_for 120 count_in_log "gateway healthy" "$1"
    result "$name boot $1: the guest's READY, then the gateway healthy ($((SECONDS - t0)) s)" $? \
        "$(tail -5 "$tmp/attach.log")"
    out=$(health)
    [ "$out" = '{"ok":true,"peer":"127.0.0.1"}' ]
    result "$name boot $1: curl http://127.0.0.1:$port/health through the chain" $? "$out"
}
# reset N: virsh reset, the guest boots again in place (as on_reboot restart does), the chain back
reset() {
    "${virsh[@]}" reset "$name" >/dev/null
    wait_for 120 count_in_log "gateway healthy" "$1"
    result "$name boot $1: virsh reset: READY and the gateway again, the same QEMU" $? \
        "$(tail -5 "$tmp/attach.log")"
    [ "$(health)" = '{"ok":true,"peer":"127.0.0.1"}' ]
    result "$name boot $1: curl through the chain after the reset" $?
}
# shutdown N: virsh shutdown (the guest's power button), the domain off, the port answers no more
shutdown() {
    "${virsh[@]}" shutdown "$name" >/dev/null
    wait_for 60 is_off
    result "$name boot $1: virsh shutdown powers the guest off" $?
    [ "$(health)" != '{"ok":true,"peer":"127.0.0.1"}' ]
    result "$name boot $1: the gateway is gone with it" $?
}

# run_vm TYPE BOOTS: the demo as machine TYPE, from define to undefine, booted BOOTS times
run_vm() {
    name="lv$1$$"
    user="ocvm-$name"
    cfg="$tmp/$name.json"
    names+=("$name")
    python3 - "$src/examples/demo.json" "$cfg" "$name" "$tmp/guest" "$port" "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["name"] = sys.argv[3]
c["machine"]["type"] = sys.argv[6]
c["boot"]["kernel"] = sys.argv[4] + "/vmlinuz"
c["boot"]["initrd"] = sys.argv[4] + "/initrd.img"
c["gateway"] = {"host_listen": "127.0.0.1:" + sys.argv[5]}
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
    out=$("$ocvm" libvirt define --config "$cfg" --connect qemu:///system 2>&1)
    [ $? = 0 ] && getent passwd "$user" >/dev/null && grep -q "defined domain $name" <<<"$out"
    result "$name: libvirt define: the domain, and the user $user" $? "$out"
    "${virsh[@]}" dumpxml "$name" >"$tmp/defined.xml" &&
        virt-xml-validate "$tmp/defined.xml" domain >/dev/null 2>&1
    result "$name: the defined domain validates" $?

    "$ocvm" attach --config "$cfg" >"$tmp/attach.log" 2>&1 &
    attach_pid=$!
    wait_for 20 in_log "attached: QEMU's sockets are in"
    result "$name: attach: the backend listens before virsh start" $? "$(cat "$tmp/attach.log")"
    [ "$(stat -c %U "$tmp/sockets/$name/vhost-user-vsock.sock")" = "$user" ] &&
        [ "$(stat -c %a "$tmp/run/$name")" = 700 ]
    result "$name: QEMU's socket is the VM user's; the runtime directory stays 0700" $?

    boot 1
    qemu=$(cat "/run/libvirt/qemu/$name.pid" 2>/dev/null)
    [ -n "$qemu" ] && [ "$(ps -o user= -p "$qemu")" = "$user" ]
    result "$name: QEMU runs as $user" $? "pid $qemu: $(ps -o user=,args= -p "$qemu" | cut -c1-120)"
    grep -q "is tainted: custom-argv" "/var/log/libvirt/qemu/$name.log"
    result "$name: libvirt marks the domain tainted: custom-argv (docs/libvirt.md)" $?
    wait_for 10 grep -q "ocvm-guest: ready" "/var/log/libvirt/qemu/$name-console.log"
    result "$name: the serial console is logged to /var/log/libvirt/qemu/$name-console.log" $?
    out=$("$ocvm" status --config "$cfg" 2>&1)
    [ "${out%%$'\n'*}" = "$name: ready" ]
    result "$name: ocvm status: ready" $? "$out"
    [ "$(stat -c %U:%a "$tmp/guest/vmlinuz" "$tmp/guest/initrd.img" | sort -u)" = root:644 ]
    result "$name: the kernel and initrd stay root's while it runs (relabel='no')" $?
    shutdown 1
    if [ "$2" -ge 2 ]; then
        boot 2
        reset 3
        shutdown 3
    fi

    out=$("$ocvm" libvirt import "$name" -o "$tmp/back.json" 2>&1)
    status=$?
    a=$("$ocvm" libvirt-xml --config "$tmp/back.json" 2>&1 | sed 's/ tsc_early_khz=[0-9]*//')
    b=$("$ocvm" libvirt-xml --config "$cfg" 2>&1 | sed 's/ tsc_early_khz=[0-9]*//')
    [ $status = 0 ] && [ "$a" = "$b" ]
    result "$name: libvirt import from qemu:///system: the same config" $? \
        "$out $(diff <(echo "$b") <(echo "$a"))"

    stop "$attach_pid"
    wait "$attach_pid"
    status=$?
    attach_pid=""
    [ $status = 0 ] && [ ! -e "$tmp/run/$name" ] && [ ! -e "$tmp/sockets/$name" ]
    result "$name: attach stops on SIGTERM, its directories gone" $? \
        "status $status: $(tail -3 "$tmp/attach.log")"
    out=$("$ocvm" libvirt undefine "$name" 2>&1)
    [ $? = 0 ] && ! getent passwd "$user" >/dev/null &&
        ! "${virsh[@]}" dominfo "$name" >/dev/null 2>&1
    result "$name: libvirt undefine: domain and user gone" $? "$out"
}

run_vm microvm 2
run_vm q35 1
left=$(pgrep -f -- "$tmp/" | grep -vx "$$" || true)
[ -z "$left" ]
result "no process of ours is left" $? "$(ps -o pid,user,args -p "$left" 2>/dev/null)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
