#!/bin/bash
# netsetup for real, in network namespaces this script makes and always removes:
#   H  stands in for the host: netsetup runs here (tests/support/netsetup_driver)
#   U  the "internet" and LAN behind H's uplink (veth uplink0 10.250.0.1 <-> wan0 10.250.0.2)
#   G  stands in for the guest: a veth (192.168.83.2) whose other end joins H's bridge
#   E  an empty namespace for the runs that must fail and leave nothing
# It checks links, addresses, MTU, master and up state (ip -j), the table (nft -j), idempotence,
# crash clean-up, teardown, the failures, and traffic: NAT out, the gateway port closed, the
# connection log counted. The host's own links and ruleset must be the same before and after.
set -uo pipefail
build=${1:?usage: netsetup.sh BUILD_DIR}
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
driver="$build/netsetup_driver"

if [ "$(id -u)" != 0 ]; then
    echo "skipped: needs root (network namespaces, nft)"
    exit 77
fi
if ! ip netns list >/dev/null 2>&1; then
    echo "skipped: ip netns is unavailable"
    exit 77
fi
for tool in nft socat python3; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done
[ -x "$driver" ] || { echo "FAIL: $driver is not built"; exit 1; }

tag="$$$RANDOM"
H=ocvmtest-h$tag U=ocvmtest-u$tag G=ocvmtest-g$tag E=ocvmtest-e$tag
BR=br-ocvmt TAP=vm-ocvmt TABLE=ocvm_nstest
tmp=$(mktemp -d /tmp/ocvm-netsetup-XXXXXX)
pids=()
passed=0 failed=0

host_snapshot() { ip -j link show && nft -j list ruleset; }
host_snapshot >"$tmp/host.before"

cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    for ns in "$H" "$U" "$G" "$E"; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() {
    echo "FAIL $1"
    [ $# -gt 1 ] && printf '%s\n' "$2" | cut -c1-400 | head -40 | sed 's/^/    /'
    failed=$((failed + 1))
}
check() { # NAME CMD...: passes when CMD succeeds
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# jget NS PY_EXPR CMD...: runs CMD in NS, evaluates PY_EXPR with d = its JSON output
jget() {
    local ns=$1 expr=$2
    shift 2
    inns "$ns" "$@" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$expr"
}
# Links and ruleset of NS, without what changes by itself (counters, timers).
ns_snapshot() {
    inns "$1" ip -j link show | python3 -c 'import json, sys
for l in json.load(sys.stdin):
    l.pop("operstate", None); print(json.dumps(l, sort_keys=True))'
    inns "$1" nft -j list ruleset
    inns "$1" sysctl -a 2>/dev/null | grep -E '^net\.ipv4\.(ip_forward|conf\.[^.]+\.forwarding) '
}
# nft's JSON listing of the table, without handles (which differ from one apply to the next)
table_json() {
    inns "$1" nft -j list table inet "$TABLE" | python3 -c 'import json, sys
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in ("handle", "metainfo")}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
print(json.dumps(strip(json.load(sys.stdin)), sort_keys=True))'
}
# counter NS CHAIN PATTERN: packets counted by the first rule of CHAIN matching PATTERN
counter() {
    inns "$1" nft list chain inet "$TABLE" "$2" | grep -F -- "$3" | head -1 |
        sed -n 's/.*counter packets \([0-9]*\).*/\1/p'
}
connect() { # NS ADDR PORT: prints what the peer sends; fails when the connection fails
    inns "$1" socat -T3 - "TCP:$2:$3,connect-timeout=2" </dev/null 2>&1
}
listen() { # NS ADDR PORT: a listener that answers "from PEER", killed at the end
    # started directly, not through a shell function, so that $! is socat itself
    ip netns exec "$1" socat "TCP-LISTEN:$3,bind=$2,reuseaddr,fork" \
        SYSTEM:'echo from $SOCAT_PEERADDR' >/dev/null 2>&1 &
    pids+=($!)
}
wait_listen() { # NS PORT
    for _ in $(seq 50); do
        inns "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# driver_up NS CONFIG STATE: starts the driver in NS; sets $drv; fails unless it reports ready
driver_up() {
    local ns=$1 cfg=$2 state=$3
    ip netns exec "$ns" "$driver" up "$cfg" "$state" >"$tmp/up.out" 2>"$tmp/up.err" &
    drv=$!
    pids+=("$drv")
    for _ in $(seq 100); do
        grep -q '^ready' "$tmp/up.out" && return 0
        kill -0 "$drv" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/up.err"
    return 1
}
down() { # stops $drv, which undoes everything; a check that fails if that reported an error
    local rc
    kill -TERM "$drv"
    wait "$drv"
    rc=$?
    if [ $rc = 0 ]; then ok "$1"; else bad "$1" "status $rc: $(cat "$tmp/up.err")"; fi
}

write_config() { # FILE NAME NETWORK_JSON [VCPU]
    printf '{"name": "%s", "machine": {"vcpu": %s}, "boot": {"kernel": "%s"}, "network": %s}\n' \
        "$2" "${4:-2}" "$tmp/vmlinuz" "$3" >"$1"
}

: >"$tmp/vmlinuz"
net='{"bridge": "'$BR'", "bridge_address": "192.168.83.1/24", "tap": "'$TAP'",
      "guest_address": "192.168.83.2", "uplink": "auto", "dns": "192.168.83.1"}'
write_config "$tmp/net.json" nstest "$net"

# --- the namespaces -------------------------------------------------------------------------
for ns in "$H" "$U" "$G" "$E"; do
    ip netns add "$ns" && inns "$ns" ip link set lo up || { echo "FAIL: cannot make namespace $ns"; exit 1; }
done
ip -n "$H" link add uplink0 type veth peer wan0 netns "$U"
ip -n "$H" link add gport0 type veth peer eth0 netns "$G"
ip -n "$H" addr add 10.250.0.1/24 dev uplink0
ip -n "$H" link set uplink0 up
ip -n "$H" link set gport0 up
ip -n "$H" route add default via 10.250.0.2
ip -n "$U" addr add 10.250.0.2/24 dev wan0
ip -n "$U" link set wan0 up
ip -n "$U" route add 192.168.83.0/24 via 10.250.0.1
ip -n "$G" addr add 192.168.83.2/24 dev eth0
ip -n "$G" link set eth0 up
ip -n "$G" route add default via 192.168.83.1
ns_snapshot "$H" >"$tmp/h.initial"
ns_snapshot "$E" >"$tmp/e.initial"

# --- the rendered table is valid nft ---------------------------------------------------------
for f in "$src"/tests/golden/*.nft; do
    check "nft -c accepts $(basename "$f")" inns "$E" nft -c -f "$f"
done
if inns "$E" "$driver" render "$tmp/net.json" uplink0 >"$tmp/render.nft"; then
    check "nft -c accepts the table rendered for the test config" inns "$E" nft -c -f "$tmp/render.nft"
else
    bad "render the test config"
fi

# --- run A: up, everything in place, down removes exactly that -------------------------------
if driver_up "$H" "$tmp/net.json" "$tmp/a.state"; then
    ok "up (bridge created, TAP, table, forwarding)"
    check "2 queues (vcpu 2), fds are close-on-exec" grep -qx 'ready queues=2 cloexec=yes' "$tmp/up.out"
    check "bridge: a bridge, up" test "$(jget "$H" 'd[0]["linkinfo"]["info_kind"], "UP" in d[0]["flags"]' \
        ip -j -d link show "$BR")" = "('bridge', True)"
    check "bridge: address 192.168.83.1/24" test "$(jget "$H" \
        '[(a["local"], a["prefixlen"]) for a in d[0]["addr_info"] if a["family"] == "inet"]' \
        ip -j addr show dev "$BR")" = "[('192.168.83.1', 24)]"
    check "TAP: tap, vnet_hdr, multi_queue, not persistent" test "$(jget "$H" \
        '[d[0]["linkinfo"]["info_data"][k] for k in ("type", "pi", "vnet_hdr", "multi_queue", "persist")]' \
        ip -j -d link show "$TAP")" = "['tap', False, True, True, False]"
    check "TAP: master $BR, MTU 1500, up" test "$(jget "$H" \
        'd[0]["master"], d[0]["mtu"], "UP" in d[0]["flags"]' ip -j link show "$TAP")" = "('$BR', 1500, True)"
    check "table: the seven chains" test "$(jget "$H" \
        'sorted(o["chain"]["name"] for o in d["nftables"] if "chain" in o)' nft -j list table inet "$TABLE")" = \
        "['forward', 'guest_in', 'guest_out', 'input', 'output', 'postrouting', 'refuse']"
    check "table: masquerade out of uplink0 (uplink \"auto\" = default route)" inns "$H" sh -c \
        "nft list chain inet $TABLE postrouting | grep -q 'ip saddr 192.168.83.0/24 oifname \"uplink0\" counter packets 0 bytes 0 masquerade'"
    check "table: new connections logged with prefix \"ocvm-nstest: \"" test "$(jget "$H" \
        'sum(1 for o in d["nftables"] if "rule" in o for e in o["rule"]["expr"] if e.get("log", {}).get("prefix") == "ocvm-nstest: ")' \
        nft -j list table inet "$TABLE")" = 2
    check "forwarding on for $BR and uplink0 only" test "$(inns "$H" sh -c \
        "cat /proc/sys/net/ipv4/conf/$BR/forwarding /proc/sys/net/ipv4/conf/uplink0/forwarding \
         /proc/sys/net/ipv4/conf/all/forwarding /proc/sys/net/ipv4/conf/gport0/forwarding" | tr -d '\n')" = 1100
    check "audit: the live network matches the config" inns "$H" "$driver" audit "$tmp/net.json"
    out=$(inns "$H" "$driver" up "$tmp/net.json" "$tmp/x.state" 2>&1)
    rc=$?
    if [ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ $out == *"TAP $TAP: a link of that name exists already"* ]] &&
        inns "$H" "$driver" audit "$tmp/net.json" >/dev/null; then
        ok "a second up while the first runs: one clear error, the first left intact"
    else
        bad "a second up while the first runs" "status $rc: $out"
    fi
    down "down"
    check "down: TAP, table and the bridge it created are gone" test "$(inns "$H" sh -c \
        "ip link show $TAP; ip link show $BR; nft list table inet $TABLE" 2>/dev/null | wc -l)" = 0
    check "down: the namespace is as before (links, ruleset, forwarding)" diff "$tmp/h.initial" <(ns_snapshot "$H")
else
    bad "up" "$(cat "$tmp/up.err")"
fi

# --- run B: traffic, with the veth "guest" on the bridge --------------------------------------
listen "$U" 10.250.0.2 8080
listen "$U" 10.250.0.2 53
listen "$G" 192.168.83.2 18789
listen "$G" 192.168.83.2 18790
listen "$H" 0.0.0.0 2222
wait_listen "$U" 8080 && wait_listen "$U" 53 && wait_listen "$G" 18789 && wait_listen "$G" 18790 &&
    wait_listen "$H" 2222 || bad "listeners did not start"
if driver_up "$H" "$tmp/net.json" "$tmp/b.state"; then
    ip -n "$H" link set gport0 master "$BR"
    # a new bridge has a new MAC address: the stand-in guest forgets the old one, as a booting
    # guest would never have known it
    ip -n "$G" neigh flush all
    out=$(connect "$G" 10.250.0.2 8080)
    if [ "$out" = "from 10.250.0.1" ]; then ok "NAT: the guest's connection arrives from the uplink address"
    else bad "NAT: guest -> 10.250.0.2:8080" "$out"; fi
    n=$(counter "$H" guest_out 'log prefix "ocvm-nstest: "')
    if [ "${n:-0}" -ge 1 ]; then ok "connection log: the log rule counted $n new connection(s)"
    else bad "connection log counter" "counted ${n:-nothing}"; fi
    if out=$(connect "$H" 192.168.83.2 18789); then bad "host -> guest gateway port 18789 is closed" "$out"
    else ok "host -> guest gateway port 18789 is closed"; fi
    n=$(counter "$H" output 'oifname "'$BR'" meta l4proto { tcp, udp } th dport 18789')
    check "... dropped by the output rule (counter ${n:-none})" test "${n:-0}" -ge 1
    out=$(connect "$H" 192.168.83.2 18790)
    if [ "$out" = "from 192.168.83.1" ]; then ok "host -> guest port 18790 still works (only the gateway port is closed)"
    else bad "host -> guest 18790" "$out"; fi
    if out=$(connect "$U" 192.168.83.2 18789); then bad "LAN -> guest gateway port 18789 is closed" "$out"
    else ok "LAN -> guest gateway port 18789 is closed"; fi
    n=$(counter "$H" forward 'oifname "'$BR'" meta l4proto { tcp, udp } th dport 18789')
    check "... dropped by the forward rule (counter ${n:-none})" test "${n:-0}" -ge 1
    if out=$(connect "$U" 192.168.83.2 18790); then bad "LAN -> guest: nothing new gets in" "$out"
    else ok "LAN -> guest: nothing new gets in (port 18790 either)"; fi
    # a port forward made by someone else (a table of the test's own) cannot open the guest
    inns "$H" nft -f - <<'EOF'
table ip ocvmtest_dnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "uplink0" tcp dport 9999 dnat to 192.168.83.2:18790
		iifname "uplink0" tcp dport 9998 dnat to 192.168.83.2:18789
	}
}
EOF
    if out=$(connect "$U" 10.250.0.1 9999); then bad "LAN -> a DNAT to the guest (port 18790) is dropped" "$out"
    else ok "LAN -> a DNAT to the guest (port 18790) is dropped"; fi
    if out=$(connect "$U" 10.250.0.1 9998); then bad "LAN -> a DNAT to the gateway port is dropped" "$out"
    else ok "LAN -> a DNAT to the gateway port is dropped"; fi
    n=$(counter "$H" forward 'ct status dnat')
    check "... by the DNAT rule (counter ${n:-none})" test "${n:-0}" -ge 1
    inns "$H" nft delete table ip ocvmtest_dnat
    if out=$(connect "$G" 10.250.0.2 53); then bad "guest DNS only to network.dns" "$out"
    else ok "guest -> 10.250.0.2:53 refused: DNS only to network.dns"; fi
    if out=$(connect "$G" 192.168.83.1 2222); then bad "guest -> host service 2222 refused" "$out"
    else ok "guest -> a host service (192.168.83.1:2222) refused"; fi
    n=$(counter "$H" refuse 'log prefix "ocvm-nstest: reject "')
    check "refused connections logged (counter ${n:-none})" test "${n:-0}" -ge 2

    # the audit notices tampering
    inns "$H" nft add rule inet "$TABLE" forward iifname uplink0 accept
    out=$(inns "$H" "$driver" audit "$tmp/net.json")
    rc=$?
    if [ $rc = 1 ] && [ "$out" = "table inet $TABLE: chain forward: unexpected rule: iifname \"uplink0\" accept" ]; then
        ok "audit: an added rule is reported"
    else bad "audit: an added rule" "status $rc: $out"; fi
    echo 0 | inns "$H" tee "/proc/sys/net/ipv4/conf/$BR/forwarding" >/dev/null
    out=$(inns "$H" "$driver" audit "$tmp/net.json")
    if [[ $out == *"bridge $BR: IPv4 forwarding is off"* ]]; then ok "audit: forwarding turned off is reported"
    else bad "audit: forwarding off" "$out"; fi
    echo 1 | inns "$H" tee "/proc/sys/net/ipv4/conf/$BR/forwarding" >/dev/null

    down "down"
    check "down: TAP and table gone" test "$(inns "$H" sh -c "ip link show $TAP; nft list table inet $TABLE" 2>/dev/null | wc -l)" = 0
    check "down: the bridge stays while another port (gport0) is on it" inns "$H" ip link show "$BR"
    check "down: uplink forwarding back off" test "$(inns "$H" cat /proc/sys/net/ipv4/conf/uplink0/forwarding)" = 0
    ip -n "$H" link set gport0 nomaster
    ip -n "$H" link del "$BR"
else
    bad "up for the traffic tests" "$(cat "$tmp/up.err")"
fi
check "the namespace is as before after run B" diff "$tmp/h.initial" <(ns_snapshot "$H")

# --- run C: a crash, the next up over its leftovers, then clean-up from the saved state -------
if driver_up "$H" "$tmp/net.json" "$tmp/c1.state"; then
    table_json "$H" >"$tmp/c1.table"
    kill -KILL "$drv"
    wait "$drv" 2>/dev/null
    check "after a crash the TAP is gone with its fds" test "$(inns "$H" ip link show "$TAP" 2>/dev/null | wc -l)" = 0
    if driver_up "$H" "$tmp/net.json" "$tmp/c2.state"; then
        ok "up again over the leftovers (bridge adopted, table replaced)"
        check "the table is the same, once" diff "$tmp/c1.table" <(table_json "$H")
        check "one table ocvm_nstest" test "$(inns "$H" nft list tables | grep -c " $TABLE\$")" = 1
        check "audit after the second up" inns "$H" "$driver" audit "$tmp/net.json"
        down "down (adopted bridge)"
        check "down keeps the adopted bridge" inns "$H" ip link show "$BR"
        check "clean-up from the crashed run's state" inns "$H" "$driver" cleanup "$tmp/c1.state"
        check "nothing left after clean-up" diff "$tmp/h.initial" <(ns_snapshot "$H")
    else
        bad "up over the leftovers of a crash" "$(cat "$tmp/up.err")"
    fi
else
    bad "up (run C)" "$(cat "$tmp/up.err")"
fi

# --- run D: a bridge that existed before, with the same address, is adopted and kept ----------
ip -n "$H" link add "$BR" type bridge
ip -n "$H" addr add 192.168.83.1/24 dev "$BR"
ns_snapshot "$H" >"$tmp/h.with-bridge"
write_config "$tmp/one.json" nstest "$net" 1
if driver_up "$H" "$tmp/one.json" "$tmp/d.state"; then
    ok "up with an existing bridge that has the address"
    check "single queue (vcpu 1): no multi_queue" test "$(jget "$H" \
        'd[0]["linkinfo"]["info_data"]["multi_queue"], d[0]["master"]' ip -j -d link show "$TAP")" = "(False, '$BR')"
    check "the adopted bridge was brought up" test "$(jget "$H" '"UP" in d[0]["flags"]' ip -j link show "$BR")" = True
    down "down"
    check "down keeps the bridge that existed, with its address" test "$(jget "$H" \
        '[a["local"] for a in d[0]["addr_info"] if a["family"] == "inet"]' ip -j addr show dev "$BR")" = "['192.168.83.1']"
    check "down: no TAP, no table" test "$(inns "$H" sh -c "ip link show $TAP; nft list table inet $TABLE" 2>/dev/null | wc -l)" = 0
else
    bad "up with an existing bridge" "$(cat "$tmp/up.err")"
fi
ip -n "$H" link del "$BR"

# --- run E: failures give one clear line and leave nothing ------------------------------------
fails() { # NAME PATTERN CONFIG: up in E must fail with one line matching PATTERN, E unchanged
    local name=$1 pattern=$2 cfg=$3 out rc
    out=$(inns "$E" "$driver" up "$cfg" "$tmp/e.state" 2>&1 </dev/null)
    rc=$?
    if [ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ $out =~ $pattern ]] &&
        diff -q "$tmp/e.now" <(ns_snapshot "$E") >/dev/null; then
        ok "$name: $out"
    else
        bad "$name" "status $rc: $out
$(diff "$tmp/e.now" <(ns_snapshot "$E"))"
    fi
}
ip -n "$E" link add uplink0 type veth peer uplink0p
ip -n "$E" link add "$BR" type bridge
ip -n "$E" addr add 10.250.9.1/24 dev "$BR"
ns_snapshot "$E" >"$tmp/e.now"
write_config "$tmp/e-up.json" nstest "${net/\"auto\"/\"uplink0\"}"
fails "existing bridge with another address" \
    "bridge $BR already exists with address 10.250.9.1/24, not 192.168.83.1/24" "$tmp/e-up.json"
ip -n "$E" link del "$BR"
ns_snapshot "$E" >"$tmp/e.now"
write_config "$tmp/e-missing.json" nstest "${net/\"auto\"/\"nosuch0\"}"
fails "missing uplink interface" "network.uplink nosuch0: no such interface" "$tmp/e-missing.json"
fails "uplink \"auto\" without a default route" "no IPv4 default route" "$tmp/net.json"
ip -n "$E" link add "$TAP" type veth peer "$TAP"p
ns_snapshot "$E" >"$tmp/e.now"
fails "a link with the TAP's name exists" "TAP $TAP: a link of that name exists already" "$tmp/e-up.json"
ip -n "$E" link del "$TAP"
# The last step failing (the uplink's forwarding switch read-only, in a private mount namespace):
# the table, the TAP and the bridge made before it must all be undone.
printf '0\n' >"$tmp/forwarding"
ns_snapshot "$E" >"$tmp/e.now"
out=$(inns "$E" unshare -m --propagation private sh -c \
    'mount --bind -o ro "$1" /proc/sys/net/ipv4/conf/uplink0/forwarding && exec "$2" up "$3" "$4"' sh \
    "$tmp/forwarding" "$driver" "$tmp/e-up.json" "$tmp/e.state" 2>&1 </dev/null)
rc=$?
if [ $rc = 1 ] && [ "$out" = "netsetup_driver: turn on IPv4 forwarding of uplink uplink0: Read-only file system" ] &&
    diff -q "$tmp/e.now" <(ns_snapshot "$E") >/dev/null; then
    ok "the last step failing undoes the others: $out"
else
    bad "the last step failing undoes the others" "status $rc: $out
$(diff "$tmp/e.now" <(ns_snapshot "$E"))"
fi
# A host name that does not resolve, with no DNS at all: in a private mount namespace the driver
# sees an nsswitch.conf that looks names up in /etc/hosts only.
write_config "$tmp/e-egress.json" nstest '{"bridge": "'$BR'", "tap": "'$TAP'", "uplink": "uplink0",
    "egress": {"allow": [{"host": "no-such-host.invalid", "ports": [443]}]}}'
printf 'hosts: files\n' >"$tmp/nsswitch.conf"
ns_snapshot "$E" >"$tmp/e.now"
out=$(inns "$E" unshare -m --propagation private sh -c \
    'mount --bind "$1" /etc/nsswitch.conf && exec "$2" up "$3" "$4"' sh \
    "$tmp/nsswitch.conf" "$driver" "$tmp/e-egress.json" "$tmp/e.state" 2>&1 </dev/null)
rc=$?
if [ $rc = 1 ] && [[ $out == "netsetup_driver: network.egress.allow[0]: resolve no-such-host.invalid: "* ]] &&
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && diff -q "$tmp/e.now" <(ns_snapshot "$E") >/dev/null; then
    ok "an egress host that does not resolve: $out"
else
    bad "an egress host that does not resolve" "status $rc: $out"
fi
ip -n "$E" link del uplink0
check "E is as it was" diff "$tmp/e.initial" <(ns_snapshot "$E")

# --- egress allow-list, with literal addresses (no DNS) ---------------------------------------
write_config "$tmp/allow.json" nstest '{"bridge": "'$BR'", "tap": "'$TAP'", "uplink": "uplink0",
    "egress": {"allow": [{"host": "10.250.0.2", "ports": [8080]}]}}'
listen "$U" 10.250.0.2 8081
wait_listen "$U" 8081 || bad "listener 8081 did not start"
if driver_up "$H" "$tmp/allow.json" "$tmp/f.state"; then
    ip -n "$H" link set gport0 master "$BR"
    # a new bridge has a new MAC address: the stand-in guest forgets the old one, as a booting
    # guest would never have known it
    ip -n "$G" neigh flush all
    check "allow-list: the set holds 10.250.0.2 . 8080" test "$(jget "$H" 'd["nftables"][1]["set"]["elem"]' \
        nft -j list set inet "$TABLE" egress_allow)" = "[{'concat': ['10.250.0.2', 8080]}]"
    out=$(connect "$G" 10.250.0.2 8080)
    if [ "$out" = "from 10.250.0.1" ]; then ok "allow-list: an allowed destination works"
    else bad "allow-list: guest -> 10.250.0.2:8080" "$out"; fi
    if out=$(connect "$G" 10.250.0.2 8081); then bad "allow-list: another port is refused" "$out"
    else ok "allow-list: another port is refused"; fi
    check "allow-list audit" inns "$H" "$driver" audit "$tmp/allow.json"
    ip -n "$H" link set gport0 nomaster
    down "down"
else
    bad "up with an allow-list" "$(cat "$tmp/up.err")"
fi
check "the namespace is as before at the end" diff "$tmp/h.initial" <(ns_snapshot "$H")

# --- the host itself was never touched ----------------------------------------------------------
if diff <(host_snapshot) "$tmp/host.before" >"$tmp/host.diff"; then
    ok "the host's own links and nft ruleset are unchanged"
else
    bad "the host's own links and nft ruleset changed" "$(cat "$tmp/host.diff")"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
