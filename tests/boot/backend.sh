#!/bin/bash
# The user vsock backend as `ocvm up` runs it, with the demo guest: a child of the supervisor,
# sandboxed before it reads guest memory, and survived when it dies.
#   /proc/PID/status of the backend: NoNewPrivs 1, Seccomp 2, no capability (effective,
#   permitted, and as root the bounding set), and as root another uid (machine.user's);
#   its open files: sockets, pipes, event fds, /dev/null only, nothing of the filesystem;
#   killed with SIGKILL: while it is down a client of the gateway gets an error at once (no hang),
#   then QEMU and a new backend start, the gateway answers again, and `ocvm status` shows the
#   backend's restart and its last exit (and QEMU's reason); `down` leaves nothing behind.
# As root the test runs in a network namespace of its own (the gateway's port stays private);
# otherwise on a free loopback port.
set -uo pipefail
if [ "$(id -u)" = 0 ] && [ -z "${OCVM_TEST_NETNS:-}" ] && command -v unshare >/dev/null; then
    export OCVM_TEST_NETNS=1
    exec unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
build=$(realpath "${1:?usage: backend.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm="$build/ocvm"
guest="$build/guest"
command -v qemu-system-x86_64 >/dev/null || { echo "skip: qemu-system-x86_64 is not installed"; exit 77; }
[ -f "$guest/vmlinuz" ] || { echo "skip: no demo guest in $guest (scripts/build-guest makes it)"; exit 77; }
command -v curl >/dev/null || { echo "skip: no curl"; exit 77; }
if [ "$(id -u)" = 0 ] && ! getent passwd ocvm >/dev/null; then
    echo "skip: no user ocvm (machine.user's default; scripts/deps creates it)"; exit 77
fi
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

tmp=$(mktemp -d /tmp/ocvm-backend-XXXXXX)
export OCVM_RUNTIME_DIR="$tmp/run"
name=backendtest
rundir="$OCVM_RUNTIME_DIR/$name"
cfg="$tmp/$name.json"
# Our own leftovers, if a check failed: processes whose command line names our temp dir.
leftovers() { pgrep -f -- "$tmp/" | grep -vx "$$" || true; }
cleanup() {
    [ -f "$rundir/state.json" ] && "$ocvm" down --config "$cfg" >/dev/null 2>&1
    for p in $(leftovers); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

port=18789
[ -n "${OCVM_TEST_NETNS:-}" ] ||
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 2, "memory_mib": 1024 },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user", "guest_cid": 3 },
  "gateway": { "host_listen": "127.0.0.1:$port" },
  "network": null,
  "restart": { "max_restarts": 3, "backoff_initial_ms": 200 },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON
json() { "$ocvm" status --json --config "$cfg" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
wait_for() { # SECONDS COMMAND...: true once COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $deadline ]; do "$@" && return 0; sleep 0.3; done
    return 1
}
field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ +/, ""); print }' "/proc/$1/status"; }
healthy() { curl -s -m 10 "http://127.0.0.1:$port/health" | grep -q '"peer":"127.0.0.1"'; }
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

start=$SECONDS
if ! out=$("$ocvm" up -d --config "$cfg" 2>&1); then
    result "up -d with the user backend" 1 "$out"
    exit 1
fi
result "up -d with the user backend: ready in $((SECONDS - start)) s" 0
supervisor=$(json "['supervisor_pid']")
backend=$(json "['vsock_backend']['pid']")
[ "$backend" -gt 0 ] && [ "$(awk '{print $4}' "/proc/$backend/stat")" = "$supervisor" ]
result "status names the backend (pid $backend), a child of the supervisor ($supervisor)" $?
grep -qa -- "--socket-fd" "/proc/$backend/cmdline"
result "the backend is ocvm vsock-backend, handed its sockets as fds" $? "$(tr '\0' ' ' <"/proc/$backend/cmdline")"

# what it gave up, before it read guest memory
sandboxed() { # PID: its status shows the sandbox; prints the lines
    local p=$1 want_uid ok=0
    grep -E '^(Uid|Groups|NoNewPrivs|Seccomp|CapEff|CapPrm|CapBnd):' "/proc/$p/status" | tr '\t' ' '
    [ "$(field "$p" NoNewPrivs)" = 1 ] && [ "$(field "$p" Seccomp)" = 2 ] &&
        [ "$(field "$p" CapEff)" = 0000000000000000 ] && [ "$(field "$p" CapPrm)" = 0000000000000000 ] || ok=1
    if [ "$(id -u)" = 0 ]; then
        want_uid=$(id -u ocvm)
        [ "$(field "$p" CapBnd)" = 0000000000000000 ] || ok=1
    else
        want_uid=$(id -u)
    fi
    [ "$(field "$p" Uid | awk '{print $1, $2, $3, $4}')" = "$want_uid $want_uid $want_uid $want_uid" ] || ok=1
    return $ok
}
out=$(sandboxed "$backend"); rc=$?
result "backend sandboxed: uid $(field "$backend" Uid | awk '{print $1}'), NoNewPrivs 1, Seccomp 2, no capabilities" $rc "$out"
echo "$out" | sed 's/^/     /'
files=$(ls -l "/proc/$backend/fd" | awk 'NR > 1 {print $NF}' | grep -vE '^(socket|pipe|anon_inode):|^/dev/null$')
[ -z "$files" ]
result "the backend holds no file of the filesystem (sockets, pipes, event fds, /dev/null)" $? "$files"

healthy
result "the gateway answers on 127.0.0.1:$port through the backend" $?

# the backend dies: an immediate error meanwhile, then QEMU and a new backend, ready again
qemu=$(json "['qemu_pid']")
kill -9 "$backend"
t0=$(date +%s%N)
curl -s -m 10 -o /dev/null "http://127.0.0.1:$port/health"
rc=$? dt=$((($(date +%s%N) - t0) / 1000000))
[ $rc != 0 ] && [ $dt -lt 3000 ]
result "while the backend is down a client fails at once (curl exit $rc in $dt ms), no hang" $?
wait_for 10 bash -c "! { [ -r /proc/$qemu/stat ] && [ \$(awk '{print \$3}' /proc/$qemu/stat) != Z ]; }"
result "QEMU, whose vhost-user device died with the backend, is stopped to be restarted" $?
t0=$SECONDS
wait_for 120 bash -c "[ \"\$('$ocvm' status --json --config '$cfg' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"phase\"], d[\"vsock_backend\"][\"restarts\"])')\" = 'ready 1' ]" &&
    wait_for 30 healthy
result "the gateway answers again $((SECONDS - t0)) s after the backend was killed" $?
backend2=$(json "['vsock_backend']['pid']")
last=$(json "['vsock_backend']['last_exit']")
[ "$backend2" -gt 0 ] && [ "$backend2" != "$backend" ] && [ "$last" = "killed by signal KILL" ]
result "status: a new backend (pid $backend -> $backend2), restarts 1, last exit \"$last\"" $?
qlast=$(json "['last_exit']")
grep -q "vsock backend died" <<<"$qlast"
result "status says why QEMU restarted: $qlast" $?
text=$("$ocvm" status --config "$cfg")
grep -q "vsock backend: pid $backend2, restarts 1, last exit: killed by signal KILL" <<<"$text"
result "ocvm status (text) shows the backend's restart" $? "$text"
out=$(sandboxed "$backend2")
result "the new backend is sandboxed too" $? "$out"
grep -q "vsock-backend: the backend (pid $backend) killed by signal KILL: restarting QEMU" "$rundir/supervisor.log"
result "the supervisor logged the backend's death (stage vsock-backend)" $? "$(tail -20 "$rundir/supervisor.log")"

out=$("$ocvm" down --config "$cfg" 2>&1)
result "down" $? "$out"
wait_for 10 bash -c "! { [ -r /proc/$backend2/stat ] && [ \$(awk '{print \$3}' /proc/$backend2/stat) != Z ]; }"
result "the backend is gone after down" $?
! alive "$supervisor"
result "the supervisor is gone" $?
[ ! -e "$rundir" ]
result "runtime directory removed (sockets included)" $? "$(ls -la "$rundir" 2>&1)"
left=$(leftovers)
[ -z "$left" ]
result "no process of this test is left running" $? "$left"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
