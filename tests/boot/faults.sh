#!/bin/bash
# Faults around a running VM, and what ocvm promises for each (docs/reliability.md):
#   - state.json removed: `status` and `down` find the VM by its lock and say so; `down` stops it;
#   - the runtime directory removed: the supervisor makes it again; `status` and `down` find it;
#   - `down --force`: no ACPI power-off, QMP quit at once;
#   - `down` while the guest still boots: no ACPI power-off it could not act on yet;
#   - a supervisor and its QEMU that do not answer (SIGSTOP): `down` escalates, SIGTERM again,
#     then SIGKILL to both, bounded, and cleans up;
#   - an orphan QEMU (its supervisor SIGKILLed while QEMU was stuck): `status` names it, the next
#     `up` stops it and starts one QEMU, never two;
#   - a second `ocvm console` is refused, naming the first;
#   - state.json cannot be written during the start (a full tmpfs as the runtime directory, in a
#     private mount namespace), before QEMU starts or once it runs: the start stops with one
#     error, and nothing is left: no QEMU, no runtime directory.
# Everything runs in a network namespace of its own, with its own runtime dir and VM name.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns "$@"
boot_setup "${1:-}" faulttest
boot_cleanup_hook() { umount "$tmp/full" 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# the pids of this test's QEMUs: by their runtime directory on the command line
qemus() { pgrep -f -- "logfile=$rundir/console.log" || true; }
nothing_left() { [ -z "$(leftovers)" ] && [ ! -e "$rundir" ]; }

# vsock none: `up -d` returns once QEMU runs the guest, in a second or two
write_config() { # VSOCK SHUTDOWN_S
    cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 1, "memory_mib": 512 },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": $1, "network": null,
  "gateway": { "host_listen": "127.0.0.1:28931", "health_path": "/health" },
  "restart": { "max_restarts": 0 },
  "timeouts": { "ready_s": 120, "shutdown_s": $2 }
}
JSON
}
up_d() { "$ocvm" up -d --config "$cfg" >"$tmp/up.out" 2>&1 || { bad "up -d: $(cat "$tmp/up.out")"; return 1; }; }
sup_pid() { "$ocvm" status --json --config "$cfg" | field '["supervisor_pid"]'; }

write_config null 3

# ---- state.json removed: found by the lock ----
if up_d; then
    sup=$(sup_pid)
    rm -f "$rundir/state.json"
    out=$("$ocvm" status --config "$cfg" 2>&1); rc=$?
    [ $rc = 0 ] && grep -q "state.json missing; supervisor pid $sup holds the lock" <<<"$out" &&
        ok "state.json removed: status finds supervisor $sup by its lock and says so" ||
        bad "status without state.json (rc $rc): $out"
    found=$("$ocvm" status --json --config "$cfg" | field '["found_by"]')
    [ "$found" = lock ] && ok "status --json: found_by lock" || bad "status --json found_by: $found"
    out=$("$ocvm" down --config "$cfg" 2>&1); rc=$?
    [ $rc = 0 ] && grep -q "stopped" <<<"$out" && ! alive "$sup" && wait_for 5 nothing_left &&
        ok "state.json removed: down still stops the VM, nothing left" ||
        bad "down without state.json (rc $rc): $out; left: $(leftovers)"
fi

# ---- the runtime directory removed under the VM ----
if up_d; then
    sup=$(sup_pid)
    rm -rf "$rundir"
    out=$("$ocvm" status --config "$cfg" 2>&1)
    [ $? = 0 ] && ok "runtime dir just removed: status still finds the VM ($(sed -n 2p <<<"$out" | sed 's/^ *//'))" ||
        bad "status right after the runtime dir was removed: $out"
    if wait_for 5 test -f "$rundir/state.json"; then
        ok "the supervisor made its runtime directory again (state.json back)"
    else
        bad "the runtime directory was not made again: $(ls -la "$rundir" 2>&1)"
    fi
    [ "$(sup_pid)" = "$sup" ] && [ -n "$(qemus)" ] && ok "status reads it: supervisor $sup, QEMU running" ||
        bad "status after the runtime dir came back: $("$ocvm" status --config "$cfg" 2>&1)"
    out=$("$ocvm" down --config "$cfg" 2>&1); rc=$?
    [ $rc = 0 ] && ! alive "$sup" && wait_for 5 nothing_left && ok "and down stops it, nothing left" ||
        bad "down after the runtime dir was removed (rc $rc): $out; left: $(leftovers)"
fi

# ---- down --force: no ACPI power-off ----
if up_d; then
    sup=$(sup_pid)
    t0=$SECONDS
    out=$("$ocvm" down --force --config "$cfg" 2>&1); rc=$?
    dt=$((SECONDS - t0))
    [ $rc = 0 ] && [ $dt -le 8 ] && ! alive "$sup" && wait_for 5 nothing_left &&
        ok "down --force: stopped in $dt s, nothing left" ||
        bad "down --force (rc $rc, $dt s): $out; left: $(leftovers)"
fi
# (the supervisor's own log says how it stopped: run one in the foreground to read it)
"$ocvm" up --config "$cfg" >"$tmp/fg.log" 2>&1 &
fg=$!
if wait_for 60 grep -q "ready in" "$tmp/fg.log"; then
    "$ocvm" down --force --config "$cfg" >/dev/null 2>&1
    wait "$fg"
    grep -q "stopping at once (ocvm down --force: no ACPI power-off)" "$tmp/fg.log" &&
        ! grep -q "asking the guest to power off" "$tmp/fg.log" &&
        ok "down --force: the supervisor quits QEMU without the power-off, and says so" ||
        bad "down --force, the supervisor's log: $(tail -5 "$tmp/fg.log")"
else
    bad "foreground up: $(cat "$tmp/fg.log")"; kill "$fg" 2>/dev/null; wait "$fg"
fi

# ---- down while the guest still boots (vsock: not ready before the guest's READY) ----
write_config '{ "backend": "user" }' 30
"$ocvm" up --config "$cfg" >"$tmp/boot.log" 2>&1 &
fg=$!
if wait_for 60 grep -q "QMP connected" "$tmp/boot.log"; then
    t0=$SECONDS
    out=$("$ocvm" down --config "$cfg" 2>&1); rc=$?
    dt=$((SECONDS - t0))
    wait "$fg"
    [ $rc = 0 ] && [ $dt -le 8 ] && grep -q "still booting (not ready): no ACPI power-off" "$tmp/boot.log" &&
        ! grep -q "asking the guest to power off" "$tmp/boot.log" && wait_for 5 nothing_left &&
        ok "down during boot: no ACPI power-off, stopped in $dt s (shutdown_s is 30)" ||
        bad "down during boot (rc $rc, $dt s): $out; log: $(tail -5 "$tmp/boot.log")"
else
    bad "the booting VM: $(cat "$tmp/boot.log")"; kill "$fg" 2>/dev/null; wait "$fg"
fi

# ---- a supervisor and a QEMU that do not answer ----
write_config null 3
if up_d; then
    sup=$(sup_pid)
    qemu=$("$ocvm" status --json --config "$cfg" | field '["qemu_pid"]')
    kill -STOP "$qemu" "$sup"
    t0=$SECONDS
    out=$("$ocvm" down --config "$cfg" 2>&1); rc=$?
    dt=$((SECONDS - t0))
    [ $rc = 0 ] && ! alive "$sup" && ! alive "$qemu" && wait_for 5 nothing_left &&
        ok "a stuck supervisor and QEMU: down kills both in $dt s, nothing left" ||
        bad "down of a stuck supervisor (rc $rc, $dt s): $out; left: $(leftovers)"
    [ $dt -le 40 ] && grep -q "did not stop within 11 s: SIGTERM again" <<<"$out" &&
        grep -q "does not answer: killing QEMU (pid $qemu): SIGKILL" <<<"$out" &&
        grep -q "supervisor $sup does not answer: SIGKILL" <<<"$out" &&
        ok "each step is bounded and logged" || bad "the steps of down: $out"
fi

# ---- an orphan QEMU ----
"$ocvm" up --config "$cfg" >"$tmp/orphan.log" 2>&1 &
sup=$!
if wait_for 60 grep -q "ready in" "$tmp/orphan.log"; then
    orphan=$(qemus)
    kill -STOP "$orphan"  # stuck: it will not act on the SIGTERM its parent's death sends
    kill -9 "$sup"; wait "$sup" 2>/dev/null
    sleep 0.5
    if alive "$orphan"; then
        out=$("$ocvm" status --config "$cfg" 2>&1)
        grep -q "QEMU pid $orphan outlived its supervisor (an orphan)" <<<"$out" &&
            ok "status names the orphan QEMU $orphan" || bad "status with an orphan: $out"
        out=$("$ocvm" up -d --config "$cfg" 2>&1); rc=$?
        new=$(qemus)
        [ $rc = 0 ] && ! alive "$orphan" && [ -n "$new" ] && [ "$(wc -w <<<"$new")" = 1 ] &&
            ok "up stops the orphan (pid $orphan) and runs one QEMU (pid $new)" ||
            bad "up with an orphan (rc $rc): $out; QEMUs: $new"
        "$ocvm" down --config "$cfg" >/dev/null 2>&1
        wait_for 5 nothing_left || bad "left after the orphan test: $(leftovers)"
    else
        bad "the stopped QEMU did not outlive its supervisor"
    fi
else
    bad "up for the orphan test: $(cat "$tmp/orphan.log")"
fi

# ---- a second console ----
if up_d; then
    (sleep 6; printf '\035') | "$ocvm" console --config "$cfg" >"$tmp/con1.out" 2>&1 &
    con1=$!
    sleep 1
    out=$(timeout 5 "$ocvm" console --config "$cfg" </dev/null 2>&1); rc=$?
    [ $rc = 1 ] && grep -q "already attached" <<<"$out" &&
        ok "a second console is refused: $out" || bad "second console (rc $rc): $out"
    wait "$con1"
    "$ocvm" down --force --config "$cfg" >/dev/null 2>&1
    wait_for 5 nothing_left || bad "left after the console test: $(leftovers)"
fi

# ---- state.json cannot be written during the start ----
# A tmpfs of a few pages as the runtime directory's base, in a mount namespace of its own: the
# lock (our pid), the staged token and the first state.json take them, and a later write of
# state.json finds no room: with 12k before QEMU starts, with 16k once it runs (QMP connected).
for size in 12k 16k; do
    mkdir -p "$tmp/full"
    out=$(OCVM_RUNTIME_DIR="$tmp/full" unshare -m bash -c \
        'mount -t tmpfs -o size=$4,mode=0711 ocvm-faults "$1" || exit 99
         "$2" up --config "$3"; rc=$?
         echo "left in the runtime base: [$(ls -A "$1")]"; exit $rc' \
        _ "$tmp/full" "$ocvm" "$cfg" "$size" 2>&1); rc=$?
    stages=$(grep -o "\] [A-Za-z ]*$" <<<"$out" | tr -d ']' | paste -sd, -)
    [ $rc = 1 ] && grep -q "state.json: No space left on device: stopping the start" <<<"$out" &&
        ok "state.json on a full $size tmpfs (stages passed:$stages): the start stops" ||
        bad "a full $size runtime dir (rc $rc): $out"
    errors=$(grep -c "No space left on device\|start QEMU:\|ocvm: $name: .*: .*error" <<<"$out")
    [ "$errors" = 1 ] && ok "  with one error line" || bad "expected one error line, got $errors: $out"
    [ -z "$(pgrep -f -- "logfile=$tmp/full/$name/console.log")" ] && [ -z "$(leftovers)" ] &&
        ok "  and nothing is left: no QEMU, no process" || bad "left after a failed start: $(leftovers)"
    grep -q "left in the runtime base: \[\]" <<<"$out" && ok "  the runtime directory is removed" ||
        bad "runtime dir left: $out"
done

boot_finish
