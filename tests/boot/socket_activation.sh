#!/bin/bash
# `ocvm up` as systemd/ocvm@.service runs it, socket-activated by systemd/ocvm-gateway@.socket, with
# the demo guest under TCG and the user vsock backend, in a network namespace of its own. The test
# plays systemd: NOTIFY_SOCKET is a datagram socket it reads, and LISTEN_FDS/LISTEN_PID/
# LISTEN_FDNAMES pass a listening TCP socket it opened on 127.0.0.1:PORT, at fd 3, to ocvm itself
# (opened, then exec'd in the same process, so LISTEN_PID is ocvm's pid). It proves:
#   a client that connected before ocvm even ran, and one that connects during the boot, are not
#   refused: both wait in the backlog and get GET /health 200 once the VM is ready;
#   EXTEND_TIMEOUT_USEC= arrives with each readiness stage during the boot, none after READY=1;
#   READY=1 comes after every readiness stage;
#   a passed socket bound to another address than gateway.host_listen, or one more beside it, is
#   refused with one error naming both addresses, before QEMU starts.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns "$@"
boot_setup "${1:-}" sockacttest python3 curl
sup='' listener=''
boot_cleanup_hook() {
    [ -n "$sup" ] && kill -9 "$sup" 2>/dev/null
    [ -n "$listener" ] && kill "$listener" 2>/dev/null
}
now() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
# two free ports (the namespace is the test's own: any would do, but not a fixed one)
read -r port other < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')

cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 1, "memory_mib": 512, "user": "nobody" },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user" },
  "network": null,
  "gateway": { "host_listen": "127.0.0.1:$port", "health_path": "/health" },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON

# systemd's side of sd_notify: a datagram socket; each message one line, "SECONDS<TAB>A|B|C"
cat >"$tmp/listen.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        msg = s.recv(4096).decode(errors="replace").strip().replace("\n", "|")
        out.write("%.3f\t%s\n" % (time.monotonic(), msg))
PY
# systemd's side of socket activation: activate.py HOST:PORT[,HOST:PORT...] EARLY_OUT PROG ARGS...
# listens on each address, passes them at fd 3, 4, ... (LISTEN_FDS, LISTEN_PID = this process,
# which then execs PROG), named "gateway", "extra", ... (LISTEN_FDNAMES). With EARLY_OUT (not -),
# a client connects to the first before PROG runs and writes "MONOTONIC<TAB>STATUS LINE" there
# when its GET /health is answered (or "MONOTONIC<TAB>ERROR ...").
cat >"$tmp/activate.py" <<'PY'
import fcntl, os, socket, sys, time
addrs, early, argv = sys.argv[1].split(","), sys.argv[2], sys.argv[3:]
socks = []
for a in addrs:
    host, port = a.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)
    socks.append(s)
if early != "-":
    host, port = addrs[0].rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=5)  # done: it is in the backlog
    if os.fork() == 0:
        for s in socks:
            s.close()
        c.settimeout(300)
        try:
            c.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            line = data.split(b"\r\n")[0].decode(errors="replace") or "ERROR empty reply"
        except Exception as e:
            line = "ERROR %s" % e
        with open(early, "w") as f:
            f.write("%.3f\t%s\n" % (time.monotonic(), line))
        os._exit(0)
    c.close()
high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s in socks]
for s in socks:
    s.close()
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(addrs)),
           LISTEN_FDNAMES=":".join(["gateway", "extra", "more"][: len(addrs)]))
os.execve(argv[0], argv, env)
PY

# --- a passed socket that is not gateway.host_listen: one clear error, nothing started
timeout 60 python3 "$tmp/activate.py" "127.0.0.1:$other" - "$ocvm" up --config "$cfg" >"$tmp/mismatch.log" 2>&1
rc=$?
errs=$(grep -c "socket activation" "$tmp/mismatch.log")
line=$(grep "socket activation" "$tmp/mismatch.log")
if [ $rc = 1 ] && [ "$errs" = 1 ] && grep -qF "127.0.0.1:$other" <<<"$line" && grep -qF "127.0.0.1:$port" <<<"$line" &&
    grep -qF "gateway.host_listen" <<<"$line"; then
    ok "a socket on 127.0.0.1:$other for gateway.host_listen 127.0.0.1:$port: exit 1, one error naming both"
else
    bad "mismatched socket: exit $rc, $errs error line(s): $(cat "$tmp/mismatch.log")"
fi
echo "     $line"
! grep -q "QEMU started" "$tmp/mismatch.log" && ok "... and no QEMU was started" || bad "QEMU started with a mismatched socket"

timeout 60 python3 "$tmp/activate.py" "127.0.0.1:$port,127.0.0.1:$other" - "$ocvm" up --config "$cfg" >"$tmp/extra.log" 2>&1
rc=$?
line=$(grep "socket activation" "$tmp/extra.log")
if [ $rc = 1 ] && [ "$(grep -c "socket activation" "$tmp/extra.log")" = 1 ] &&
    grep -qF "fd 4 (\"extra\"" <<<"$line" && grep -qF "127.0.0.1:$other" <<<"$line"; then
    ok "a second passed socket (fd 4, 127.0.0.1:$other) that matches nothing: exit 1, one error naming it"
else
    bad "extra socket: exit $rc: $(cat "$tmp/extra.log")"
fi

# --- the real thing: the socket exists (and a client waits in it) before ocvm runs
: >"$tmp/notify.log"
python3 "$tmp/listen.py" "$tmp/notify.sock" "$tmp/notify.log" &
listener=$!
wait_for 10 test -S "$tmp/notify.sock" || { bad "the notify listener did not start"; exit 1; }
: >"$tmp/up.log"
NOTIFY_SOCKET="$tmp/notify.sock" python3 "$tmp/activate.py" "127.0.0.1:$port" "$tmp/early.out" \
    "$ocvm" up --config "$cfg" >>"$tmp/up.log" 2>&1 &
sup=$!
# a second client, once the VM is booting (QEMU started) but not ready
if wait_for 60 grep -q "QEMU started" "$tmp/up.log"; then
    grep -q "READY=1" "$tmp/notify.log" && during_ready=yes || during_ready=no
    curl -s -m 240 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" >"$tmp/during.out" 2>&1 &
    during=$!
else
    bad "QEMU did not start: $(tail -5 "$tmp/up.log")"; exit 1
fi
if wait_for 180 grep -q "READY=1" "$tmp/notify.log"; then
    ok "ready (READY=1 over NOTIFY_SOCKET) in $SECONDS s"
else
    bad "not ready: $(tail -5 "$tmp/up.log")"; exit 1
fi
grep -q "the socket systemd passed (fd 3)" "$tmp/up.log" && ok "ocvm says it took the socket systemd passed" ||
    bad "no line about the passed socket: $(head -5 "$tmp/up.log")"
t_guest=$(awk -F'\t' '$2 ~ /(^|\|)STATUS=guest ready(\||$)/ { print $1; exit }' "$tmp/notify.log")

wait_for 30 test -s "$tmp/early.out"
read -r t_early early_line <"$tmp/early.out" 2>/dev/null
if [[ "${early_line:-}" == "HTTP/1."?" 200"* ]] && awk -v a="$t_early" -v b="$t_guest" 'BEGIN { exit !(a >= b) }'; then
    ok "the client that connected before ocvm ran was not refused: $early_line, once the guest was ready"
else
    bad "the early client got '${early_line:-nothing}' at ${t_early:-?} (guest ready at ${t_guest:-?})"
fi
wait "$during" 2>/dev/null
code=$(cat "$tmp/during.out")
if [ "$during_ready" = no ] && [ "$code" = 200 ]; then
    ok "the client that connected during the boot (before READY=1) waited and got 200"
else
    bad "the client during the boot (READY seen before it: $during_ready) got '$code'"
fi

# READY=1 after every stage; EXTEND_TIMEOUT_USEC= with each stage, none after READY=1
stages=$(awk -F'\t' '$2 ~ /READY=1/ { exit } { n = split($2, f, "|"); for (i = 1; i <= n; i++)
    if (f[i] ~ /^STATUS=/) print substr(f[i], 8) }' "$tmp/notify.log")
want=("QEMU started" "QMP connected" "guest running" "guest ready" "gateway healthy")
missing=""
for st in "${want[@]}"; do grep -qx "$st" <<<"$stages" || missing="$missing '$st'"; done
[ -z "$missing" ] && [ "$(tail -1 <<<"$stages")" = "gateway healthy" ]
result=$?
[ $result = 0 ] && ok "READY=1 after the stages: $(paste -sd, <<<"$stages")" ||
    bad "stages before READY=1 (missing:$missing): $(paste -sd, <<<"$stages")"
ext_before=$(awk -F'\t' '$2 ~ /READY=1/ { exit } $2 ~ /EXTEND_TIMEOUT_USEC=60000000/' "$tmp/notify.log" | wc -l)
stage_msgs=$(awk -F'\t' '$2 ~ /READY=1/ { exit } $2 ~ /STATUS=/' "$tmp/notify.log" | wc -l)
[ "$ext_before" -ge 5 ] && [ "$ext_before" = "$stage_msgs" ] &&
    ok "EXTEND_TIMEOUT_USEC=60000000 during the boot, with each of the $stage_msgs stage messages" ||
    bad "EXTEND_TIMEOUT_USEC during the boot: $ext_before, stage messages: $stage_msgs"
sleep 2
ext_after=$(awk -F'\t' 'seen && /EXTEND_TIMEOUT_USEC/ { n++ } $2 ~ /READY=1/ { seen = 1 } END { print n + 0 }' "$tmp/notify.log")
[ "$ext_after" = 0 ] && ok "no EXTEND_TIMEOUT_USEC= after READY=1" || bad "$ext_after EXTEND_TIMEOUT_USEC= after READY=1"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
[ "$code" = 200 ] && ok "GET /health on the passed socket after ready: 200" || bad "GET /health after ready: $code"

"$ocvm" down --config "$cfg" >"$tmp/down.log" 2>&1
wait "$sup" 2>/dev/null
sup=''
[ ! -e "$OCVM_RUNTIME_DIR/$name" ] && ok "down: nothing left behind" ||
    bad "left: $(ls "$OCVM_RUNTIME_DIR/$name" 2>&1); down: $(cat "$tmp/down.log"); up: $(tail -5 "$tmp/up.log")"

boot_finish
