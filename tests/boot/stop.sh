#!/bin/bash
# Signals to a supervisor, as a user or systemd sends them: SIGHUP is ignored (with a line) and
# the VM runs on; SIGTERM stops it gracefully, waiting up to timeouts.shutdown_s for the guest;
# a second SIGTERM (a second Ctrl-C, a second `ocvm down`) hurries to QMP quit at once instead of
# waiting out shutdown_s; nothing is left behind.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_setup "${1:-}" stoptest
sup=

# The guest is made deaf to ACPI (its power-button watcher is stopped from the console), so a
# graceful stop would wait the whole shutdown_s: as during an early boot, or with a hung guest.
cat >"$cfg" <<JSON
{
  "name": "$name",
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": null, "network": null,
  "timeouts": { "ready_s": 120, "shutdown_s": 60 }
}
JSON
: >"$tmp/up.log"
"$ocvm" up --config "$cfg" >>"$tmp/up.log" 2>&1 &
sup=$!
wait_for 60 grep -q "guest running" "$tmp/up.log" || { bad "the VM did not start: $(cat "$tmp/up.log")"; exit 1; }
wait_for 90 grep -q "ocvm-guest: ready" "$OCVM_RUNTIME_DIR/$name/console.log" ||
    { bad "the guest did not reach its init"; exit 1; }
(sleep 1; printf 'for p in $(pidof ocvm-guest); do kill $p; done; echo deaf-now\n'; sleep 2; printf '\035') |
    timeout 20 "$ocvm" console --config "$cfg" >"$tmp/console.out" 2>&1
grep -q deaf-now "$tmp/console.out" || bad "could not stop the watcher: $(cat "$tmp/console.out")"
qemu=$("$ocvm" status --json --config "$cfg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["qemu_pid"])')

kill -HUP "$sup"
sleep 1
alive "$sup" && alive "$qemu" && grep -q "received Hangup: ignored" "$tmp/up.log" &&
    ok "SIGHUP is ignored, with a line saying so; the VM runs on" || bad "after SIGHUP: $(tail -3 "$tmp/up.log")"

kill -TERM "$sup"
sleep 2
alive "$sup" && grep -q "asking the guest to power off (up to 60 s)" "$tmp/up.log" &&
    ok "SIGTERM: a graceful stop begins (power-off, up to shutdown_s)" || bad "after SIGTERM: $(tail -3 "$tmp/up.log")"
t0=$SECONDS
kill -TERM "$sup"
if wait_for 15 bash -c "! { [ -r /proc/$sup/stat ] && [ \$(awk '{print \$3}' /proc/$sup/stat) != Z ]; }"; then
    ok "a second SIGTERM hurries the stop: gone in $((SECONDS - t0)) s, not 60"
else
    bad "a second SIGTERM did not hurry the stop: $(tail -3 "$tmp/up.log")"
fi
wait "$sup" 2>/dev/null
sup=
grep -q "received Terminated again: hurrying the stop" "$tmp/up.log" && ok "and says so" ||
    bad "no line about hurrying: $(tail -5 "$tmp/up.log")"
! alive "$qemu" && [ ! -e "$OCVM_RUNTIME_DIR/$name" ] && ok "QEMU and the runtime directory are gone" ||
    bad "left behind: QEMU alive=$(alive "$qemu" && echo yes || echo no), $(ls "$OCVM_RUNTIME_DIR" 2>&1)"

boot_finish
