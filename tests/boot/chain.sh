#!/bin/bash
# The whole gateway path with a real guest, in a network namespace of its own (no host interface
# is touched): `ocvm up` with the TAP network and the user-space vsock backend under TCG, then
#   GET http://127.0.0.1:18789/health on the host -> 200, and the gateway saw the peer 127.0.0.1;
#   64 MiB through the chain (POST /echo) arrive intact (sha256 compared);
#   the gateway port is NOT reachable over the TAP address 192.168.83.2:18789;
#   while QEMU is down (killed), a client gets a prompt error, not a hang; it comes back;
#   `ocvm down` stops QEMU in time and leaves no process, socket, TAP, nft table or runtime file.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_in_netns "$@"
boot_setup "${1:-}" chaintest
# a supervisor killed at exit leaves its network: down undoes it
boot_cleanup_hook() { [ -f "$rundir/state.json" ] && "$ocvm" down --config "$cfg" >/dev/null 2>&1; }

# An uplink for NAT inside this namespace only: a veth pair with a default route into it.
ip link add up0 type veth peer name up0peer && ip addr add 10.250.77.1/24 dev up0 &&
    ip link set up0peer up && ip link set up0 up &&
    ip route add default via 10.250.77.2 || { bad "cannot make the test uplink"; exit 1; }

cat >"$cfg" <<JSON
{
  "name": "$name",
  "machine": { "vcpu": 2, "memory_mib": 2048, "user": "nobody" },
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet ocvm.relay=tcp:127.0.0.1:18790,tcp:127.0.0.1:18789" },
  "vsock": { "backend": "user", "guest_cid": 3 },
  "network": { "uplink": "up0" },
  "forwards": [ { "to": "guest", "listen": "tcp:127.0.0.1:19000", "guest_port": 18790 },
                { "to": "host", "guest_port": 18791, "connect": "tcp:127.0.0.1:28080" } ],
  "restart": { "max_restarts": 3, "backoff_initial_ms": 500 },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON
status_field() { "$ocvm" status --json --config "$cfg" | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

start=$SECONDS
if out=$("$ocvm" up -d --config "$cfg" 2>&1); then ok "up -d: ready through the whole chain in $((SECONDS - start)) s"
else bad "up -d failed:"; printf '%s\n' "$out"; cat "$rundir/supervisor.log" 2>/dev/null; exit 1; fi
stages=$(status_field "['stages']")
grep -q "guest ready" <<<"$stages" && grep -q "gateway healthy" <<<"$stages" &&
    ok "stages include guest ready (vsock READY) and gateway healthy" || bad "stages: $stages"
# READY=1 comes only once the guest relay listens, so the first health probe finds it (state.json
# is refreshed each second: the probe's figures are there after one)
sleep 1.2
errors=$(status_field "['relay']['errors']")
[ "$errors" = 0 ] && ok "no relay errors on the way to ready (READY after the guest relay listens)" ||
    bad "relay errors on the way to ready: $errors"

qemu_uid=$(awk '/^Uid:/ {print $3}' "/proc/$(status_field "['qemu_pid']")/status")
[ "$qemu_uid" = "$(id -u nobody)" ] && ok "QEMU runs as the configured user (nobody)" ||
    bad "QEMU runs as uid $qemu_uid, not nobody"
body=$(curl -s -m 10 -w ' %{http_code}' http://127.0.0.1:18789/health)
[[ "$body" == *'"peer":"127.0.0.1"'*' 200' ]] && ok "GET /health on the host: 200, the gateway saw peer 127.0.0.1" ||
    bad "GET /health: $body"

# Extra forwards. Host -> guest: 127.0.0.1:19000 -> vsock 18790 -> the guest's 127.0.0.1:18790
# (where a test relay on the kernel line leads on to the gateway).
body=$(curl -s -m 10 -w ' %{http_code}' http://127.0.0.1:19000/health)
[[ "$body" == *'"peer":"127.0.0.1"'*' 200' ]] && ok "forward to the guest: host 127.0.0.1:19000 reaches guest port 18790" ||
    bad "forward to the guest: $body"
# Guest -> host: the guest's 127.0.0.1:18791 -> vsock host port 18791 -> a host service.
mkdir -p "$tmp/www" && echo "host-service-$$" >"$tmp/www/index.html"
python3 -m http.server 28080 --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
web=$!
sleep 1
console_out=$( (sleep 1; printf 'wget -q -O - http://127.0.0.1:18791/index.html\n'; sleep 4; printf '\035') |
    timeout 20 "$ocvm" console --config "$cfg" 2>&1)
kill "$web"; wait "$web" 2>/dev/null
grep -q "host-service-$$" <<<"$console_out" && ok "forward to the host: the guest's 127.0.0.1:18791 reaches a host service" ||
    bad "forward to the host: $console_out"

head -c $((64 << 20)) /dev/urandom >"$tmp/in.bin"
t0=$SECONDS
code=$(curl -s -m 240 --data-binary @"$tmp/in.bin" -H 'Content-Type: application/octet-stream' \
    -o "$tmp/out.bin" -w '%{http_code}' http://127.0.0.1:18789/echo)
if [ "$code" = 200 ] && [ "$(sha256sum <"$tmp/in.bin")" = "$(sha256sum <"$tmp/out.bin")" ]; then
    ok "64 MiB through the chain and back, digest equal ($((SECONDS - t0)) s)"
else
    bad "64 MiB echo: HTTP $code, $(stat -c %s "$tmp/out.bin" 2>/dev/null) bytes back"
fi

if curl -s -m 3 -o /dev/null http://192.168.83.2:18789/health; then
    bad "the gateway answered on the TAP address 192.168.83.2:18789"
else
    ok "the gateway port is not reachable over the TAP address"
fi
ip -j link show vm-openclaw >/dev/null 2>&1 && ok "TAP vm-openclaw exists while up" || bad "no TAP while up"

# ocvm check: clean on the healthy VM, then each live finding made by a real break behind its back
check_out() { "$ocvm" check --config "$cfg" 2>/dev/null; }
out=$(check_out); rc=$?
[ $rc = 0 ] && [ -z "$out" ] &&
    ok "ocvm check: clean on the running VM (rules, network, listeners, modes, TAP probe, QEMU user)" ||
    bad "ocvm check on a healthy VM: exit $rc: $out"
chmod 0666 "$rundir/vsock.sock"
out=$(check_out); rc=$?
[ $rc = 1 ] && grep -q "^OCVM-L003 $rundir/vsock.sock has mode 0666" <<<"$out" &&
    ok "check: the hybrid vsock socket made 0666 is OCVM-L003 (exit 1)" || bad "check after chmod 0666: exit $rc: $out"
chmod 0600 "$rundir/vsock.sock"
# a listener on [::]:18789 beside ocvm's 127.0.0.1:18789 (IPv6, so the two do not collide)
python3 -c 'import socket, time
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", 18789)); s.listen(); time.sleep(60)' &
lp=$!
wait_for 5 bash -c "grep -q ':4965 00000000000000000000000000000000:0000 0A' /proc/net/tcp6"
out=$(check_out); rc=$?
kill "$lp"; wait "$lp" 2>/dev/null
[ $rc = 1 ] && grep -q "^OCVM-L002 the gateway's port 18789 is listened on beyond loopback (IPv6" <<<"$out" &&
    ok "check: a listener on [::]:18789 behind ocvm's back is OCVM-L002" || bad "check with [::]:18789: exit $rc: $out"
# the guest opens its gateway on the TAP, and the rule that keeps the host from it is deleted
(sleep 1; printf 'ocvm-guest relay tcp:192.168.83.2:18789 tcp:127.0.0.1:18789 &\n'; sleep 2; printf '\035') |
    timeout 20 "$ocvm" console --config "$cfg" >/dev/null 2>&1
handle=$(nft -a list chain inet "ocvm_$name" output | grep 'th dport 18789' | sed 's/.*# handle //')
for h in $handle; do nft delete rule inet "ocvm_$name" output handle "$h"; done
out=$(check_out); rc=$?
[ $rc = 1 ] && grep -q "^OCVM-L001 network: " <<<"$out" &&
    grep -q "^OCVM-L004 gateway port 18789 answers on 192.168.83.2" <<<"$out" &&
    ok "check: a rule deleted from the nft table is OCVM-L001, the gateway on the TAP is OCVM-L004" ||
    bad "check after the rule was deleted: exit $rc (handle $handle): $out"


qemu1=$(status_field "['qemu_pid']")
kill -9 "$qemu1"
t0=$(date +%s.%N)
curl -s -m 10 -o /dev/null http://127.0.0.1:18789/health && bad "a request succeeded with QEMU dead"
dt=$(echo "$(date +%s.%N) - $t0" | bc)
if [ "$(echo "$dt < 3" | bc)" = 1 ]; then ok "while the VM is down a client fails at once ($(printf %.2f "$dt") s), no hang"
else bad "client waited $dt s while the VM was down"; fi
if wait_for 120 bash -c "[ \"\$('$ocvm' status --json --config '$cfg' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"phase\"], d[\"restarts\"])')\" = 'ready 1' ]"; then
    body=$(curl -s -m 10 -w ' %{http_code}' http://127.0.0.1:18789/health)
    [[ "$body" == *' 200' ]] && ok "after a restart the gateway is reachable again on the same listener" || bad "after restart: $body"
else
    bad "not ready again after QEMU was killed"
fi
relay=$(status_field "['relay']")
python3 -c "import sys; d=$relay; sys.exit(0 if d['accepted'] >= 4 and d['bytes_to_guest'] >= 64<<20 else 1)" &&
    ok "status shows relay figures: $relay" || bad "relay figures: $relay"

supervisor=$(status_field "['supervisor_pid']"); qemu=$(status_field "['qemu_pid']")
t0=$SECONDS
"$ocvm" down --config "$cfg" >/dev/null 2>&1 && ok "down in $((SECONDS - t0)) s" || bad "down failed"
[ $((SECONDS - t0)) -le 25 ] || bad "down took longer than shutdown_s"
alive "$qemu" || alive "$supervisor" && bad "a process survived down" || ok "no QEMU or supervisor left"
[ ! -e "$rundir" ] && ok "no runtime file or socket left" || { bad "left in $rundir:"; ls -la "$rundir"; }
ip link show vm-openclaw >/dev/null 2>&1 && bad "TAP left behind" || ok "TAP removed"
ip link show br-openclaw >/dev/null 2>&1 && bad "bridge left behind" || ok "bridge removed (ocvm created it)"
nft list table inet "ocvm_$name" >/dev/null 2>&1 && bad "nft table left behind" || ok "nft table removed"
curl -s -m 3 -o /dev/null http://127.0.0.1:18789/health && bad "something still listens on 18789" ||
    ok "nothing listens on 127.0.0.1:18789 any more"

# A supervisor killed outright: QEMU goes with it (PR_SET_PDEATHSIG), and the next `down` (or
# `up`) undoes the network it left, from its record in the runtime directory.
if "$ocvm" up -d --config "$cfg" >/dev/null 2>&1; then
    supervisor=$(status_field "['supervisor_pid']"); qemu=$(status_field "['qemu_pid']")
    kill -9 "$supervisor"
    wait_for 10 bash -c "! { [ -r /proc/$qemu/stat ] && [ \$(awk '{print \$3}' /proc/$qemu/stat) != Z ]; }" &&
        ok "QEMU dies with a killed supervisor" || bad "QEMU outlived its supervisor"
    ip link show br-openclaw >/dev/null 2>&1 && nft list table inet "ocvm_$name" >/dev/null 2>&1 ||
        bad "expected the dead supervisor's bridge and table to be still there"
    out=$("$ocvm" down --config "$cfg" 2>&1)
    if grep -q "removed the network a dead supervisor left" <<<"$out" &&
        ! ip link show br-openclaw >/dev/null 2>&1 && ! nft list table inet "ocvm_$name" >/dev/null 2>&1 &&
        [ ! -e "$rundir" ]; then
        ok "down after a killed supervisor removes its bridge, table and runtime dir"
    else
        bad "down after a killed supervisor: $out"
    fi
else
    bad "second up failed"
fi

left=$(leftovers)
[ -z "$left" ] && ok "no process of this test is left running" ||
    bad "processes left running: $(ps -o pid=,args= -p "$(tr '\n' ',' <<<"$left" | sed 's/,$//')" | cut -c1-100)"

boot_finish
