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

write_config good '"vsock": null, "network": null'
expect "cmdline prints the argv" 0 '^qemu-system-x86_64$' -- "$ocvm" cmdline good
out=$("$ocvm" cmdline good)
if grep -qx -- '-no-reboot' <<<"$out" && grep -qx -- "$tmp/vmlinuz" <<<"$out" &&
    ! grep -q vsock <<<"$out"; then
    echo "ok   cmdline content"; passed=$((passed + 1))
else
    echo "FAIL cmdline content:"; printf '%s\n' "$out"; failed=$((failed + 1))
fi
expect "status --json parses" 0 '' -- python3 -c "
import json, subprocess, sys
r = subprocess.run(['$ocvm', 'status', '--json', 'good'], capture_output=True, text=True)
d = json.loads(r.stdout)
sys.exit(0 if r.returncode == 3 and d == {'name': 'good', 'running': False, 'phase': 'stopped', 'stages': []} else 1)"

write_config wrongname '"vsock": null'
mv "$OCVM_CONFIG_DIR/wrongname.json" "$OCVM_CONFIG_DIR/other.json"
expect "file for another VM" 2 '"name" is "wrongname", but the file is for VM "other"' -- "$ocvm" up other

write_config noqemu '"vsock": null, "network": null, "machine": {"qemu": "/nonexistent/qemu"}'
expect "missing QEMU" 1 'machine.qemu: "/nonexistent/qemu" is not an executable' -- "$ocvm" up noqemu

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
if [ $status = 1 ] && grep -q 'failed to start' <<<"$out" && [ ! -e "$OCVM_RUNTIME_DIR/dies" ]; then
    echo "ok   up -d reports a failed start"; passed=$((passed + 1))
else
    echo "FAIL up -d failed start (status $status):"; printf '%s\n' "$out" | sed 's/^/    /'
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
