#!/bin/bash
# The Nix side of ocvm (flake.nix, nix/, examples/nixos/), with Debian's nix-bin (Nix 2.8) and
# no network:
#  (a) every .nix file of the tree parses (nix-instantiate --parse);
#  (b) nix/lib/render-config.nix renders the test VMs of nix/tests/vms.nix (examples/nixos's VM,
#      one with every key of docs/config.md set, one with an unsafe_* waiver) without nixpkgs;
#      `ocvm cmdline --config` and `ocvm check --config` take each JSON (kernel, initrd, secrets
#      and shares are stand-ins made here); a secret's path is in the JSON, its value is not, and
#      a secret in the Nix store is refused;
#  (c) with a nixpkgs lib (OCVM_NIXPKGS=/path/to/nixpkgs, or <nixpkgs> on NIX_PATH):
#      nixosModules.host and .guest through lib.evalModules (nix/tests/eval-modules.nix: the
#      modules' own options are real, the NixOS options they write into are declared by
#      nix/tests/nixos-stubs.nix), examples/nixos/configuration.nix among them: assertions, the
#      rendered /etc/ocvm/*.json (again through ocvm cmdline and check), the instance drop-ins,
#      the target, timers, user, Caddy site, Unbound settings, the guest's relay, readiness,
#      credentials and firewall assertions. Without one it says it skipped and counts nothing;
#  (d) systemd-analyze verify on the units (c) gets from the modules: the packaged template with
#      an instance's drop-in, and the guest's relay unit. The modules write no unit file
#      literally; NixOS renders them, so (d) renders them the same way from (c)'s values.
# flake.nix is only parsed: flakes are experimental in Nix 2.8, and its inputs need the network.
# Nix runs without a daemon, build users or /nix: a store of its own under a temporary directory.
# Usage: nix.sh BUILD_DIR   (ctest sets OCVM_SOURCE_DIR)
set -uo pipefail
build=$(realpath "${1:?usage: nix.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

if ! command -v nix-instantiate >/dev/null; then
    echo "skip: nix-instantiate is not installed (Debian package nix-bin)"
    exit 77
fi
[ -x "$build/ocvm" ] || { echo "FAIL: $build/ocvm is not built"; exit 1; }
tmp=$(mktemp -d /tmp/ocvm-nix-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# No daemon, no nixbld group, nothing in /nix: a config and a (chroot) store of our own. Paths
# still read /nix/store/...; whatever an evaluation writes lands in $tmp/store.
mkdir -p "$tmp/etc" "$tmp/home"
printf 'build-users-group =\n' >"$tmp/etc/nix.conf"
export NIX_CONF_DIR=$tmp/etc HOME=$tmp/home XDG_CACHE_HOME=$tmp/home/.cache
unset NIX_REMOTE
nixi() { nix-instantiate --store "local?root=$tmp/store" "$@"; }
# evaluate EXPR (a function of src, dir, user and the extra --argstr's) to JSON on stdout
nix_json() {
    local expr=$1
    shift
    nixi --eval --strict --json -E "$expr" --argstr src "$src" --argstr dir "$tmp/vm" \
        --argstr user "$user" "$@"
}

# --- (a) every .nix file parses --------------------------------------------------------------
mapfile -t nixfiles < <(cd "$src" && find . \( -path './build*' -o -path './.git' -o -name 'result*' \) -prune -o \
    -name '*.nix' -type f -print | sed 's|^\./||' | sort)
[ "${#nixfiles[@]}" -ge 10 ]
result "the tree has its .nix files (${#nixfiles[@]})" $? "$(printf '%s\n' "${nixfiles[@]}")"
for f in "${nixfiles[@]}"; do
    out=$(nixi --parse "$src/$f" 2>&1 >/dev/null)
    result "parses: $f" $? "$out"
done

# --- stand-ins: kernel, initrd, secrets (0600), shares -----------------------------------------
if getent passwd ocvm >/dev/null; then user=ocvm; else user=nobody; fi
mkdir -p "$tmp/vm/share" "$tmp/vm/rw"
chmod 0700 "$tmp/vm"
touch "$tmp/vm/vmlinuz" "$tmp/vm/initrd.img"
secret_value="telegram-SECRET-VALUE-$$-$RANDOM"
(umask 077
 printf '%s\n' "$secret_value" >"$tmp/vm/telegram-token"
 printf 'sk-anthropic-SECRET-%s\n' "$RANDOM" >"$tmp/vm/anthropic-key"
 printf '%s\n' 0123456789abcdef0123456789abcdef0123456789abcdef >"$tmp/vm/gateway-token")

# ocvm_accepts NAME FILE [WANT_CHECK_STATUS]: ocvm cmdline and ocvm check take FILE
ocvm_accepts() {
    local what=$1 file=$2 want=${3:-0} out rc
    out=$("$build/ocvm" cmdline --config "$file" 2>&1)
    rc=$?
    [ $rc = 0 ] && grep -qxF "$tmp/vm/vmlinuz" <<<"$out"
    result "$what: ocvm cmdline --config takes it (exit 0, -kernel the stand-in)" $? "exit $rc: $out"
    out=$("$build/ocvm" check --config "$file" 2>&1)
    rc=$?
    [ $rc = "$want" ]
    result "$what: ocvm check --config exits $want" $? "exit $rc: $out"
    if [ "$want" = 1 ]; then
        grep -q 'OCVM-U001' <<<"$out"
        result "$what: ocvm check names the unused waiver (OCVM-U001)" $? "$out"
    fi
}
# secret_by_path NAME FILE: the secret's path is in FILE, its value is not
secret_by_path() {
    grep -qF "\"$tmp/vm/telegram-token\"" "$2" && ! grep -qF "$secret_value" "$2"
    result "$1: the secret's path is in the JSON, its value is not" $? "$(cat "$2")"
}

# --- (b) render-config.nix, without nixpkgs ----------------------------------------------------
render='{ src, dir, user, vm }: import (src + "/nix/lib/render-config.nix")
    (import (src + "/nix/tests/vms.nix") { inherit dir user; }).${vm}'
mkdir -p "$tmp/render"
for vm in openclaw full unsafe; do
    out=$(nix_json "$render" --argstr vm "$vm" 2>&1 >"$tmp/render/$vm.json")
    result "render-config.nix renders the VM $vm" $? "$out"
done
# every key of the canonical config (examples/openclaw.json) is set in "full", plus the secrets
# and the unsafe_* keys; ocvm check's strict loader proves there is no key it does not know
python3 - "$src/examples/openclaw.json" "$tmp/render/full.json" <<'EOF'
import json, sys
canon, full = (json.load(open(f)) for f in sys.argv[1:])
def paths(v, p=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from paths(x, f"{p}.{k}" if p else k)
    elif isinstance(v, list) and v and isinstance(v[0], dict):
        for x in v:
            yield from paths(x, p + "[]")
    else:
        yield p
have = set(paths(full))
want = set(paths(canon)) | {"secrets.files.telegram", "secrets.gateway_token",
    "machine.unsafe_qemu_as_root", "machine.unsafe_extra_args", "boot.unsafe_cmdline",
    "gateway.unsafe_remote_gateway", "gateway.unsafe_openclaw_bind", "gateway.unsafe_openclaw_auth",
    "gateway.unsafe_openclaw_tools", "forwards[].unsafe_remote_listen", "gateway.openclaw.logging.level"}
# (an empty list there, e.g. network.egress.allow, is set here by a list of objects)
missing = sorted(w for w in want - have if not any(h.startswith(w + "[].") for h in have))
if missing: print("missing:", missing); sys.exit(1)
if full["timeouts"]["ready_s"] != 600: print("settings not merged last:", full["timeouts"]); sys.exit(1)
if full["gateway"]["openclaw"]["gateway"]["terminal"] is not None: print("null lost"); sys.exit(1)
if any("connect" in f for f in full["forwards"] if f["to"] == "guest"): print("null connect written"); sys.exit(1)
EOF
result "render: full sets every key of examples/openclaw.json, the secrets, the unsafe_* keys; settings merge last; null stays null" $?
for vm in openclaw full; do
    ocvm_accepts "render: $vm" "$tmp/render/$vm.json"
done
ocvm_accepts "render: unsafe" "$tmp/render/unsafe.json" 1
grep -q '"unsafe_extra_args":true' "$tmp/render/unsafe.json"
result "render: an unsafe_* key reaches the JSON" $?
secret_by_path "render: openclaw" "$tmp/render/openclaw.json"

out=$(nix_json '{ src, ... }: import (src + "/nix/lib/render-config.nix") {
    name = "x"; boot.kernel = "/k"; secrets.files.t = "${builtins.toFile "t" "value"}"; }' 2>&1)
rc=$?
[ $rc != 0 ] && grep -q 'is in the Nix store' <<<"$out" && ! grep -qF '"value"' <<<"$out"
result "render: a secret in the Nix store is refused" $? "exit $rc: $out"
out=$(nix_json '{ src, ... }: import (src + "/nix/lib/render-config.nix") {
    name = "x"; boot.kernel = "/k"; settings.secrets.gateway_token = "${builtins.toFile "t" "value"}"; }' 2>&1)
rc=$?
[ $rc != 0 ] && grep -q 'is in the Nix store' <<<"$out"
result "render: ... also when it comes in through settings" $? "exit $rc: $out"

# --- (c) the modules through lib.evalModules -------------------------------------------------
nixpkgs=${OCVM_NIXPKGS:-}
if [ -z "$nixpkgs" ]; then
    nixpkgs=$(nixi --find-file nixpkgs 2>/dev/null) || nixpkgs=
fi
if [ -z "$nixpkgs" ] || [ ! -f "$nixpkgs/lib/default.nix" ]; then
    echo "skip: module evaluation needs nixpkgs' lib (set OCVM_NIXPKGS=/path/to/nixpkgs)"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
fi
echo "module evaluation with the lib of $nixpkgs ($(cat "$nixpkgs/lib/.version" 2>/dev/null || echo '?'))"
out=$(nix_json '{ src, dir, user, nixpkgs }: import (src + "/nix/tests/eval-modules.nix") {
    lib = import (nixpkgs + "/lib"); inherit dir user; }' --argstr nixpkgs "$nixpkgs" \
    2>&1 >"$tmp/modules.json")
result "lib.evalModules evaluates nixosModules.host (with examples/nixos/configuration.nix) and .guest" $? "$out"

# each rendered /etc/ocvm/NAME.json, to a file of its own
mkdir -p "$tmp/etc-ocvm"
python3 - "$tmp/modules.json" "$tmp/etc-ocvm" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
for name, text in d["host"]["etc"].items():
    open(os.path.join(sys.argv[2], os.path.basename(name)), "w").write(text)
EOF
for vm in openclaw full; do
    ocvm_accepts "module: /etc/ocvm/$vm.json" "$tmp/etc-ocvm/$vm.json"
done
ocvm_accepts "module: /etc/ocvm/unsafe.json" "$tmp/etc-ocvm/unsafe.json" 1
secret_by_path "module: /etc/ocvm/openclaw.json" "$tmp/etc-ocvm/openclaw.json"

# facts FILTER: a Python expression over d (modules.json) that must hold; NAME describes it
fact() {
    local name=$1 expr=$2 out
    out=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); h, g = d["host"], d["guest"]
ok = eval(sys.argv[2])
if not ok: print(json.dumps({"host": h, "guest": g}, indent=1)[:4000])
sys.exit(0 if ok else 1)' "$tmp/modules.json" "$expr" 2>&1)
    result "$name" $? "$out"
}
fact "host: no assertion fails, no warning" 'h["failedAssertions"] == [] and h["warnings"] == []'
fact "host: the package's units are systemd.packages" 'h["packages"] == ["ocvm"]'
fact "host: users.users.ocvm is a system user of group ocvm" \
    'h["users"]["ocvm"] == {"isSystemUser": True, "group": "ocvm"} and h["users"]["groups"] == ["ocvm"]'
fact "host: ocvm-vms.target, wanted by multi-user.target, wants each ocvm@NAME.service" \
    'h["target"]["wantedBy"] == ["multi-user.target"] and sorted(h["target"]["wants"]) == ["ocvm@full.service", "ocvm@openclaw.service", "ocvm@unsafe.service"]'
fact "host: each instance is a drop-in (asDropin) on the template, with QEMU on its PATH" \
    'sorted(h["instances"]) == ["ocvm@full", "ocvm@openclaw", "ocvm@unsafe"] and all(i["overrideStrategy"] == "asDropin" and i["path"] == ["qemu"] and i["wantedBy"] == [] for i in h["instances"].values())'
fact "host: drop-ins follow the rendered config (TimeoutStopSec shutdown_s + 5, TimeoutStartSec ready_s + 60, ReadWritePaths of a writable share)" \
    'h["instances"]["ocvm@full"]["serviceConfig"] == {"TimeoutStopSec": "45s", "TimeoutStartSec": "660s", "ReadWritePaths": [json.loads(h["etc"]["ocvm/full.json"])["shares"][1]["source"]]} and h["instances"]["ocvm@openclaw"]["serviceConfig"] == {"TimeoutStopSec": "35s", "TimeoutStartSec": "960s"}'
fact "host: ocvm-check@NAME.timer per VM, a drop-in wanted by timers.target" \
    'sorted(h["timers"]) == ["ocvm-check@full", "ocvm-check@openclaw", "ocvm-check@unsafe"] and all(t == {"overrideStrategy": "asDropin", "wantedBy": ["timers.target"]} for t in h["timers"].values())'
fact "host: socket activation: an ocvm-gateway@NAME.socket drop-in, wanted by sockets.target, listening on the VM's host_listen" \
    'h["sockets"] == {"ocvm-gateway@full": {"overrideStrategy": "asDropin", "wantedBy": ["sockets.target"], "listenStreams": ["", "127.0.0.1:18800"]}}'
fact "host: the Caddy site localhost:8443 binds 127.0.0.1 and proxies to host_listen without forwarded headers" \
    'h["caddy"]["enable"] and all(l in h["caddy"]["virtualHosts"]["localhost:8443"].splitlines() for l in ["bind 127.0.0.1", "reverse_proxy 127.0.0.1:18789 {", "  header_up -X-Forwarded-For", "  header_up -X-Forwarded-Proto", "  header_up -X-Forwarded-Host", "  header_up -X-Real-IP", "  header_up -Forwarded"])'
fact "host: Unbound on the bridge address, answering the subnet, logging queries and replies" \
    'h["unbound"]["enable"] and "192.168.83.1" in h["unbound"]["server"]["interface"] and "192.168.83.0/24 allow" in h["unbound"]["server"]["access-control"] and "10.83.7.0/28 allow" in h["unbound"]["server"]["access-control"] and h["unbound"]["server"]["log-queries"] is True and h["unbound"]["server"]["log-replies"] is True and h["unbound"]["server"]["ip-freebind"] is True'
fact "host: DNS from the bridge is let in (networking.firewall.interfaces.BRIDGE)" \
    'h["firewallInterfaces"]["br-openclaw"]["allowedUDPPorts"] == [53]'
fact "host: a guest gives kernel, initrd, cmdline (init=) and health_path /readyz" \
    'h["guestDefaults"]["kernel"].endswith("-linux/bzImage") and h["guestDefaults"]["initrd"].endswith("-initrd/initrd") and "init=" in h["guestDefaults"]["cmdline"] and h["guestDefaults"]["health_path"] == "/readyz" and h["guestDefaults"]["failedAssertions"] == []'
fact "host: a guest with another gateway port or an unknown secret fails its assertions" \
    'len(h["guestMismatch"]) == 2'
fact "host: a secret in the Nix store is refused by its option type" 'h["storeSecret"] is False'

fact "guest: no assertion fails, no warning" 'g["failedAssertions"] == [] and g["warnings"] == []'
fact "guest: vmw_vsock_virtio_transport is loaded" '"vmw_vsock_virtio_transport" in g["kernelModules"]'
fact "guest: ocvm-guest relay, Type=notify, Restart=always, before the gateway, wanted by multi-user.target" \
    'g["relay"]["serviceConfig"]["ExecStart"].endswith("/bin/ocvm-guest relay") and g["relay"]["serviceConfig"]["Type"] == "notify" and g["relay"]["serviceConfig"]["Restart"] == "always" and "openclaw-gateway.service" in g["relay"]["before"] and g["relay"]["wantedBy"] == ["multi-user.target"]'
fact "guest: the secrets share (virtiofs ocvm-secrets) is mounted read-only" \
    'g["secretsMount"]["device"] == "ocvm-secrets" and g["secretsMount"]["fsType"] == "virtiofs" and "ro" in g["secretsMount"]["options"]'
fact "guest: the gateway's unit gets the secrets as credentials and its config path, after the relay and the mount" \
    'g["gateway"]["serviceConfig"]["LoadCredential"] == ["gateway.token:/run/shares/ocvm-secrets/gateway.token", "openclaw.json:/run/shares/ocvm-secrets/openclaw.json", "telegram:/run/shares/ocvm-secrets/telegram"] and g["gateway"]["environment"] == {"OPENCLAW_CONFIG_PATH": "%d/openclaw.json"} and g["gateway"]["unitConfig"]["RequiresMountsFor"] == ["/run/shares/ocvm-secrets"] and "ocvm-guest-relay.service" in g["gateway"]["after"]'
fact "guest: ocvm-gateway-ready waits for /readyz before multi-user.target (so systemd's READY=1 to the host waits too)" \
    'g["ready"]["before"] == ["multi-user.target"] and "openclaw-gateway.service" in g["ready"]["after"] and "http://127.0.0.1:18789/readyz" in g["ready"]["script"] and g["ready"]["serviceConfig"]["Type"] == "oneshot"'
fact "guest: the gateway's port open in the firewall fails an assertion (ports, ranges, interfaces)" \
    'all(len(g[k]) == 1 and "18789" in g[k][0] for k in ["openPort", "openRange", "openInterface"])'
fact "guest: system.build.ocvm gives the host kernel, initrd and init=" \
    'g["boot"]["kernel"].endswith("/bzImage") and "init=" in g["boot"]["cmdline"] and g["boot"]["cmdline"].startswith("console=ttyS0 panic=-1 ")'

# the guest's network script and readiness script are shell: they must at least parse
for s in network ready; do
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["guest"][sys.argv[2]]["script"])' \
        "$tmp/modules.json" "$s" >"$tmp/$s.sh"
    out=$(sh -n "$tmp/$s.sh" 2>&1)
    result "guest: the $s script parses (sh -n)" $? "$out"
done

# --- (d) systemd-analyze verify on what the modules make ---------------------------------------
if ! command -v systemd-analyze >/dev/null; then
    echo "skip: systemd-analyze is not installed (Debian package systemd)"
else
    units=$tmp/units
    mkdir -p "$units/ocvm@openclaw.service.d"
    # the template as the package installs it (ExecStart at the binary), the instance's drop-in
    sed "s|^\(Exec[A-Za-z]*=\)/usr/bin/ocvm |\1$build/ocvm |" "$src/systemd/ocvm@.service" \
        >"$units/ocvm@openclaw.service"
    python3 -c 'import json,sys; print("[Service]\n" + json.load(open(sys.argv[1]))["host"]["instances"]["ocvm@full"]["dropin"])' \
        "$tmp/modules.json" >"$units/ocvm@openclaw.service.d/overrides.conf"
    out=$(cd "$units" && systemd-analyze verify "$units/ocvm@openclaw.service" 2>&1)
    rc=$?
    [ $rc = 0 ] && ! grep -qE 'ocvm@|overrides\.conf' <<<"$out"
    result "systemd-analyze verify: the template with an instance's drop-in" $? "exit $rc: $out"$'\n'"$(cat "$units/ocvm@openclaw.service.d/overrides.conf")"
    if [ -x "$build/ocvm-guest" ]; then
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["guest"]["relay"]["text"])' \
            "$tmp/modules.json" | sed "s|^ExecStart=/nix/store/[^/]*/bin/ocvm-guest |ExecStart=$build/ocvm-guest |" \
            >"$units/ocvm-guest-relay.service"
        out=$(cd "$units" && systemd-analyze verify "$units/ocvm-guest-relay.service" 2>&1)
        rc=$?
        [ $rc = 0 ] && ! grep -q 'ocvm-guest-relay' <<<"$out"
        result "systemd-analyze verify: the guest's ocvm-guest-relay.service" $? "exit $rc: $out"$'\n'"$(cat "$units/ocvm-guest-relay.service")"
    else
        echo "skip: $build/ocvm-guest is not built (OCVM_GUEST off): its unit is not verified"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
