#!/bin/bash
# ocvm-guest relay's readiness, run on the host with TCP endpoints (the static binary runs here):
# with --background it returns only once it listens, and it tells $NOTIFY_SOCKET READY=1 and its
# pid; bad arguments get one error line, exit 2, and no daemon. Started as root, it drops to
# nobody (65534, or --user UID[:GID]) with no_new_privs and no capability once it listens.
set -uo pipefail
# shellcheck source=../support/own_netns.sh
. "$(dirname "$0")/../support/own_netns.sh"
build=${1:?usage: guest_relay.sh BUILD_DIR}
guest="$build/ocvm-guest"
[ -x "$guest" ] || { echo "skipped: no $guest"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
tmp=$(mktemp -d /tmp/ocvm-guest-relay-XXXXXX)
daemons=()
cleanup() {
    for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=../support/check.sh
. "$(dirname "$0")/../support/check.sh"

# Receives one sd_notify datagram on $1 (waiting up to $2 s) into $1.msg ("none" if none came);
# returns once the socket is bound. Sets notify_pid.
notify_listener() {
    python3 - "$1" "$2" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(float(sys.argv[2]))
try:
    msg = s.recv(4096).decode().replace("\n", " ")
except socket.timeout:
    msg = "none"
open(sys.argv[1] + ".msg", "w").write(msg)
PY
    notify_pid=$!
    daemons+=("$notify_pid")
    for _ in $(seq 100); do [ -S "$1" ] && return; sleep 0.05; done
}
listening() { # PORT: is a TCP listener on 127.0.0.1:PORT now?
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# a target that answers each client with one line
port=$((30000 + RANDOM % 10000))
target=$((port + 1))
python3 -c '
import socket, sys
l = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    c, _ = l.accept(); c.sendall(b"hello from the target\n"); c.close()' "$target" &
daemons+=($!)
for _ in $(seq 100); do listening "$target" && break; sleep 0.05; done

notify_listener "$tmp/notify" 10
NOTIFY_SOCKET="$tmp/notify" "$guest" relay --background "tcp:127.0.0.1:$port" \
    "tcp:127.0.0.1:$target" 2>"$tmp/relay.log"
status=$?
check "--background exits 0 once set up" [ "$status" = 0 ]
check "it listens by the time it returns" listening "$port"
wait "$notify_pid"
msg=$(cat "$tmp/notify.msg")
pid=$(sed -n 's/^READY=1 MAINPID=\([0-9]*\)$/\1/p' <<<"$msg")
[ -n "$pid" ] && daemons+=("$pid")
check "NOTIFY_SOCKET got READY=1 and MAINPID ($msg)" [ -n "$pid" ]
check "the daemon is a running ocvm-guest" [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ocvm-guest ]
got=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat <&3")
check "it relays ($got)" [ "$got" = "hello from the target" ]
# started as root, the keeper and the relay it runs drop to nobody once they listen
if [ "$(id -u)" = 0 ]; then
    status_of() { grep -E "^$2:" "/proc/$1/status" | cut -f2- | tr '\t' ' '; }
    relay_pid=$(pgrep -P "$pid" | head -1)
    for p in "$pid" "$relay_pid"; do
        dropped=no
        [ -n "$p" ] && [ "$(status_of "$p" Uid)" = "65534 65534 65534 65534" ] &&
            [ "$(status_of "$p" Gid)" = "65534 65534 65534 65534" ] && [ "$(status_of "$p" NoNewPrivs)" = 1 ] &&
            [ "$(status_of "$p" CapEff)" = 0000000000000000 ] && [ "$(status_of "$p" CapBnd)" = 0000000000000000 ] &&
            dropped=yes
        check "as root: pid ${p:-none} runs as 65534 (Uid $(status_of "$p" Uid), Gid $(status_of "$p" Gid)), NoNewPrivs 1, no capability" \
            [ "$dropped" = yes ]
    done
fi
kill "$pid" 2>/dev/null
for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
check "SIGTERM stops it" [ ! -d "/proc/$pid" ]

# bad input: one line naming it, status 2, nothing left running, no READY
notify_listener "$tmp/notify2" 1
out=$(NOTIFY_SOCKET="$tmp/notify2" "$guest" relay --background "tcp:127.0.0.1:$port" \
    "tcp:nowhere" 2>&1)
status=$?
check "a bad CONNECT exits 2 ($out)" [ "$status" = 2 ]
one_line=no
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [ -z "${out##*CONNECT \"tcp:nowhere\"*}" ] && one_line=yes
check "with one line naming it" [ "$one_line" = yes ]
check "and no listener left" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null"
wait "$notify_pid"
check "and no READY=1" [ "$(cat "$tmp/notify2.msg")" = none ]

# --user: numeric, never root; bad values get one line and status 2
out=$("$guest" relay --user 0 "tcp:127.0.0.1:$port" "tcp:127.0.0.1:$target" 2>&1)
status=$?
check "--user 0 is refused, exit 2 ($out)" [ "$status:${out##*--user \"0\": the relay does not run as root*}" = 2: ]
out=$("$guest" relay --user nobody "tcp:127.0.0.1:$port" "tcp:127.0.0.1:$target" 2>&1)
status=$?
check "--user nobody is refused, exit 2 ($out)" [ "$status:${out##*--user \"nobody\": expected UID*}" = 2: ]
if [ "$(id -u)" = 0 ]; then
    NOTIFY_SOCKET= "$guest" relay --background --user 4242:4343 "tcp:127.0.0.1:$port" \
        "tcp:127.0.0.1:$target" 2>>"$tmp/relay.log"
    kpid=$(pgrep -f -- "--user 4242:4343 tcp:127.0.0.1:$port" | head -1)
    [ -n "$kpid" ] && daemons+=("$kpid")
    got=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat <&3")
    ids=$(awk '/^Uid:/ {u = $2} /^Gid:/ {g = $2} END {print u ":" g}' "/proc/${kpid:-0}/status" 2>/dev/null)
    check "--user 4242:4343: runs as $ids and relays ($got)" [ "$ids:$got" = "4242:4343:hello from the target" ]
fi

echo "guest_relay: $passed passed, $failed failed"
[ "$failed" = 0 ]
