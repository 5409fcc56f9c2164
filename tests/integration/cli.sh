#!/bin/bash
# The ocvm command line as a user meets it: exit codes (0 ok, 1 failed, 2 usage/config,
# 3 not running), one clear line per error, and nothing left behind after a failed `up`.
set -uo pipefail
# shellcheck source=../support/own_netns.sh
. "$(dirname "$0")/../support/own_netns.sh"
build=${1:?usage: cli.sh BUILD_DIR}
ocvm="$build/ocvm"
tmp=$(mktemp -d /tmp/ocvm-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_CONFIG_DIR="$tmp/etc"
mkdir -p "$OCVM_CONFIG_DIR"
: >"$tmp/vmlinuz"
# shellcheck source=../support/check.sh
. "$(dirname "$0")/../support/check.sh"

# expect NAME WANT_STATUS PATTERN -- CMD...: PATTERN must match the first stderr/stdout line
expect() {
    local name=$1 want=$2 pattern=$3
    shift 4
    local out status
    out=$("$@" 2>&1)
    status=$?
    local first=${out%%$'\n'*}
    [ "$status" = "$want" ] && [[ "$first" =~ $pattern ]]
    result "$name" $? "status $status (want $want), output: $out"
}

write_config() { # NAME EXTRA_JSON
    printf '{"name": "%s", "boot": {"kernel": "%s"}, %s}\n' "$1" "$tmp/vmlinuz" "$2" \
        >"$OCVM_CONFIG_DIR/$1.json"
}

expect "no arguments" 2 '^usage: ocvm' -- "$ocvm"
expect "help" 0 '^usage: ocvm' -- "$ocvm" --help
expect "unknown verb" 2 'unknown command "frob"' -- "$ocvm" frob
expect "up without a name" 2 'which VM\?' -- "$ocvm" up
expect "two names" 2 'unexpected argument "b"' -- "$ocvm" up a b
expect "bad name" 2 '"x/y" is not a VM name' -- "$ocvm" up x/y
expect "unknown option" 2 'unknown or misplaced option "--frob"' -- "$ocvm" up --frob x
expect "missing config file" 2 "^ocvm: $tmp/etc/nothere.json: No such file or directory\$" -- "$ocvm" up nothere
expect "status of a stopped VM" 3 '^nothere: stopped$' -- "$ocvm" status nothere
expect "down of a stopped VM" 0 '^nothere: not running$' -- "$ocvm" down nothere
expect "no VMs" 0 '^no VMs are running$' -- "$ocvm" status

verbs=(up down status console cmdline check relay dns-config vsock-backend libvirt-xml libvirt attach)
# usage_error NAME PATTERN -- CMD...: exit 2, nothing on stdout, one line on stderr matching PATTERN
usage_error() {
    local name=$1 pattern=$2
    shift 3
    local out err status
    out=$("$@" 2>"$tmp/stderr")
    status=$?
    err=$(cat "$tmp/stderr")
    [ "$status" = 2 ] && [ -z "$out" ] && [ "$(wc -l <"$tmp/stderr")" = 1 ] &&
        [[ "$err" =~ $pattern ]]
    result "$name" $? "status $status (want 2), stdout: $out, stderr: $err"
}
# the list of verbs: one line per verb, each in it
lists_every_verb() { # OUTPUT
    local v
    for v in "${verbs[@]}"; do
        [ "$(grep -c "^  ocvm $v " <<<"$1")" = 1 ] || return 1
    done
}
for a in --help -h help; do
    out=$("$ocvm" "$a" 2>"$tmp/stderr")
    status=$?
    [ "$status" = 0 ] && [ ! -s "$tmp/stderr" ] && lists_every_verb "$out"
    result "ocvm $a: every verb, one line each, on stdout" $? "status $status, output: $out"
done
out=$("$ocvm" 2>&1 >/dev/null)
status=$?
[ "$status" = 2 ] && lists_every_verb "$out"
result "ocvm alone: the list on stderr, exit 2" $? "status $status, stderr: $out"
usage_error "unknown verb: one line" '^ocvm: unknown command "frob"' -- "$ocvm" frob
for v in "${verbs[@]}"; do
    for h in --help -h; do
        out=$("$ocvm" "$v" "$h" 2>"$tmp/stderr")
        status=$?
        [ "$status" = 0 ] && [ ! -s "$tmp/stderr" ] && [[ "$out" == "usage: ocvm $v "* ]]
        result "ocvm $v $h: its usage on stdout, exit 0" $? "status $status, stdout: $out
stderr: $(cat "$tmp/stderr")"
    done
    usage_error "ocvm $v --frob: one line naming it, exit 2" "--frob" -- "$ocvm" "$v" --frob
done
usage_error "a short option of another verb: one line" '^ocvm status: unknown or misplaced option "-d"' \
    -- "$ocvm" status -d
usage_error "--config without its value: one line" '^ocvm down: no value given for option "--config"' \
    -- "$ocvm" down --config
usage_error "relay option without its value: one line" 'no value given for option "--idle-timeout-s"' \
    -- "$ocvm" relay tcp:127.0.0.1:1 tcp:127.0.0.1:2 --idle-timeout-s

write_config good '"vsock": null, "network": null'
expect "cmdline prints the argv" 0 '^qemu-system-x86_64$' -- "$ocvm" cmdline good
out=$("$ocvm" cmdline good)
if grep -qx -- '-no-reboot' <<<"$out" && grep -qx -- "$tmp/vmlinuz" <<<"$out" &&
    ! grep -q vsock <<<"$out"; then
    echo "ok   cmdline content"; passed=$((passed + 1))
else
    echo "FAIL cmdline content:"; printf '%s\n' "$out"; failed=$((failed + 1))
fi
# NAME and --config FILE together, in any order: the file's "name" must be NAME
cp "$OCVM_CONFIG_DIR/good.json" "$tmp/good-copy.json"
no_tsc() { sed 's/ tsc_early_khz=[0-9]*//'; } # measured afresh each time under TCG
out=$(no_tsc <<<"$out")
out_both=$("$ocvm" cmdline good --config "$tmp/good-copy.json" 2>&1)
status=$?
[ "$status" = 0 ] && [ "$(no_tsc <<<"$out_both")" = "$out" ]
result "cmdline NAME --config FILE: the same argv" $? "status $status, output: $out_both"
out_both=$(cd "$tmp" && "$ocvm" cmdline --config ./good-copy.json good 2>&1)
status=$?
[ "$status" = 0 ] && [ "$(no_tsc <<<"$out_both")" = "$out" ]
result "cmdline --config ./FILE NAME: the same argv" $? "status $status, output: $out_both"
usage_error "NAME and a FILE for another VM: one line naming both" \
    "^ocvm: $tmp/good-copy.json: \"name\" is \"good\", but the command line names VM \"other\"\$" \
    -- "$ocvm" cmdline other --config "$tmp/good-copy.json"
usage_error "and for down" '"name" is "good", but the command line names VM "other"' \
    -- "$ocvm" down --config "$tmp/good-copy.json" other
out_both=$("$ocvm" status good --config "$tmp/good-copy.json" 2>&1)
status=$?
[ "$status" = 3 ] && [ "$out_both" = "good: stopped" ]
result "status NAME --config FILE: stopped, exit 3" $? "status $status, output: $out_both"
expect "status --json parses" 0 '' -- python3 -c "
import json, subprocess, sys
r = subprocess.run(['$ocvm', 'status', '--json', 'good'], capture_output=True, text=True)
d = json.loads(r.stdout)
sys.exit(0 if r.returncode == 3 and d == {'name': 'good', 'running': False, 'phase': 'stopped', 'stages': []} else 1)"
expect "status NAME --json: options after NAME" 0 '' -- python3 -c "
import json, subprocess, sys
r = subprocess.run(['$ocvm', 'status', 'good', '--json'], capture_output=True, text=True)
sys.exit(0 if r.returncode == 3 and json.loads(r.stdout)['phase'] == 'stopped' else 1)"

write_config wrongname '"vsock": null'
mv "$OCVM_CONFIG_DIR/wrongname.json" "$OCVM_CONFIG_DIR/other.json"
expect "file for another VM" 2 '"name" is "wrongname", but the file is for VM "other"' -- "$ocvm" up other

write_config noqemu '"vsock": null, "network": null, "machine": {"qemu": "/nonexistent/qemu"}'
expect "missing QEMU" 1 'machine.qemu: "/nonexistent/qemu" is not an executable' -- "$ocvm" up noqemu
expect "up NAME --config FILE, options after NAME" 1 'machine.qemu: "/nonexistent/qemu" is not' \
    -- "$ocvm" up noqemu --config "$OCVM_CONFIG_DIR/noqemu.json" -d

if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    write_config kvm '"vsock": null, "network": null, "machine": {"accel": "kvm"}'
    expect "accel kvm without KVM" 1 'machine.accel is "kvm" but' -- "$ocvm" up kvm
fi

# A QEMU that dies at once: restarted with back-off up to the limit, then `up` gives up with
# status 1 and removes its runtime directory.
write_config dies '"vsock": null, "network": null, "machine": {"qemu": "/bin/false"},
    "restart": {"max_restarts": 2, "backoff_initial_ms": 10, "backoff_max_ms": 20}'
out=$("$ocvm" up dies 2>&1); status=$?
if [ $status = 1 ] && grep -q 'restart 1/2 in 10 ms' <<<"$out" && grep -q 'restart 2/2 in 20 ms' <<<"$out" &&
    grep -q 'giving up after 2 restart(s)' <<<"$out" && [ ! -e "$OCVM_RUNTIME_DIR/dies" ]; then
    echo "ok   restart back-off, give up, clean up"; passed=$((passed + 1))
else
    echo "FAIL restart back-off (status $status):"; printf '%s\n' "$out" | sed 's/^/    /'
    ls -la "$OCVM_RUNTIME_DIR/dies" 2>&1 | sed 's/^/    /'
    failed=$((failed + 1))
fi

# `up -d` with a QEMU that cannot start reports failure to the caller, not success.
out=$("$ocvm" up -d dies 2>&1); status=$?
# ... with the reason: the supervisor's lines reach the caller until it has its verdict
if [ $status = 1 ] && grep -q 'failed to start' <<<"$out" && [ ! -e "$OCVM_RUNTIME_DIR/dies" ] &&
    grep -q 'giving up after 2 restart(s)' <<<"$out"; then
    echo "ok   up -d reports a failed start, and why"; passed=$((passed + 1))
else
    echo "FAIL up -d failed start (status $status):"; printf '%s\n' "$out" | sed 's/^/    /'
    failed=$((failed + 1))
fi

# `check` without a running VM: the static rules alone; findings on stdout, id first
out=$("$ocvm" check good 2>/dev/null); status=$?
[ $status = 0 ] && [ -z "$out" ]
result "check of a clean config: exit 0, no finding" $? "status $status, stdout: $out"
write_config exposed '"vsock": null, "network": null, "gateway": {"host_listen": "0.0.0.0:18789"}'
out=$("$ocvm" check exposed 2>/dev/null); status=$?
[ $status = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] &&
    [[ "$out" == "OCVM-P001 $OCVM_CONFIG_DIR/exposed.json:1:"*": gateway.host_listen: \"0.0.0.0:18789\" is not a loopback address"* ]]
result "check of a config that exposes the gateway: one OCVM-P001 line, exit 1" $? "status $status, stdout: $out"
out=$("$ocvm" check --json exposed 2>/dev/null); status=$?
[ $status = 1 ] && python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["vm"] == "exposed" and d["running"] is False and d["clean"] is False
assert [f["id"] for f in d["findings"]] == ["OCVM-P001"]' "$out"
result "check --json: the same finding as JSON" $? "status $status, stdout: $out"
expect "up refuses it before anything starts" 2 '\[OCVM-P001\]$' -- "$ocvm" up exposed
write_config waived '"vsock": null, "network": null, "gateway": {"host_listen": "0.0.0.0:18789", "unsafe_remote_gateway": true}'
out=$("$ocvm" check waived 2>/dev/null); status=$?
[ $status = 1 ] && [[ "$out" == *"(waived by gateway.unsafe_remote_gateway)" ]]
result "check counts a waived rule as a finding (a gate must see it)" $? "status $status, stdout: $out"
printf '{"name": "broken",' >"$OCVM_CONFIG_DIR/broken.json"
expect "check of a config that does not load: exit 2" 2 'broken.json:1:' -- "$ocvm" check broken

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
