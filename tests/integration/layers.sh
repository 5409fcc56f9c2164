#!/bin/bash
# The layers (docs/design.md): scripts/check-layers passes on this tree, and refuses each kind of
# upward include in a scratch tree: a library including the launcher or the config model, two
# sibling libraries including each other, common/ including anything above it.
# Usage: layers.sh BUILD_DIR   (ctest sets OCVM_SOURCE_DIR to the source tree)
set -uo pipefail
src=${OCVM_SOURCE_DIR:-$(dirname "$0")/../..}
. "$src/tests/support/check.sh"

out=$("$src/scripts/check-layers" "$src" 2>&1)
result "this tree's includes all point down" $? "$out"

tmp=$(mktemp -d /tmp/ocvm-layers-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{common,vsock,netsetup,config,policy,launcher}
printf '#include "common/cleanup.h"\n' >"$tmp/vsock/ok.c"
printf '#include "vsock/relay.h"\n#include "netsetup/plan.h"\n' >"$tmp/config/ok.c"
printf '#include "config/vm_config.h"\n#include "policy/rules.h"\n' >"$tmp/launcher/ok.c"
out=$("$src/scripts/check-layers" "$tmp" 2>&1)
result "downward includes pass" $? "$out"

# refused CASE FILE LINE... : FILE holding LINEs makes check-layers fail naming FILE:1
refused() {
    local name=$1 file=$2
    shift 2
    printf '%s\n' "$@" >"$tmp/$file"
    out=$("$src/scripts/check-layers" "$tmp" 2>&1)
    local rc=$?
    rm -f "$tmp/$file"
    [ $rc -eq 1 ] && grep -q "^$file:1: " <<<"$out"
    result "refused: $name" $? "exit $rc: $out"
}
refused "vsock/ including the launcher" vsock/bad.c '#include "launcher/cli.h"'
refused "netsetup/ including the config model" netsetup/bad.h '#include "config/vm_config.h"'
refused "vsock/ including its sibling netsetup/" vsock/bad.c '#include "netsetup/plan.h"'
refused "common/ including vsock/" common/bad.h '#include "vsock/endpoint.h"'
refused "config/ including policy/" config/bad.c '#include "policy/rules.h"'
refused "a header not named by its folder" netsetup/bad.c '#include "macro.h"'
refused "a folder that is not a layer" vsock/bad.c '#include "tests/support/golden.h"'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
