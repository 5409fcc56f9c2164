#!/bin/bash
# `ocvm relay LISTEN CONNECT` as a user meets it, in a network namespace of its own: one line and
# exit 2 for each bad argument, no listener on a non-loopback address without
# --unsafe-listen-any, a drop-in for the socat line, connect timeout, connection limit, one
# log line (not one per client) while the target is down, and --sandbox: the relay in a
# sandboxed child that is started again when it dies.
set -uo pipefail
# shellcheck source=../support/own_netns.sh
. "$(dirname "$0")/../support/own_netns.sh"
build=${1:?usage: relay_cli.sh BUILD_DIR}
ocvm="$build/ocvm"
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
tmp=$(mktemp -d /tmp/ocvm-relay-cli-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=../support/check.sh
. "$(dirname "$0")/../support/check.sh"
# usage_error NAME PATTERN ARGS...: exit 2 and one line that matches PATTERN
usage_error() {
    local name=$1 pattern=$2 out status
    shift 2
    out=$("$ocvm" relay "$@" 2>&1)
    status=$?
    [ "$status" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ "$out" =~ $pattern ]]
    result "$name" $? "status $status, output: $out"
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# without connecting (a probe connection would count against --max-connections)
wait_listening() {
    for _ in $(seq 100); do
        [ -n "$(ss -Hltn "sport = :$1")" ] && return 0
        sleep 0.05
    done
    return 1
}
# closed_within SECONDS PORT: a client of PORT sees EOF or a reset within SECONDS
closed_within() {
    timeout "$1" python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    c.recv(1)
except ConnectionResetError:
    pass' "$2" 2>/dev/null
}
start_relay() { # LOG ARGS...: starts ocvm relay in the background; sets relay_pid
    local log=$1
    shift
    "$ocvm" relay "$@" 2>"$log" &
    relay_pid=$!
    pids+=("$relay_pid")
}
stop_relay() { # returns the relay's exit status after SIGTERM
    kill "$relay_pid"
    wait "$relay_pid"
}

base=$((30000 + RANDOM % 10000))
p_listen=$base p_echo=$((base + 1)) p_dead=$((base + 2)) p_black=$((base + 3))

usage_error "no arguments: usage" '^usage: ocvm relay'
usage_error "bad LISTEN names it" '^ocvm relay: LISTEN "tcp:127.0.0.1":' tcp:127.0.0.1 tcp:127.0.0.1:1
usage_error "bad CONNECT names it" '^ocvm relay: CONNECT "vsock:x:1":' tcp:127.0.0.1:1 vsock:x:1
usage_error "cannot listen on hybrid" 'cannot listen on a hybrid endpoint' hybrid:/tmp/x:1 tcp:127.0.0.1:1
usage_error "bad --max-connections names it" '--max-connections: "lots" is not a valid number' \
    --max-connections lots tcp:127.0.0.1:1 tcp:127.0.0.1:2
usage_error "unknown option" 'unknown option "--fast"' --fast tcp:127.0.0.1:1 tcp:127.0.0.1:2
usage_error "0.0.0.0 refused without --unsafe-listen-any" 'not a loopback address.*--unsafe-listen-any' \
    "tcp:0.0.0.0:$p_listen" "tcp:127.0.0.1:$p_echo"
usage_error "[::] refused without --unsafe-listen-any" 'not a loopback address' \
    "tcp:[::]:$p_listen" "tcp:127.0.0.1:$p_echo"
check "and nothing listens after the refusals" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$p_listen) 2>/dev/null"

# an echo server as the target
python3 -c '
import socket, sys, threading
l = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def echo(c):
    while (b := c.recv(65536)):
        c.sendall(b)
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()' "$p_echo" &
pids+=($!)
wait_listening "$p_echo"

start_relay "$tmp/any.log" --unsafe-listen-any "tcp:0.0.0.0:$p_listen" "tcp:127.0.0.1:$p_echo"
check "--unsafe-listen-any listens on 0.0.0.0" wait_listening "$p_listen"
stop_relay
check "SIGTERM: exit 0" [ $? = 0 ]

# the drop-in for `socat TCP-LISTEN:...,fork TCP:...`, with half-close
start_relay "$tmp/dropin.log" "tcp:127.0.0.1:$p_listen" "tcp:127.0.0.1:$p_echo"
wait_listening "$p_listen"
# the file first: cmp runs alongside the client, and must not open it before it exists
head -c 3000000 /dev/urandom >"$tmp/sent"
got=$(python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(sys.stdin.buffer.read()); c.shutdown(socket.SHUT_WR)
out = bytearray()
while (b := c.recv(65536)):
    out += b
sys.stdout.buffer.write(out)' "$p_listen" <"$tmp/sent" | cmp - "$tmp/sent" && echo same)
check "3 MB echoed through it after a half-close, unchanged" [ "$got" = same ]
start2_log="$tmp/dropin2.log"
"$ocvm" relay "tcp:127.0.0.1:$p_listen" "tcp:127.0.0.1:$p_echo" 2>"$start2_log"
check "a second relay on the same port: exit 1" [ $? = 1 ]
check "with a line saying why ($(head -1 "$start2_log"))" grep -q "listen on tcp:127.0.0.1:$p_listen: Address already in use" "$start2_log"
stop_relay

# a target that is down: clients are reset at once, and the log gets one line, not one per client
start_relay "$tmp/down.log" "tcp:127.0.0.1:$p_listen" "tcp:127.0.0.1:$p_dead"
wait_listening "$p_listen"
all=yes t0=$SECONDS
for _ in $(seq 20); do closed_within 2 "$p_listen" || all=no; done
check "20 clients of a dead target are each closed at once" [ "$all" = yes ]
lines=$(grep -c "cannot reach tcp:127.0.0.1:$p_dead: connect: Connection refused" "$tmp/down.log")
most=$(((SECONDS - t0 + 1) / 5 + 1))
check "a log line per 5 s at most, not one per client ($lines, at most $most)" \
    test "$lines" -ge 1 -a "$lines" -le "$most"
stop_relay

# connect timeout: SYNs to p_black vanish (an nft rule in this namespace)
if command -v nft >/dev/null && [ -n "${OCVM_TEST_NETNS:-}" ] &&
    nft add table inet relaytest 2>/dev/null &&
    nft "add chain inet relaytest out { type filter hook output priority 0; }" &&
    nft add rule inet relaytest out tcp dport "$p_black" drop; then
    start_relay "$tmp/timeout.log" --connect-timeout-ms 300 "tcp:127.0.0.1:$p_listen" \
        "tcp:127.0.0.1:$p_black"
    wait_listening "$p_listen"
    t0=$(date +%s%N)
    closed_within 5 "$p_listen"
    ok=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    in_time=no
    [ "$ok" = 0 ] && [ "$ms" -ge 250 ] && [ "$ms" -lt 3000 ] && in_time=yes
    check "a target that never answers: client closed after the 300 ms timeout ($ms ms)" \
        [ "$in_time" = yes ]
    check "the log says it timed out" grep -q "cannot reach tcp:127.0.0.1:$p_black: connect: Connection timed out" "$tmp/timeout.log"
    stop_relay
    nft delete table inet relaytest
else
    echo "skip connect timeout: no nft, or not in a namespace of our own"
fi

# the connection limit: the second client is turned away with a log line
start_relay "$tmp/limit.log" --max-connections 1 "tcp:127.0.0.1:$p_listen" "tcp:127.0.0.1:$p_echo"
wait_listening "$p_listen"
exec 5<>"/dev/tcp/127.0.0.1/$p_listen"
echo hold >&5
line=
read -r -t 5 line <&5
check "the first client is served" [ "$line" = hold ]
check "a second is turned away at once" closed_within 2 "$p_listen"
check "with a log line naming the limit" grep -q "connection limit (1) reached" "$tmp/limit.log"
exec 5>&-
stop_relay

# --sandbox: the relay in a sandboxed child, as `ocvm up` runs the host relay; this process keeps
# the listener and connects each target for it
usage_error "--splice and --sandbox refused together" 'do not go together' --splice --sandbox \
    tcp:127.0.0.1:1 tcp:127.0.0.1:2
start_relay "$tmp/sandbox.log" --sandbox --max-connections 1 "tcp:127.0.0.1:$p_listen" \
    "tcp:127.0.0.1:$p_echo"
wait_listening "$p_listen"
child_pid() { sed -n 's/.*sandboxed child, pid \([0-9]*\).*/\1/p; s/.*the relay started again (pid \([0-9]*\)).*/\1/p' "$tmp/sandbox.log" | tail -1; }
echoed() {
    timeout 10 python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=8)
c.sendall(b"ping")
print(c.recv(16).decode())' "$1" 2>/dev/null
}
check "--sandbox: a client echoed through the child" [ "$(echoed "$p_listen")" = ping ]
child=$(child_pid)
field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ +/, ""); print }' "/proc/$1/status" 2>/dev/null; }
check "its child ($child) is ocvm-relay, a child of the relay, NoNewPrivs 1, Seccomp 2, CapEff 0" \
    bash -c "[ '$(cat "/proc/$child/comm" 2>/dev/null)' = ocvm-relay ] &&
        [ '$(awk '{print $4}' "/proc/$child/stat" 2>/dev/null)' = '$relay_pid' ] &&
        [ '$(field "$child" NoNewPrivs)' = 1 ] && [ '$(field "$child" Seccomp)' = 2 ] &&
        [ '$(field "$child" CapEff)' = 0000000000000000 ]"
if [ "$(id -u)" = 0 ]; then
    check "as root, the child runs as nobody" [ "$(field "$child" Uid | awk '{print $2}')" = "$(id -u nobody)" ]
fi
exec 5<>"/dev/tcp/127.0.0.1/$p_listen"
echo hold >&5
line=
read -r -t 5 line <&5
check "--max-connections reaches the child: a second client is turned away" closed_within 2 "$p_listen"
exec 5>&-
kill -9 "$child"
check "the child killed: a client that comes meanwhile is served by the next one" \
    [ "$(echoed "$p_listen")" = ping ]
child2=$(child_pid)
check "a new child ($child2), and a line saying the old one died" \
    bash -c "[ -n '$child2' ] && [ '$child2' != '$child' ] && grep -q 'the relay (pid $child) killed by signal KILL' '$tmp/sandbox.log'"
stop_relay
check "SIGTERM: exit 0" [ $? = 0 ]
check "and the child is gone" bash -c "! kill -0 '$child2' 2>/dev/null"

echo "relay_cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
