#!/bin/bash
# The console when the runtime directory's file system is full (docs/reliability.md "The
# console"): QEMU writes console.log itself and drops what it cannot write without a word; the
# supervisor says so: once when console.log can no longer grow (the guest's output from then on
# is lost from it, `ocvm console` still shows it), and once when it can again, with how long and
# how much it grew meanwhile. The runtime directory is a small tmpfs in a private mount namespace;
# the kept log (OCVM_LOG_DIR) is elsewhere, so the supervisor's lines are not lost with it.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns --mount "$@"
boot_setup "${1:-}" confulltest
mkdir -p "$OCVM_RUNTIME_DIR"
mount --make-rprivate / 2>/dev/null
mount -t tmpfs -o size=512k,mode=0711 ocvm-confull "$OCVM_RUNTIME_DIR" ||
    { echo "skip: cannot mount a tmpfs"; exit 77; }
kept="$OCVM_LOG_DIR/$name.log"
boot_cleanup_hook() { umount "$OCVM_RUNTIME_DIR" 2>/dev/null; }
console() { (sleep 1; printf '%s\n' "$@"; sleep 4; printf '\035') |
    timeout 30 "$ocvm" console --config "$cfg" 2>&1 | tr -d '\r'; }

cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 1, "memory_mib": 512, "user": "nobody" },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": null, "network": null,
  "restart": { "max_restarts": 0 },
  "timeouts": { "ready_s": 120, "shutdown_s": 3 }
}
JSON
out=$("$ocvm" up -d --config "$cfg" 2>&1) || { bad "up -d: $out"; echo "0 passed, 1 failed"; exit 1; }
wait_for 90 grep -q "ocvm-guest: ready" "$rundir/console.log" ||
    bad "the guest never printed its ready line: $(tail -5 "$rundir/console.log")"
grep -q "console.*file system is full" "$kept" && bad "said full before it was"

# fill the runtime directory's file system
dd if=/dev/zero of="$OCVM_RUNTIME_DIR/filler" bs=4k 2>/dev/null
size0=$(stat -c %s "$rundir/console.log")
wait_for 10 grep -q "console: $rundir/console.log: its file system is full" "$kept" &&
    ok "full: the supervisor says console.log cannot grow ($(df -k --output=avail "$OCVM_RUNTIME_DIR" | tail -1 | tr -d ' ') KiB free)" ||
    { bad "no line about the full file system:"; tail -5 "$kept"; }
# more than the page console.log's end still has room in, then the marker; as typed, the command
# does not hold the marker (the tty echoes it): only the guest's output does
marker="lost-42-$$"
seen=$(console "seq 1 3000; echo lost-\$((6*7))-$$")
grep -q "$marker" <<<"$seen" && ok "ocvm console still shows what the guest writes" ||
    bad "the console did not show the marker: $seen"
grep -q "$marker" "$rundir/console.log" && bad "console.log holds the marker on a full file system" ||
    ok "console.log lacks it (QEMU dropped it: $(stat -c %s "$rundir/console.log") bytes, $size0 before)"

rm -f "$OCVM_RUNTIME_DIR/filler"
wait_for 10 grep -q "console: $rundir/console.log: room again" "$kept" &&
    ok "room again: $(grep -o 'room again.*' "$kept" | head -1 | cut -c1-90)..." ||
    { bad "no line about the room again:"; tail -5 "$kept"; }
[ "$(grep -c "console.*file system is full" "$kept")" = 1 ] && ok "said once per streak" ||
    bad "said $(grep -c "console.*file system is full" "$kept") times"
seen=$(console "echo back-\$((6*7))-$$")
wait_for 5 grep -q "back-42-$$" "$rundir/console.log" && ok "console.log grows again" ||
    bad "console.log does not grow again"

out=$("$ocvm" down --config "$cfg" 2>&1) || bad "down: $out"
nothing_left() { [ -z "$(leftovers)" ]; }
wait_for 15 nothing_left && ok "down: nothing left" || bad "processes left: $(pgrep -af -- "$tmp/")"
boot_finish
