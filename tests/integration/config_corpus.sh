#!/bin/bash
# The config corpus, like OpenBSD's regress: every tests/configs/pass/*.json must load, and every
# tests/configs/fail/*.json must be refused (exit 2) with exactly one line on stderr, equal to
# "ocvm: " followed by the content of the .err file of the same basename. Every
# tests/configs/unsafe/*.json waives a policy rule with an unsafe_* key: it must load (exit 0)
# and print exactly the warning lines of its .warn file, one per key in use (policy/rules.h).
#
# Usage: config_corpus.sh BUILD_DIR   (ctest sets OCVM_SOURCE_DIR to the source tree)
#
# Files are named relative to tests/configs (the script runs there), so messages read
# "fail/x.json:LINE:COL: key: message". A message that names a file the config points at may show
# it absolute (resolved against the config's directory); the absolute prefix of tests/configs is
# removed before comparing, so the .err files hold no checkout path.
#
# To write a new .err: run the case once, then check by eye that the message is right and that
# LINE:COL points at the offending value (or key); never copy a wrong message into a .err file.
set -u

build_dir=${1:?usage: config_corpus.sh BUILD_DIR}
build_dir=$(cd "$build_dir" && pwd) || exit 1
source_dir=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm=$build_dir/ocvm
if [[ ! -x $ocvm ]]; then
    echo "config_corpus: $ocvm is not built" >&2
    exit 1
fi
cd "$source_dir/tests/configs" || exit 1
configs_dir=$PWD

# cmdline only computes runtime paths, but keep it away from /run all the same.
OCVM_RUNTIME_DIR=$(mktemp -d /tmp/ocvm-config-corpus.XXXXXX) || exit 1
export OCVM_RUNTIME_DIR
trap 'rm -rf "$OCVM_RUNTIME_DIR"' EXIT
unset OCVM_CONFIG_DIR

out=$OCVM_RUNTIME_DIR/stdout
err=$OCVM_RUNTIME_DIR/stderr
passed=0
failed=0

ok() {
    echo "ok $*"
    passed=$((passed + 1))
}

not_ok() {
    echo "FAIL $*"
    failed=$((failed + 1))
}

# Messages of `ocvm cmdline` that mean "this host cannot run that accel/backend": the config itself
# loaded. (A pass config may ask for accel kvm on a machine without KVM.)
host_refusal='^ocvm: [A-Za-z0-9_-]+: (/dev/kvm |/dev/vhost-vsock |the CPU advertises neither|KVM|the KVM probe)'

shopt -s nullglob
pass_files=(pass/*.json)
fail_files=(fail/*.json)
if ((${#pass_files[@]} == 0 || ${#fail_files[@]} == 0)); then
    echo "config_corpus: no pass/*.json or no fail/*.json in $configs_dir" >&2
    exit 1
fi

for f in "${pass_files[@]}"; do
    "$ocvm" cmdline --config "$f" >"$out" 2>"$err"
    rc=$?
    lines=$(wc -l <"$err")
    if ((rc == 0)) && [[ -s $out ]] && ((lines == 0)); then
        ok "$f"
    elif ((rc == 1 && lines == 1)) && grep -Eq "$host_refusal" "$err"; then
        ok "$f (loads; this host cannot build its argv: $(cat "$err"))"
    else
        not_ok "$f: expected exit 0, got $rc: $(head -n 3 "$err")"
    fi
done

for f in "${fail_files[@]}"; do
    expected_file=${f%.json}.err
    if [[ ! -f $expected_file ]]; then
        not_ok "$f: no $expected_file"
        continue
    fi
    expected="ocvm: $(cat "$expected_file")"
    "$ocvm" cmdline --config "$f" >"$out" 2>"$err"
    rc=$?
    got=$(head -n 1 "$err")
    got=${got//"$configs_dir/"/}
    lines=$(wc -l <"$err")
    if ((rc != 2)); then
        not_ok "$f: expected exit 2, got $rc (stderr: $got)"
    elif [[ $got != "$expected" ]]; then
        not_ok "$f"
        echo "    expected: $expected"
        echo "    got:      $got"
    elif ((lines != 1)); then
        not_ok "$f: stderr has $lines lines, expected exactly one"
    else
        ok "$f"
    fi
done

for f in unsafe/*.json; do
    expected_file=${f%.json}.warn
    if [[ ! -f $expected_file ]]; then
        not_ok "$f: no $expected_file"
        continue
    fi
    "$ocvm" cmdline --config "$f" >"$out" 2>"$err"
    rc=$?
    got=$(sed "s|$configs_dir/||g" "$err")
    if ((rc != 0)); then
        not_ok "$f: expected exit 0 (waived), got $rc: $(head -n 3 "$err")"
    elif [[ $got != "$(cat "$expected_file")" ]]; then
        not_ok "$f: warnings differ"
        diff <(cat "$expected_file") <(printf '%s\n' "$got") | sed 's/^/    /'
    elif ! grep -q . "$expected_file"; then
        not_ok "$f: $expected_file is empty: an unsafe key must always be said"
    else
        ok "$f (waived, with $(wc -l <"$expected_file") warning line(s))"
    fi
done

for e in fail/*.err; do
    [[ -f ${e%.err}.json ]] || not_ok "$e: no ${e%.err}.json"
done

echo "$passed passed, $failed failed"
((failed == 0))
