#!/bin/bash
# Who holds what once `ocvm up` runs (docs/policy.md, "Privileges"), with the demo guest, its TAP
# network and the user vsock backend, in a network namespace of its own:
#   the supervisor: uid 0, no_new_privs, and exactly the capabilities it keeps (CAP_NET_ADMIN,
#   CAP_KILL, CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_SYS_CHROOT for virtiofsd's chroot)
#   in its effective, permitted and bounding sets, none inheritable or ambient;
#   QEMU and the vsock backend: QEMU's user (not 0), NoNewPrivs 1, Seccomp 2, CapEff 0;
#   the host relay (`ocvm relay-child`, the gateway listener's): the same, and nothing in its
#   bounding set either; killed, it is started again and a client that came meanwhile is served;
#   virtiofsd (the secrets share): one process, uid ocvm, no capability, NoNewPrivs 1, seccomp
#   (its own filter and ocvm's against writes), chroot(2)ed into the share; the guest reads the
#   share, and cannot change it even once its mount is made read-write;
#   in the guest, the guest relay (keeper and relay): uid 65534, NoNewPrivs 1, no capability;
#   with those capabilities a killed QEMU is started again (as root, then -runas), the gateway
#   answers again, and `ocvm down` still tears the network down (TAP, bridge, nft table) and
#   removes the runtime directory, the staged secrets included.
set -uo pipefail
if [ "$(id -u)" != 0 ]; then echo "skip: needs root (the supervisor's capabilities, TAP, nft)"; exit 77; fi
if [ -z "${OCVM_TEST_NETNS:-}" ]; then
    command -v unshare >/dev/null || { echo "skip: no unshare"; exit 77; }
    export OCVM_TEST_NETNS=1
    exec unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
build=$(realpath "${1:?usage: privileges.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm="$build/ocvm"
guest="$build/guest"
command -v qemu-system-x86_64 >/dev/null || { echo "skip: qemu-system-x86_64 is not installed"; exit 77; }
[ -f "$guest/vmlinuz" ] || { echo "skip: no demo guest in $guest (scripts/build-guest makes it)"; exit 77; }
[ -x /usr/lib/qemu/virtiofsd ] || { echo "skip: no /usr/lib/qemu/virtiofsd (qemu-system-common)"; exit 77; }
command -v curl >/dev/null || { echo "skip: no curl"; exit 77; }
command -v nft >/dev/null || { echo "skip: no nft"; exit 77; }
getent passwd ocvm >/dev/null || { echo "skip: no user ocvm (scripts/deps creates it)"; exit 77; }
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

tmp=$(mktemp -d /tmp/ocvm-priv-XXXXXX)
chmod 0755 "$tmp"
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_STATE_DIR="$tmp/state"
name=privtest
rundir="$OCVM_RUNTIME_DIR/$name"
cfg="$tmp/$name.json"
leftovers() { pgrep -f -- "$tmp/" | grep -vx "$$" || true; }
cleanup() {
    [ -f "$rundir/state.json" ] && "$ocvm" down --force --config "$cfg" >/dev/null 2>&1
    for p in $(leftovers); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# An uplink for NAT inside this namespace only.
ip link add up0 type veth peer name up0peer && ip addr add 10.250.78.1/24 dev up0 &&
    ip link set up0peer up && ip link set up0 up &&
    ip route add default via 10.250.78.2 || { result "make the test uplink" 1; exit 1; }

cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 2, "memory_mib": 1024 },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user", "guest_cid": 3 },
  "network": { "uplink": "up0", "bridge": "br-privtest", "tap": "vm-privtest" },
  "restart": { "max_restarts": 3, "backoff_initial_ms": 200 },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON
json() { "$ocvm" status --json --config "$cfg" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $deadline ]; do "$@" && return 0; sleep 0.3; done
    return 1
}
field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ +/, ""); print }' "/proc/$1/status"; }
show() { grep -E '^(Name|Uid|NoNewPrivs|Seccomp|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' "/proc/$1/status" | tr '\t' ' ' | paste -sd' '; }
healthy() { curl -s -m 10 "http://127.0.0.1:18789/health" | grep -q '"peer":"127.0.0.1"'; }
# CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7, CAP_SETPCAP 8, CAP_NET_ADMIN 12, and for virtiofsd's
# chroot (the secrets share is read-only) CAP_SYS_CHROOT 18
keep=$(printf '%016x' $(((1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 18))))
ocvm_uid=$(id -u ocvm)

start=$SECONDS
if ! out=$("$ocvm" up -d --config "$cfg" 2>&1); then
    result "up -d with the TAP network and the user backend" 1 "$out$(cat "$rundir/supervisor.log" 2>/dev/null)"
    exit 1
fi
result "up -d with the TAP network and the user backend: ready in $((SECONDS - start)) s" 0
supervisor=$(json "['supervisor_pid']")
qemu=$(json "['qemu_pid']")
backend=$(json "['vsock_backend']['pid']")
relay=$(json "['host_relay']['pid']")
fsds=$(pgrep -P "$supervisor" -x virtiofsd || true)
[ -n "$fsds" ]
result "virtiofsd serves the secrets share (pid $(echo $fsds))" $?

# the supervisor: exactly what it keeps
echo "     supervisor: $(show "$supervisor")"
[ "$(field "$supervisor" CapEff)" = "$keep" ] && [ "$(field "$supervisor" CapPrm)" = "$keep" ] &&
    [ "$(field "$supervisor" CapBnd)" = "$keep" ] && [ "$(field "$supervisor" CapInh)" = 0000000000000000 ] &&
    [ "$(field "$supervisor" CapAmb)" = 0000000000000000 ]
result "the supervisor keeps CapEff = CapPrm = CapBnd = $keep, nothing inheritable or ambient" $? "$(show "$supervisor")"
[ "$(field "$supervisor" NoNewPrivs)" = 1 ] && [ "$(field "$supervisor" Uid | awk '{print $1}')" = 0 ]
result "the supervisor: uid 0, NoNewPrivs 1" $?
grep -q "privileges: the supervisor keeps cap_kill,cap_setgid,cap_setuid,cap_setpcap,cap_net_admin,cap_sys_chroot (uid 0, no_new_privs)" "$rundir/supervisor.log"
result "its log says what it keeps" $? "$(grep privileges "$rundir/supervisor.log")"

# QEMU and the backend: another uid, no_new_privs, seccomp, no capability
unprivileged() { # PID
    local p=$1
    [ "$(field "$p" Uid | awk '{print $1, $2, $3, $4}')" = "$ocvm_uid $ocvm_uid $ocvm_uid $ocvm_uid" ] &&
        [ "$(field "$p" NoNewPrivs)" = 1 ] && [ "$(field "$p" Seccomp)" = 2 ] &&
        [ "$(field "$p" CapEff)" = 0000000000000000 ] && [ "$(field "$p" CapPrm)" = 0000000000000000 ]
}
echo "     QEMU: $(show "$qemu")"
unprivileged "$qemu"
result "QEMU: uid ocvm ($ocvm_uid), NoNewPrivs 1, Seccomp 2, CapEff 0" $? "$(show "$qemu")"
echo "     backend: $(show "$backend")"
unprivileged "$backend"
result "the vsock backend: uid ocvm, NoNewPrivs 1, Seccomp 2, CapEff 0" $? "$(show "$backend")"
echo "     host relay: $(show "$relay")"
unprivileged "$relay" && [ "$(field "$relay" CapBnd)" = 0000000000000000 ] &&
    [ "$(awk '{print $4}' "/proc/$relay/stat")" = "$supervisor" ] && [ "$(cat "/proc/$relay/comm")" = ocvm-relay ]
result "the host relay (pid $relay, ocvm-relay, the supervisor's child): uid ocvm, NoNewPrivs 1, Seccomp 2, no capability in any set" $? "$(show "$relay")"

# virtiofsd: one process as ocvm, chroot(2)ed into the staged secrets, under its own seccomp
# filter and ocvm's against writes, with nothing left of the CAP_SYS_CHROOT and CAP_SETPCAP it
# was started with
for p in $fsds; do
    echo "     virtiofsd: $(show "$p") Seccomp_filters: $(field "$p" Seccomp_filters) root: $(readlink "/proc/$p/root")"
    unprivileged "$p" && [ "$(field "$p" CapBnd)" = 0000000000000000 ] &&
        [ "$(field "$p" CapAmb)" = 0000000000000000 ] && [ "$(field "$p" Seccomp_filters)" = 2 ]
    result "virtiofsd (pid $p): uid ocvm, NoNewPrivs 1, Seccomp 2 with 2 filters, no capability in any set" $? "$(show "$p")"
    [ "$(readlink "/proc/$p/root")" = "$rundir/secrets" ]
    result "virtiofsd's root is the share: $rundir/secrets" $? "$(readlink "/proc/$p/root")"
    [ -z "$(pgrep -P "$p")" ]
    result "virtiofsd has no child process" $? "$(pgrep -P "$p")"
done

healthy
result "the gateway answers through the chain" $?
# the guest reads its secrets share
console_out=$( (sleep 1; printf 'wc -c /run/shares/ocvm-secrets/gateway.token\n'; sleep 3) |
    timeout 10 "$ocvm" console --config "$cfg" 2>&1)
grep -Eq '^ *[0-9]+ /run/shares/ocvm-secrets/gateway.token' <<<"$console_out"
result "the guest reads the secrets share" $? "$console_out"
# and cannot change it, even with its mount made read-write: the host refuses (EROFS)
token_before=$(stat -c '%s %Y' "$rundir/secrets/gateway.token")
console_out=$( (sleep 1
    printf 'mount -o remount,rw /run/shares/ocvm-secrets; echo remount=$?\n'
    printf 'echo x >>/run/shares/ocvm-secrets/gateway.token; echo append=$?\n'
    printf 'echo x >/run/shares/ocvm-secrets/new; echo create=$?\n'
    printf 'rm -f /run/shares/ocvm-secrets/gateway.token; echo remove=$?\n'
    printf 'mkdir /run/shares/ocvm-secrets/d; echo mkdir=$?\n'
    sleep 4) | timeout 12 "$ocvm" console --config "$cfg" 2>&1)
grep -q 'remount=0' <<<"$console_out" && grep -q 'append=1' <<<"$console_out" &&
    grep -q 'create=1' <<<"$console_out" && grep -q 'remove=1' <<<"$console_out" &&
    grep -q 'mkdir=1' <<<"$console_out" && grep -q 'Read-only file system' <<<"$console_out"
result "the guest remounts the share read-write, but appending, creating, removing and mkdir fail: Read-only file system" $? "$console_out"
[ "$(stat -c '%s %Y' "$rundir/secrets/gateway.token")" = "$token_before" ] && [ ! -e "$rundir/secrets/new" ] &&
    [ ! -e "$rundir/secrets/d" ]
result "the staged secrets are unchanged on the host" $? "$(ls -la "$rundir/secrets")"

# inside the guest: the relay (its keeper and the relay itself) dropped to nobody once its
# sockets were open (docs/policy.md, "The guest relay")
console_out=$( (sleep 1
    printf 'for p in /proc/[0-9]*; do case "$(tr "\\0" " " <$p/cmdline)" in *ocvm-guest?relay*) '
    printf 'echo "RELAY $(grep -E "^(Uid|CapEff|CapBnd|NoNewPrivs):" $p/status | tr -s "\\t\\n" "  ")";; esac; done\n'
    sleep 3) | timeout 10 "$ocvm" console --config "$cfg" 2>&1)
relay_lines=$(grep -a '^RELAY Uid:' <<<"$console_out" | tr -d '\r')
[ "$(grep -c . <<<"$relay_lines")" = 2 ] &&
    ! grep -v 'Uid: 65534 65534 65534 65534 .*NoNewPrivs: 1 ' <<<"$relay_lines" | grep -q . &&
    ! grep -vE 'CapEff: 0{16} CapBnd: 0{16} ' <<<"$relay_lines" | grep -q .
result "in the guest: ocvm-guest relay, keeper and relay, uid 65534, NoNewPrivs 1, no capability, empty bounding set" $? "$console_out"

out=$("$ocvm" check --config "$cfg" 2>&1)
result "ocvm check: clean" $? "$out"

# the host relay killed: the supervisor keeps its listeners open, so a client that comes before
# the next relay runs waits in the backlog and is answered by it
sleep 1.2 # the figures reach state.json once a second
accepted_before=$(json "['relay']['accepted']")
kill -9 "$relay"
t0=$SECONDS
healthy
result "a client that came while no host relay ran is answered once it is back ($((SECONDS - t0)) s)" $? "$(tail -5 "$rundir/supervisor.log")"
wait_for 10 bash -c "[ \"\$('$ocvm' status --json --config '$cfg' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"host_relay\"][\"restarts\"])')\" = 1 ]"
result "ocvm status counts the relay's restart" $? "$("$ocvm" status --config "$cfg" 2>&1)"
relay2=$(json "['host_relay']['pid']")
[ "$relay2" != "$relay" ] && [ "$relay2" -gt 0 ] && unprivileged "$relay2" &&
    [ "$(json "['host_relay']['last_exit']")" = "killed by signal KILL" ]
result "the new host relay (pid $relay2) is sandboxed the same; status says how the last one ended" $? "$(show "$relay2"); $("$ocvm" status --config "$cfg" 2>&1)"
sleep 1.2
accepted_after=$(json "['relay']['accepted']")
[ "$accepted_before" -gt 0 ] && [ "$accepted_after" -gt "$accepted_before" ]
result "the relay's counters add up across its processes (accepted $accepted_before, then $accepted_after)" $?
grep -q "the relay (pid $relay) killed by signal KILL; starting it again" "$rundir/supervisor.log"
result "the supervisor's log says the relay died and is started again" $? "$(grep relay "$rundir/supervisor.log" | tail -5)"

# a restart with the reduced set: QEMU exec'd as root again, -runas again
kill -9 "$qemu"
t0=$SECONDS
wait_for 120 bash -c "[ \"\$('$ocvm' status --json --config '$cfg' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"phase\"], d[\"restarts\"])')\" = 'ready 1' ]" &&
    wait_for 30 healthy
result "killed QEMU restarted by the reduced supervisor: ready again in $((SECONDS - t0)) s" $? "$(tail -5 "$rundir/supervisor.log")"
qemu2=$(json "['qemu_pid']")
unprivileged "$qemu2"
result "the new QEMU: uid ocvm, NoNewPrivs 1, Seccomp 2, CapEff 0" $? "$(show "$qemu2")"
[ "$(field "$supervisor" CapEff)" = "$keep" ]
result "the supervisor still holds exactly $keep" $?

out=$("$ocvm" down --config "$cfg" 2>&1)
result "down" $? "$out"
! ip link show vm-privtest >/dev/null 2>&1 && ! ip link show br-privtest >/dev/null 2>&1
result "down removed the TAP and the bridge (CAP_NET_ADMIN kept for it)" $? "$(ip -br link)"
! nft list table inet "ocvm_$name" >/dev/null 2>&1
result "down removed the nft table inet ocvm_$name" $?
[ ! -e "$rundir" ]
result "the runtime directory is gone, the staged secrets included" $? "$(ls -laR "$rundir" 2>&1)"
left=$(leftovers)
[ -z "$left" ]
result "no process of this test is left running" $? "$left"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
