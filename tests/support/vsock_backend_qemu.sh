#!/bin/sh
# The user-space vsock backend with a real QEMU (TCG) and the demo guest, end to end: the
# vhost-user handshake and the guest's virtio-vsock driver; a guest->host connection (READY=1
# over vmm.notify_socket to UDS_18788); host->guest `CONNECT 18789` through ocvm-guest relay to
# the stand-in gateway (GET /health sees peer 127.0.0.1; 8 MiB echoed, digest compared); a guest
# reset (rings stopped, then started again); QEMU killed and a new one reconnecting to the same
# backend; SIGTERM removing the sockets. The backend runs as `ocvm vsock-backend`. Skips (77)
# without QEMU or the demo guest.
# usage: vsock_backend_qemu.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
guest=${OCVM_GUEST_DIR:-$build/guest}
client="python3 $src/tests/support/hybrid_client.py"

skip() {
    echo "skip: $*"
    exit 77
}
fail() {
    echo "FAIL: $*"
    for f in backend.log qemu.log console.log; do
        [ -f "$tmp/$f" ] && { echo "--- $f"; tail -n 30 "$tmp/$f"; }
    done
    exit 1
}
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
command -v python3 >/dev/null || skip "no python3"
[ -f "$guest/vmlinuz" ] && [ -f "$guest/initrd.img" ] ||
    skip "no demo guest in $guest (scripts/build-guest makes it)"
[ -x "$build/ocvm" ] || skip "no $build/ocvm"

tmp=$(mktemp -d /tmp/ocvm-vsock-qemu.XXXXXX)
backend="" qemu="" listener=""
cleanup() {
    for p in $qemu $listener $backend; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s
wait_for() {
    n=$(($1 * 5))
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.2
    done
}
count() { grep -c "$1" "$tmp/backend.log" || true; }
at_least() { [ "$(count "$1")" -ge "$2" ]; }

start_qemu() {
    qemu-system-x86_64 -nodefaults -no-user-config -display none \
        -M microvm,acpi=on,rtc=on,pic=off -accel tcg -cpu max -smp 1 -m 512M \
        -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
        -global virtio-mmio.force-legacy=false -device i8042 \
        -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
        -append "console=ttyS0 panic=-1 tsc_early_khz=2000000 \
systemd.set_credential=vmm.notify_socket:vsock-stream:2:18788 \
ocvm.relay=vsock:any:18789,tcp:127.0.0.1:18789" \
        -serial "file:$tmp/console.log" -qmp "unix:$tmp/qmp.sock,server=on,wait=off" \
        -chardev "socket,id=vsock0,path=$tmp/vu.sock" \
        -device vhost-user-vsock-device,chardev=vsock0 >>"$tmp/qemu.log" 2>&1 &
    qemu=$!
}
qmp() {
    python3 - "$tmp/qmp.sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush(); f.readline()
PY
}
health() { $client get "$tmp/v.sock" 18789 /health | grep -q '"peer":"127.0.0.1"'; }

"$build/ocvm" vsock-backend --socket "$tmp/vu.sock" --guest-cid 3 --uds "$tmp/v.sock" \
    2>"$tmp/backend.log" &
backend=$!
wait_for 5 test -S "$tmp/vu.sock" || fail "backend did not listen"
$client listen "$tmp/v.sock_18788" 150 >"$tmp/notify.out" &
listener=$!
start_qemu

wait_for 150 grep -q READY=1 "$tmp/notify.out" || fail "no READY=1 from the guest over vsock"
at_least "device running" 1 || fail "device never ran"
if grep -i -E "virtio.*(fail|error)|vsock.*(fail|error)" "$tmp/console.log"; then
    fail "guest kernel complained"
fi
echo "ok: handshake, guest driver up, guest->host connection (READY=1)"
wait_for 30 health || fail "GET /health through CONNECT 18789"
echo "ok: host->guest CONNECT, gateway sees 127.0.0.1"
out=$($client echo "$tmp/v.sock" 18789 $((8 * 1024 * 1024))) || fail "8 MiB echo"
echo "ok: 8 MiB echoed intact ($out)"

qmp system_reset
wait_for 20 at_least "device stopped" 1 || fail "guest reset did not stop the device"
wait_for 150 at_least "device running" 2 || fail "device not restarted after the guest reset"
wait_for 150 health || fail "GET /health after the guest reset"
echo "ok: guest reset: rings stopped and restarted, connections work again"

kill -9 "$qemu"
wait "$qemu" 2>/dev/null || true
wait_for 10 at_least "front-end disconnected" 1 || fail "backend missed QEMU going away"
kill -0 "$backend" || fail "backend died with QEMU"
start_qemu
wait_for 150 health || fail "GET /health with a new QEMU"
echo "ok: QEMU killed, a new QEMU reconnected to the same backend"

kill "$qemu"
wait "$qemu" 2>/dev/null || true
qemu=""
kill -TERM "$backend"
status=0
wait "$backend" || status=$?
backend=""
[ "$status" -eq 0 ] || fail "backend exited $status after SIGTERM"
[ ! -e "$tmp/vu.sock" ] && [ ! -e "$tmp/v.sock" ] || fail "sockets left behind"
if grep -q "AddressSanitizer\|runtime error" "$tmp/backend.log"; then
    fail "sanitizer report"
fi
echo "ok: SIGTERM: clean exit, sockets removed"
