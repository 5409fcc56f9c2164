#!/bin/bash
# Secrets with a real guest: `ocvm up` stages an API key file and the gateway token (made on the
# first start, kept in the state directory) into the guest's read-only secrets share; the guest
# reads exactly those bytes, 0400; and neither value shows up anywhere else: QEMU's or
# virtiofsd's argv, the kernel command line, ocvm's output and log, state.json, `ocvm status`
# (text and JSON), `ocvm cmdline`, `ocvm check`, the console log. A secret others can read is
# refused before anything starts (OCVM-P012), naming its path. `down` removes the staged copies.
set -uo pipefail
# shellcheck source=../support/boot.sh
. "$(dirname "$0")/../support/boot.sh"
boot_setup "${1:-}" secretstest
[ -x /usr/lib/qemu/virtiofsd ] || { echo "skip: no /usr/lib/qemu/virtiofsd"; exit 77; }
boot_cleanup_hook() { [ -f "$rundir/state.json" ] && "$ocvm" down --config "$cfg" >/dev/null 2>&1; }

port=$((20000 + RANDOM % 10000))
key="sk-test-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$key" >"$tmp/api.key" && chmod 0600 "$tmp/api.key"
cat >"$cfg" <<JSON
{
  "name": "$name",
  "boot": { "kernel": "$guest/vmlinuz", "initrd": "$guest/initrd.img",
            "cmdline": "console=ttyS0 panic=-1 quiet" },
  "vsock": { "backend": "user" },
  "network": null,
  "gateway": { "host_listen": "127.0.0.1:$port" },
  "secrets": { "files": { "api_key": "$tmp/api.key" } },
  "timeouts": { "ready_s": 120, "shutdown_s": 20 }
}
JSON

# A secret others can read: refused before anything starts, naming the file, not its content.
chmod 0644 "$tmp/api.key"
out=$("$ocvm" up -d --config "$cfg" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "secrets.files.api_key: $tmp/api.key has mode 0644.*\[OCVM-P012\]" <<<"$out" &&
    [ ! -e "$rundir" ] && ! grep -qF -- "$key" <<<"$out" &&
    ok "a secret readable by others is refused (OCVM-P012), nothing started" || bad "0644 secret: exit $rc: $out"
chmod 0600 "$tmp/api.key"

up_out=$("$ocvm" up -d --config "$cfg" 2>&1) && ok "up -d with secrets" ||
    { bad "up -d: $up_out"; cat "$rundir/supervisor.log" 2>/dev/null; exit 1; }
token_file="$OCVM_STATE_DIR/$name/gateway.token"
token=$(cat "$token_file" 2>/dev/null)
[ "${#token}" = 64 ] && [ "$(stat -c %a "$token_file")" = 600 ] &&
    ok "the gateway token was made (64 hex digits) and kept in the state directory, 0600" ||
    bad "token file: $(ls -l "$token_file" 2>&1)"
[ "$(stat -c %a "$rundir/secrets")" = 700 ] && [ "$(stat -c '%a %U' "$rundir/secrets/api_key")" = "400 ocvm" ] &&
    ok "staged: the directory 0700, each file 0400 and QEMU's user's (ocvm)" ||
    bad "staged modes: $(ls -la "$rundir/secrets" 2>&1)"

# What the guest reads: the same bytes, its owner's alone. (Hashes only: the console is logged.)
console_out=$( (sleep 1; printf 'cd /run/shares/ocvm-secrets && sha256sum api_key gateway.token && stat -c "%%a %%n" * && grep -c "\\"bind\\": \\"loopback\\"" openclaw.json\n'
    sleep 3; printf '\035') | timeout 20 "$ocvm" console --config "$cfg" 2>&1)
want_key=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
want_token=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
grep -q "$want_key  api_key" <<<"$console_out" && grep -q "$want_token  gateway.token" <<<"$console_out" &&
    ok "the guest reads the API key and the token, byte for byte, from its secrets share" ||
    bad "guest hashes: $console_out"
grep -q "^400 api_key" <<<"$console_out" && grep -q "^400 openclaw.json" <<<"$console_out" &&
    grep -q "^1" <<<"$(grep -A1 'openclaw.json' <<<"$console_out" | tail -1)" &&
    ok "in the guest: 0400 each, and the OpenClaw config binds the gateway to loopback" ||
    bad "guest modes: $console_out"
touch_out=$( (sleep 1; printf 'touch /run/shares/ocvm-secrets/x || echo refused-write\n'; sleep 2; printf '\035') |
    timeout 20 "$ocvm" console --config "$cfg" 2>&1)
grep -q refused-write <<<"$touch_out" && ok "the secrets share is read-only in the guest" || bad "guest could write: $touch_out"

# Nowhere else.
leaks() { # WHERE TEXT: passes when TEXT holds neither value
    if grep -qF -e "$key" -e "$token" <<<"$2"; then bad "a secret shows in $1"; else ok "no secret in $1"; fi
}
leaks "up's output" "$up_out"
leaks "supervisor.log" "$(cat "$rundir/supervisor.log")"
leaks "state.json" "$(cat "$rundir/state.json")"
leaks "ocvm status" "$("$ocvm" status --config "$cfg" 2>&1)"
leaks "ocvm status --json" "$("$ocvm" status --json --config "$cfg" 2>&1)"
leaks "ocvm cmdline" "$("$ocvm" cmdline --config "$cfg" 2>&1)"
leaks "ocvm check" "$("$ocvm" check --config "$cfg" 2>&1)"
leaks "the console log" "$(cat "$rundir/console.log")"
qemu=$("$ocvm" status --json --config "$cfg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["qemu_pid"])')
leaks "QEMU's argv and kernel command line" "$(tr '\0' ' ' <"/proc/$qemu/cmdline")"
for p in $(pgrep -f -- "$rundir/virtiofs-ocvm-secrets.sock"); do
    leaks "virtiofsd's argv (pid $p)" "$(tr '\0' ' ' <"/proc/$p/cmdline")"
done
out=$("$ocvm" check --config "$cfg" 2>&1); rc=$?
[ $rc = 0 ] && ok "ocvm check: clean (the staged secrets' modes included)" || bad "check: exit $rc: $out"
chmod 0444 "$rundir/secrets/api_key"
out=$("$ocvm" check --config "$cfg" 2>/dev/null); rc=$?
chmod 0400 "$rundir/secrets/api_key"
[ $rc = 1 ] && grep -q "^OCVM-L003 $rundir/secrets/api_key has mode 0444" <<<"$out" &&
    ok "check: a staged secret made readable is OCVM-L003" || bad "check after chmod 0444: exit $rc: $out"

# The next start keeps the token; down removes the staged copies.
"$ocvm" down --config "$cfg" >/dev/null 2>&1 && [ ! -e "$rundir" ] && ok "down removes the staged secrets" ||
    bad "after down: $(ls -la "$rundir" 2>&1)"
"$ocvm" up -d --config "$cfg" >/dev/null 2>&1 && [ "$(cat "$token_file")" = "$token" ] &&
    cmp -s "$token_file" <(printf '%s\n' "$token") && ok "the next start uses the kept token" ||
    bad "token changed across starts"
"$ocvm" down --config "$cfg" >/dev/null 2>&1

# A user other than root runs everything as itself, without virtiofsd: no secrets share, and a
# config that names secrets is refused, saying so.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -p "$tmp/nobody" && chown nobody "$tmp/nobody" && chmod 0711 "$tmp"
    as_nobody() { runuser -u nobody -- env OCVM_RUNTIME_DIR="$tmp/nobody/run" \
        OCVM_STATE_DIR="$tmp/nobody/state" HOME="$tmp/nobody" "$@"; }
    python3 -c 'import json, sys
c = json.load(open(sys.argv[1])); del c["secrets"]; c["name"] = "plain"
json.dump(c, open(sys.argv[2], "w"))' "$cfg" "$tmp/nobody/plain.json"
    cp "$tmp/api.key" "$tmp/nobody/api.key" && chown nobody "$tmp/nobody/api.key"
    python3 -c 'import json, sys
c = json.load(open(sys.argv[1])); c["secrets"]["files"]["api_key"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))' "$cfg" "$tmp/nobody/secret.json" "$tmp/nobody/api.key"
    chmod 0644 "$tmp/nobody/"*.json
    out=$(as_nobody "$ocvm" up -d --config "$tmp/nobody/secret.json" 2>&1); rc=$?
    [ $rc = 1 ] && grep -q "secrets reach the guest through virtiofsd, which needs root" <<<"$out" &&
        ok "as another user: a config naming secrets is refused, saying why" || bad "as nobody with secrets: exit $rc: $out"
    out=$(as_nobody "$ocvm" up -d --config "$tmp/nobody/plain.json" 2>&1); rc=$?
    body=$(curl -s -m 5 "http://127.0.0.1:$port/health")
    as_nobody "$ocvm" down --config "$tmp/nobody/plain.json" >/dev/null 2>&1
    [ $rc = 0 ] && [[ "$body" == *'"peer":"127.0.0.1"'* ]] &&
        ok "as another user: a VM without secrets runs (no secrets share) and answers" ||
        bad "as nobody without secrets: exit $rc: $out / $body"
fi

left=$(leftovers)
[ -z "$left" ] && ok "no process of this test is left running" || bad "left running: $left"
boot_finish
