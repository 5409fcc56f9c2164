#!/bin/bash
# Liveness after "ready", with the demo guest under TCG and the user vsock backend, in a network
# namespace of its own (its own loopback: the gateway port cannot clash with another test):
#   the guest relay killed in the guest is started again by its keeper, and the chain answers;
#   the stand-in gateway killed in the guest: `ocvm status` says degraded, with the reason, within
#   a few probe intervals; after gateway.probe_restart_after failed probes the VM is restarted
#   (the crash path: back-off, restart count, last exit) and becomes ready again;
#   systemd's watchdog (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID = the supervisor): WATCHDOG=1
#   arrives while healthy, stops while degraded (with STATUS=degraded: REASON), resumes after.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns "$@"
boot_setup "${1:-}" livetest python3 curl
sup= listener=
boot_cleanup_hook() {
    [ -n "$sup" ] && kill -9 "$sup" 2>/dev/null
    [ -n "$listener" ] && kill "$listener" 2>/dev/null
}
field() { "$ocvm" status --json --config "$cfg" 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)$1)" 2>/dev/null; }
phase_is() { [ "$(field "['phase']")" = "$1" ]; }
health() { curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:18789/health; }
# console CMDS: runs shell lines on the guest's console, prints what came back
console() { (sleep 1; printf '%s\n' "$@"; sleep 3; printf '\035') |
    timeout 30 "$ocvm" console --config "$cfg" 2>&1 | tr -d '\r'; }

cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 1, "memory_mib": 512, "user": "nobody" },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user" },
  "network": null,
  "gateway": { "health_path": "/health", "probe_interval_s": 1, "probe_failures": 2,
               "probe_restart_after": 6 },
  "restart": { "max_restarts": 3, "backoff_initial_ms": 500 },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON

# systemd's side of sd_notify: a datagram socket; each message one line, "SECONDS<TAB>A|B|C"
cat >"$tmp/listen.py" <<'PY'
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        msg = s.recv(4096).decode(errors="replace").strip().replace("\n", "|")
        out.write("%.3f\t%s\n" % (time.monotonic(), msg))
PY
: >"$tmp/notify.log"
python3 "$tmp/listen.py" "$tmp/notify.sock" "$tmp/notify.log" &
listener=$!
wait_for 10 test -S "$tmp/notify.sock" || { bad "the notify listener did not start"; exit 1; }
now() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
# dogs FROM [TO]: WATCHDOG=1 messages received between two monotonic times
dogs() { awk -F'\t' -v a="$1" -v b="${2:-1e18}" '$1 >= a && $1 <= b && $2 ~ /(^|\|)WATCHDOG=1(\||$)/' \
    "$tmp/notify.log" | wc -l; }

# WATCHDOG_PID must be the supervisor's own pid: a shell that knows its pid and execs ocvm
: >"$tmp/up.log"
NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=2000000 \
    sh -c 'export WATCHDOG_PID=$$; exec "$0" up --config "$1"' "$ocvm" "$cfg" >>"$tmp/up.log" 2>&1 &
sup=$!
if wait_for 180 grep -q "READY=1" "$tmp/notify.log"; then
    ok "ready (READY=1 over NOTIFY_SOCKET) in $SECONDS s"
else
    bad "not ready: $(tail -5 "$tmp/up.log")"; exit 1
fi
grep -q "systemd watchdog: WATCHDOG=1 every 1.0 s" "$tmp/up.log" &&
    ok "the supervisor takes WATCHDOG_USEC as meant for it" || bad "no watchdog line: $(head -5 "$tmp/up.log")"
t=$(now); sleep 3.5
n=$(dogs "$t")
[ "$n" -ge 2 ] && ok "WATCHDOG=1 arrives while healthy ($n in 3.5 s)" || bad "WATCHDOG=1 while healthy: $n in 3.5 s"
[ "$(health)" = 200 ] && ok "GET /health through the chain: 200" || bad "GET /health: $(health)"
qemu1=$(field "['qemu_pid']")

# --- the guest relay dies: its keeper starts it again, the chain answers again
out=$(console 'echo "OLD=$(pidof ocvm-relay)"; kill -9 $(pidof ocvm-relay); sleep 2; echo "NEW=$(pidof ocvm-relay)"' \
    'tail -2 /var/log/ocvm-guest-relay.log')
old=$(grep -o 'OLD=[0-9][0-9]*' <<<"$out" | head -1 | cut -d= -f2)
new=$(grep -o 'NEW=[0-9][0-9]*' <<<"$out" | head -1 | cut -d= -f2)
if [ -n "$old" ] && [ -n "$new" ] && [ "$old" != "$new" ]; then
    ok "the guest relay (pid $old) killed with SIGKILL is started again (pid $new)"
else
    bad "guest relay not started again (old '$old', new '$new'): $out"
fi
grep -q "was killed by signal Killed; starting it again" <<<"$out" && ok "the guest logs why it started the relay again" ||
    bad "no respawn line in the guest's relay log: $out"
[ "$(health)" = 200 ] && ok "GET /health through the chain again: 200" || bad "GET /health after the relay respawn: $(health)"
phase_is ready && ok "still ready (the kept listener held the clients for the pause)" ||
    bad "phase after the relay respawn: $(field "['phase']")"

# --- the gateway dies: degraded with a reason, the watchdog starves, then a restart
t_kill=$(now) # the kill comes a second into the console session
out=$(console 'kill $(pidof standin-gateway); echo gateway-killed')
grep -q "^gateway-killed" <<<"$out" || bad "could not kill the stand-in gateway: $out"
if wait_for 15 phase_is degraded; then
    ok "ocvm status says degraded at most $(python3 -c "print(round($(now) - $t_kill, 1))") s after the gateway's death"
else
    bad "not degraded: $(field "['phase']"), $(tail -3 "$tmp/up.log")"
fi
status=$("$ocvm" status --config "$cfg"); rc=$?
grep -q "^$name: degraded" <<<"$status" && grep -Eq "health: [0-9]+ probes failed in a row, last: .+" <<<"$status" &&
    ok "ocvm status prints the reason ($(grep health: <<<"$status" | sed 's/^ *//'))" ||
    bad "ocvm status while degraded (exit $rc): $status"
[ "$(field "['health']['failures']")" -ge 2 ] && [ -n "$(field "['health']['last_error']")" ] &&
    ok "status --json: health.failures and health.last_error" || bad "status --json health: $(field "['health']")"
grep -q "STATUS=degraded: " "$tmp/notify.log" && ok "systemd is told STATUS=degraded: REASON" ||
    bad "no STATUS=degraded: $(tail -3 "$tmp/notify.log")"
if wait_for 30 grep -q "restarting QEMU" "$tmp/up.log"; then
    ok "restarted after probe_restart_after failed probes"
else
    bad "no restart after failed probes: $(tail -5 "$tmp/up.log")"
fi
# between the first STATUS=degraded and the restart: no WATCHDOG=1
t_deg=$(awk -F'\t' '$2 ~ /STATUS=degraded: / {print $1; exit}' "$tmp/notify.log")
t_rst=$(awk -F'\t' '$2 ~ /STATUS=degraded: .*restarting/ {print $1; exit}' "$tmp/notify.log")
if [ -n "$t_deg" ] && [ -n "$t_rst" ]; then
    n=$(dogs "$t_deg" "$t_rst")
    span=$(python3 -c "print(round($t_rst - $t_deg, 1))")
    [ "$n" = 0 ] && python3 -c "import sys; sys.exit(0 if $span >= 1.5 else 1)" &&
        ok "no WATCHDOG=1 while degraded ($span s, the feed period is 1 s)" ||
        bad "while degraded for $span s: $n WATCHDOG=1"
else
    bad "degraded/restart notifications missing: $(cut -f2 "$tmp/notify.log" | grep -v WATCHDOG | tail -5)"
fi
if wait_for 180 phase_is ready && [ "$(field "['qemu_pid']")" != "$qemu1" ]; then
    ok "ready again with a new QEMU after the restart"
else
    bad "not ready again: $(field "['phase']"), $(tail -5 "$tmp/up.log")"
fi
[ "$(field "['restarts']")" = 1 ] && grep -q "health probes in a row" <<<"$(field "['last_exit']")" &&
    ok "restarts 1, last exit says why ($(field "['last_exit']"))" ||
    bad "restarts $(field "['restarts']"), last exit: $(field "['last_exit']")"
[ "$(health)" = 200 ] && ok "GET /health after the restart: 200" || bad "GET /health after the restart: $(health)"
t=$(now); sleep 3.5
n=$(dogs "$t")
[ "$n" -ge 2 ] && ok "WATCHDOG=1 resumes once healthy ($n in 3.5 s)" || bad "WATCHDOG=1 after the restart: $n in 3.5 s"

"$ocvm" down --config "$cfg" >/dev/null 2>&1
wait "$sup" 2>/dev/null
sup=
[ ! -e "$OCVM_RUNTIME_DIR/$name" ] && ok "down: nothing left behind" || bad "left: $(ls "$OCVM_RUNTIME_DIR/$name" 2>&1)"

boot_finish
