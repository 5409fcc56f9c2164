#!/bin/bash
# Every failure of a start reaches the user (docs/reliability.md "Starting"):
#   - `ocvm up -d` passes the supervisor's lines on as they come (the stages arrive while the
#     guest boots, not all at the end), returns once ready without holding the caller's pipes
#     (`$(ocvm up -d)`), and the later lines go to the logs only;
#   - a gateway port in use, a bogus QEMU option, a guest not ready in timeouts.ready_s: each
#     ends with the real error on the caller's stderr, a non-zero exit, and the error kept in
#     the VM's log ($OCVM_LOG_DIR/NAME.log), which the error names; the run before is NAME.log.1;
#   - a foreground `ocvm up` that fails names the kept log too.
# Runs in a network namespace of its own, with its own runtime, state and log directories.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns "$@"
boot_setup "${1:-}" uperrtest python3
kept="$OCVM_LOG_DIR/$name.log"
holder=
boot_cleanup_hook() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
}

write_config() { # EXTRA_MACHINE_KEYS READY_S
    cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 1, "memory_mib": 512, "user": "nobody" $1 },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user" },
  "network": null,
  "gateway": { "host_listen": "127.0.0.1:18789", "health_path": "/health" },
  "restart": { "max_restarts": 0 },
  "timeouts": { "ready_s": $2, "shutdown_s": 10 }
}
JSON
}

# `ocvm up -d` with each stderr line stamped (seconds since the start) as it arrives, and the
# time the command returned (stdout and stderr at their end: nothing of ours holds them)
cat >"$tmp/stamp.py" <<'PY'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
with open(sys.argv[1], "w", buffering=1) as out:
    for line in p.stderr:
        out.write("%.3f\t%s" % (time.monotonic() - t0, line.decode(errors="replace")))
    p.stdout.read()
    rc = p.wait()
    out.write("%.3f\tEXIT %d\n" % (time.monotonic() - t0, rc))
sys.exit(rc)
PY
up_d() { timeout 200 python3 "$tmp/stamp.py" "$tmp/up.err" "$ocvm" up -d --config "$cfg"; }
no_process_left() { [ -z "$(pgrep -f -- "$tmp/" | grep -vx "$$")" ] && [ ! -e "$OCVM_RUNTIME_DIR/$name" ]; }

# failed_start WHAT PATTERN: `up -d` failed (non-zero), the caller's stderr holds PATTERN and
# names the kept log, which holds PATTERN too; nothing is left running
failed_start() {
    local what=$1 pattern=$2 rc
    up_d; rc=$?
    if [ $rc != 0 ] && grep -q -- "$pattern" "$tmp/up.err" &&
        grep -q "the log of this run is kept in $kept" "$tmp/up.err" &&
        grep -q "failed to start" "$tmp/up.err"; then
        ok "$what: up -d exits $rc with the real error on stderr, naming the kept log"
    else
        bad "$what: up -d rc $rc, stderr:"; cat "$tmp/up.err"
    fi
    grep -q -- "$pattern" "$kept" 2>/dev/null && ok "$what: the kept log $kept holds the error" ||
        { bad "$what: the kept log lacks /$pattern/:"; cat "$kept" 2>/dev/null; }
    wait_for 10 no_process_left && ok "$what: nothing left (no process, no runtime directory)" ||
        bad "$what: left behind: $(pgrep -af -- "$tmp/" | grep -v "^$$ ")"
}

# ---- the gateway port in use ----
write_config "" 120
python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 18789)); s.listen(); time.sleep(600)' &
holder=$!
wait_for 5 python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18789))' 2>/dev/null
failed_start "gateway port in use" "Address already in use"
first_run=$(cat "$kept" 2>/dev/null)

# a foreground `up` says where its log is kept too
out=$(timeout 60 "$ocvm" up --config "$cfg" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "Address already in use" <<<"$out" &&
    grep -q "the log of this run is kept in $kept" <<<"$out" &&
    ok "foreground up: exits $rc with the error, naming the kept log" || bad "foreground up (rc $rc): $out"
[ -f "$kept.1" ] && [ "$(cat "$kept.1")" = "$first_run" ] &&
    ok "the run before is kept as $name.log.1" || bad "$kept.1 is not the run before"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; holder=

# ---- a bogus QEMU option ----
write_config ', "extra_args": ["-no-such-option"], "unsafe_extra_args": true' 120
failed_start "bogus QEMU option" "no-such-option: invalid option"

# ---- not ready in timeouts.ready_s ----
write_config "" 1
failed_start "ready timeout" "not ready after 1 s (timeouts.ready_s)"

# ---- a start that succeeds: the stages as they come, then the caller is free ----
write_config "" 120
up_d; rc=$?
if [ $rc = 0 ]; then
    ok "up -d succeeded ($(awk -F'\t' '/EXIT/ {print $1}' "$tmp/up.err") s)"
    at() { awk -F'\t' -v p="$1" 'index($2, p) {print $1; exit}' "$tmp/up.err"; }
    t_qmp=$(at "QMP connected") t_ready=$(at "ready in") t_exit=$(at "EXIT 0")
    if [ -n "$t_qmp" ] && [ -n "$t_ready" ] &&
        python3 -c "import sys; sys.exit(0 if $t_qmp + 1.0 < $t_ready <= $t_exit else 1)"; then
        ok "the stages arrive live: 'QMP connected' at ${t_qmp} s, 'ready' at ${t_ready} s, returned at ${t_exit} s"
    else
        bad "stages not live (QMP $t_qmp, ready $t_ready, exit $t_exit):"; cat "$tmp/up.err"
    fi
    grep -q "QMP connected" "$kept" && grep -q "ready in" "$kept" &&
        ok "the kept log holds the start" || bad "kept log: $(cat "$kept")"
    out=$(timeout 60 "$ocvm" down --config "$cfg" 2>&1) || bad "down: $out"
    wait_for 10 grep -q "stopped" "$kept" && ok "after up -d returned, the supervisor's lines go to the kept log" ||
        bad "kept log after down: $(tail -5 "$kept")"
    grep -q "stopped" "$tmp/up.err" && bad "a line after ready reached the caller" || true
else
    bad "up -d failed (rc $rc):"; cat "$tmp/up.err"
fi
wait_for 20 no_process_left || bad "left behind after down"

boot_finish
