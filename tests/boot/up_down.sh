#!/bin/bash
# Boots the demo guest for real under QEMU (TCG when there is no KVM) and checks what a user
# relies on: `up -d` returns once the VM is up, status shows the stages, the guest reaches its
# init, the console works, a QEMU that is killed is restarted, and `down` powers the guest off
# and leaves no process, socket or runtime file behind.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_setup "${1:-}" boottest
[ -f "$guest/initrd.img" ] || { echo "skip: no demo guest in $guest (scripts/build-guest makes it)"; exit 77; }
boot_cleanup_hook() { [ -f "$rundir/state.json" ] && "$ocvm" down --config "$cfg" >/dev/null 2>&1; }

mkdir -p "$tmp/share" "$tmp/rw" && echo "from-the-host-$$" >"$tmp/share/hello.txt"
cat >"$cfg" <<JSON
{
  "name": "boottest",
  "machine": { "vcpu": 2, "memory_mib": 2048 },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": null,
  "network": null,
  "shares": [ { "tag": "data", "source": "$tmp/share", "proto": "virtiofs", "read_only": true },
              { "tag": "rw", "source": "$tmp/rw", "proto": "virtiofs", "read_only": false } ],
  "restart": { "max_restarts": 2, "backoff_initial_ms": 200 },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON

json() { "$ocvm" status --json --config "$cfg" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

# systemd's side of Type=notify: a datagram socket that records what ocvm sends it
python3 - "$tmp/notify.sock" "$tmp/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as log:
    try:
        while True:
            log.write(s.recv(4096).decode() + "\n---\n")
            log.flush()
    except socket.timeout:
        pass
PY
notify_pid=$!
for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done

start=$SECONDS
if out=$(NOTIFY_SOCKET="$tmp/notify.sock" "$ocvm" up -d --config "$cfg" 2>&1); then ok "up -d returns once ready ($((SECONDS - start)) s)"
else bad "up -d: $out"; exit 1; fi
sleep 0.3
grep -q "^READY=1" "$tmp/notify.log" && grep -q "^STATUS=ready in" "$tmp/notify.log" &&
    grep -q "^STATUS=QMP connected" "$tmp/notify.log" &&
    ok "sd_notify: STATUS per stage, then READY=1 (systemd Type=notify)" || {
    bad "sd_notify messages:"; cat "$tmp/notify.log"; }

phase=$(json "['phase']"); stages=$(json "[\"stages\"]")
[ "$phase" = ready ] && ok "status: phase ready" || bad "status phase is $phase"
for s in "config ok" "QEMU started" "QMP connected" "guest running"; do
    grep -q "'$s'" <<<"$stages" || bad "stage $s missing from $stages"
done
ok "status lists the readiness stages"
mode=$(stat -c %a "$rundir"); [ "$mode" = 700 ] && ok "runtime dir is 0700" || bad "runtime dir mode $mode"
for s in qmp.sock console.sock; do
    m=$(stat -c %a "$rundir/$s"); [ "$m" = 600 ] || bad "$s mode $m"
done

if wait_for 90 grep -q "ocvm-guest: ready" "$rundir/console.log"; then
    ok "guest init reached ready ($((SECONDS - start)) s after up)"
else
    bad "guest never printed its ready line"; tail -20 "$rundir/console.log"
fi

marker="console-works-$$"
console_out=$( (sleep 1; printf 'echo %s\n' "$marker"; printf 'cat /run/shares/data/hello.txt\n'
    printf 'touch /run/shares/data/new || echo write-refused\n'
    printf 'echo guest-wrote >/run/shares/rw/out.txt && mkdir /run/shares/rw/dir && chown 1234:1234 /run/shares/rw/dir && echo rw-ok\n'
    sleep 3; printf '\035') |
    timeout 20 "$ocvm" console --config "$cfg" 2>&1)
grep -q "$marker" <<<"$console_out" && ok "ocvm console reaches the guest shell" ||
    bad "console did not echo the marker: $console_out"
# 2048 MiB with a virtiofs share on microvm: the combination microvm.nix warns hangs QEMU
grep -q "from-the-host-$$" <<<"$console_out" && ok "the virtiofs share is mounted in the guest (2048 MiB)" ||
    bad "share content not seen in the guest: $console_out"
grep -q "write-refused" <<<"$console_out" && [ ! -e "$tmp/share/new" ] &&
    ok "a read_only share refuses writes" || bad "the guest could write to a read_only share"
# a read-write share's daemon (uid ocvm) creates files as the guest's uid and gid, chowns
grep -q "rw-ok" <<<"$console_out" && [ "$(cat "$tmp/rw/out.txt" 2>/dev/null)" = guest-wrote ] &&
    [ "$(stat -c %u:%g "$tmp/rw/out.txt")" = 0:0 ] && [ "$(stat -c %u:%g "$tmp/rw/dir")" = 1234:1234 ] &&
    ok "a read-write share: the guest's root writes a file (root's on the host) and chowns a directory" ||
    bad "read-write share: $console_out $(ls -lan "$tmp/rw")"
pgrep -x virtiofsd >/dev/null && ok "virtiofsd runs beside QEMU" || bad "no virtiofsd"

qemu1=$(json "['qemu_pid']")
kill -9 "$qemu1"
if wait_for 60 bash -c "[ \"\$('$ocvm' status --json --config '$cfg' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"phase\"], d[\"restarts\"])')\" = 'ready 1' ]"; then
    qemu2=$(json "['qemu_pid']")
    [ "$qemu2" != "$qemu1" ] && ok "a killed QEMU is restarted (pid $qemu1 -> $qemu2)" || bad "same QEMU pid after restart"
    last=$(json "['last_exit']")
    grep -q "killed by signal KILL" <<<"$last" && ok "status names the exit reason: $last" || bad "last_exit is '$last'"
else
    bad "QEMU not restarted after SIGKILL"
fi
wait_for 90 bash -c "[ \$(grep -c 'ocvm-guest: ready' '$rundir/console.log') -ge 2 ]" ||
    bad "restarted guest did not reach its init again"

supervisor=$(json "['supervisor_pid']"); qemu=$(json "['qemu_pid']")
start=$SECONDS
if out=$("$ocvm" down --config "$cfg" 2>&1); then ok "down ($((SECONDS - start)) s)"; else bad "down: $out"; fi
[ $((SECONDS - start)) -le 25 ] || bad "down took longer than shutdown_s + grace"
if alive "$qemu" || alive "$supervisor"; then
    bad "a process survived down (qemu $qemu, supervisor $supervisor)"
else
    ok "no QEMU or supervisor process left"
fi
[ ! -e "$rundir" ] && ok "runtime directory removed" || { bad "left behind:"; ls -la "$rundir"; }
[ -z "$(ps -eo ppid=,comm= | awk -v p="$supervisor" '$1 == p')" ] && ok "no child of the supervisor left (virtiofsd)" ||
    bad "children of the supervisor survived"
"$ocvm" status --config "$cfg" >/dev/null; [ $? = 3 ] && ok "status says stopped (exit 3)" || bad "status after down"

kill "$notify_pid" 2>/dev/null; wait "$notify_pid" 2>/dev/null
grep -q "^STOPPING=1" "$tmp/notify.log" && ok "sd_notify: STOPPING=1 on down" || bad "no STOPPING=1"

left=$(leftovers)
[ -z "$left" ] && ok "no process of this test is left running" ||
    bad "processes left running: $(ps -o pid=,args= -p "$(tr '\n' ',' <<<"$left" | sed 's/,$//')" | cut -c1-100)"

boot_finish
