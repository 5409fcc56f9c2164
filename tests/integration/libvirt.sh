#!/bin/bash
# ocvm's way into libvirt and back, on libvirt's test driver (no daemon): the domain `ocvm
# libvirt-xml` writes passes virt-xml-validate (both machine types); `ocvm libvirt define` defines
# it on test:///default; the domain as libvirt keeps it (virsh dumpxml) imports back into the same
# config; a domain without ocvm's metadata imports from its XML, what is lost listed on stderr;
# a domain without a kernel is refused (two vsock devices libvirt refuses itself; the unit suite
# imports such XML), foreign ones are left alone, a config that breaks a safety rule is
# written but exits 2; the verbs' usage errors; systemd-analyze verify on ocvm-libvirt@.service.
# The test driver's state lives in one connection, so imports read a node file (test:///FILE).
set -uo pipefail
build=$(realpath "${1:?usage: libvirt.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ocvm="$build/ocvm"
for tool in virsh virt-xml-validate; do
    if ! command -v "$tool" >/dev/null; then
        echo "skip: $tool is not installed (Debian package libvirt-clients)"
        exit 77
    fi
done
tmp=$(mktemp -d /tmp/ocvm-libvirt-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_CONFIG_DIR="$tmp/etc" OCVM_LIBVIRT_DIR="$tmp/sockets"
mkdir -p "$OCVM_CONFIG_DIR" "$tmp/guest"
: >"$tmp/guest/vmlinuz"
: >"$tmp/guest/initrd.img"
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

# the demo, its guest files at stand-ins
sed "s|\.\./build/guest/|$tmp/guest/|" "$src/examples/demo.json" >"$OCVM_CONFIG_DIR/demo.json"
cat >"$OCVM_CONFIG_DIR/big.json" <<JSON
{ "name": "big", "machine": { "type": "q35", "vcpu": 4, "memory_mib": 4096 },
  "boot": { "kernel": "$tmp/guest/vmlinuz" },
  "network": { "tap": "vm-big", "mac": "02:00:00:00:00:05" },
  "shares": [ { "tag": "data", "source": "$tmp/guest", "proto": "9p", "read_only": false },
              { "tag": "docs", "source": "$tmp/guest" } ] }
JSON
no_tsc() { sed 's/ tsc_early_khz=[0-9]*//'; } # measured afresh each time under TCG
# node FILE DOMAIN_XML...: a test driver node holding the domains
node() {
    local out=$1
    shift
    { echo "<node>"; cat "$@"; echo "</node>"; } >"$out"
}
# one_line_error NAME STATUS PATTERN -- CMD...: exit STATUS, nothing on stdout, one stderr line
one_line_error() {
    local name=$1 want=$2 pattern=$3
    shift 4
    local out status
    out=$("$@" 2>"$tmp/stderr")
    status=$?
    [ "$status" = "$want" ] && [ -z "$out" ] && [ "$(wc -l <"$tmp/stderr")" = 1 ] &&
        grep -qE -- "$pattern" "$tmp/stderr"
    result "$name" $? "status $status (want $want), stdout: $out, stderr: $(cat "$tmp/stderr")"
}

# --- export
for vm in demo big; do
    "$ocvm" libvirt-xml "$vm" >"$tmp/$vm.xml" 2>"$tmp/stderr"
    status=$?
    out=$(virt-xml-validate "$tmp/$vm.xml" domain 2>&1)
    [ $status = 0 ] && [ $? = 0 ]
    result "libvirt-xml $vm: virt-xml-validate passes" $? "status $status: $(cat "$tmp/stderr") $out"
done
grep -q '<type arch="x86_64" machine="microvm">' "$tmp/demo.xml" &&
    grep -q 'vhost-user-vsock-device,chardev=ocvm-vsock0' "$tmp/demo.xml" &&
    grep -q "path=$tmp/sockets/demo/vhost-user-vsock.sock" "$tmp/demo.xml" &&
    grep -q '<source type="memfd"/>' "$tmp/demo.xml" &&
    grep -q '<label>ocvm-demo:ocvm-demo</label>' "$tmp/demo.xml"
result "demo: microvm, vhost-user vsock in the socket directory, memfd, its own user" $?
grep -q '"driver":"vhost-user-vsock-pci"\|&quot;driver&quot;:&quot;vhost-user-vsock-pci' \
    "$tmp/big.xml" && grep -q '<target dev="vm-big" managed="no"/>' "$tmp/big.xml" &&
    grep -q '<driver queues="4"/>' "$tmp/big.xml"
result "q35: the vsock device in JSON on pcie.0, the TAP by name with 4 queues" $?

# --- define, and back
out=$("$ocvm" libvirt define demo --connect test:///default 2>&1)
result "libvirt define on test:///default" $? "$out"
virsh -q -c test:///default "define $tmp/demo.xml; dumpxml demo" >"$tmp/kept.xml" 2>"$tmp/stderr"
result "virsh defines it too (dumpxml: the domain as libvirt keeps it)" $? "$(cat "$tmp/stderr")"
node "$tmp/node.xml" "$tmp/kept.xml"
out=$("$ocvm" libvirt import demo --connect "test://$tmp/node.xml" -o "$tmp/imported.json" 2>&1)
status=$?
[ $status = 0 ] && [ "$(stat -c %a "$tmp/imported.json")" = 600 ] &&
    grep -q "from ocvm's metadata" <<<"$out"
result "import from the metadata: exit 0, the file 0600" $? "status $status: $out"
a=$("$ocvm" libvirt-xml --config "$tmp/imported.json" 2>&1 | no_tsc)
b=$(no_tsc <"$tmp/demo.xml")
[ "$a" = "$b" ]
result "round trip: the imported config makes the same domain, metadata included" $? \
    "$(diff <(echo "$b") <(echo "$a"))"
out=$("$ocvm" libvirt import "$(sed -n 's|.*<uuid>\(.*\)</uuid>.*|\1|p' "$tmp/kept.xml")" \
    --connect "test://$tmp/node.xml" 2>/dev/null)
[ "$out" = "$(cat "$tmp/imported.json")" ]
result "import by UUID, to stdout: the same config" $?

# --- the XML alone (the test driver keeps no <qemu:commandline>: the vsock device is lost too)
sed '/<metadata>/,/<\/metadata>/d' "$tmp/kept.xml" >"$tmp/bare.xml"
node "$tmp/node-bare.xml" "$tmp/bare.xml"
"$ocvm" libvirt import demo --connect "test://$tmp/node-bare.xml" >"$tmp/bare.json" 2>"$tmp/stderr"
status=$?
python3 - "$tmp/bare.json" "$tmp/guest" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
g = sys.argv[2]
assert c["boot"]["kernel"] == g + "/vmlinuz" and c["boot"]["initrd"] == g + "/initrd.img", c["boot"]
assert c["boot"]["cmdline"] == "console=ttyS0 panic=-1 quiet", c["boot"]["cmdline"]
assert c["machine"]["memory_mib"] == 2048 and c["machine"]["vcpu"] == 2
assert c["machine"]["type"] == "microvm" and c["vsock"] is None
PY
[ $? = 0 ] && [ $status = 0 ] && grep -q 'no vsock device' "$tmp/stderr" &&
    grep -q "the domain's XML" "$tmp/stderr"
result "import from the XML alone: kernel, initrd, command line, size; what is lost said" $? \
    "status $status: $(cat "$tmp/stderr")"

# --- broken and foreign domains
cat >"$tmp/nokernel.xml" <<XML
<domain type="qemu"><name>nokernel</name><memory>524288</memory>
  <os><type arch="x86_64" machine="q35">hvm</type></os></domain>
XML
cat >"$tmp/foreign.xml" <<XML
<domain type="qemu"><name>foreign</name><memory>524288</memory>
  <os><type arch="x86_64" machine="q35">hvm</type><kernel>$tmp/guest/vmlinuz</kernel></os>
  <devices><disk type="file" device="disk"><source file="$tmp/disk.img"/><target dev="vda"/></disk>
    <graphics type="vnc"/><vsock model="virtio"><cid auto="no" address="4"/></vsock></devices>
</domain>
XML
node "$tmp/node-broken.xml" "$tmp/nokernel.xml" "$tmp/foreign.xml" "$tmp/kept.xml"
B="test://$tmp/node-broken.xml"
one_line_error "import of a domain without a kernel: exit 2, one line" 2 'no <os><kernel>' \
    -- "$ocvm" libvirt import nokernel --connect "$B"
"$ocvm" libvirt import foreign --connect "$B" -o "$tmp/foreign.json" 2>"$tmp/stderr"
status=$?
[ $status = 0 ] && grep -q '<devices><disk>: not carried over' "$tmp/stderr" &&
    grep -q '<devices><graphics>: not carried over' "$tmp/stderr" &&
    grep -q '"guest_cid": 4' "$tmp/foreign.json"
result "import of a foreign domain: each element left behind on stderr" $? \
    "status $status: $(cat "$tmp/stderr")"
one_line_error "import of a domain that is not there: exit 1" 1 'no domain nothere' \
    -- "$ocvm" libvirt import nothere --connect "$B"
one_line_error "undefine of a domain ocvm did not define: left alone, exit 1" 1 \
    'was not defined by ocvm: left alone' -- "$ocvm" libvirt undefine foreign --connect "$B"
sed "s/\"name\": \"demo\"/\"name\": \"foreign\"/" "$OCVM_CONFIG_DIR/demo.json" \
    >"$OCVM_CONFIG_DIR/foreign.json"
one_line_error "define over a domain ocvm did not define: exit 1" 1 'exists that ocvm did not define' \
    -- "$ocvm" libvirt define foreign --connect "$B"
one_line_error "undefine of a running domain: refused, exit 1" 1 'is running: .virsh shutdown demo. first' \
    -- "$ocvm" libvirt undefine demo --connect "$B"
# the test driver's node file runs its domains unless told (runstate 5: shut off)
sed 's|^<domain type=.qemu.|& xmlns:test="http://libvirt.org/schemas/domain/test/1.0"|;
     s|^</domain>|<test:runstate>5</test:runstate>&|' "$tmp/kept.xml" >"$tmp/off.xml"
node "$tmp/node-off.xml" "$tmp/off.xml"
out=$("$ocvm" libvirt undefine demo --connect "test://$tmp/node-off.xml" 2>&1)
[ $? = 0 ] && [ "$out" = "undefined domain demo" ]
result "undefine of ocvm's own domain, shut off" $? "$out"

# --- a config that breaks a safety rule: written, exit 2, the rule named at its line
sed 's/"host_listen": "127.0.0.1:18789"/"host_listen": "0.0.0.0:18789"/' "$tmp/kept.xml" \
    >"$tmp/exposed.xml"
node "$tmp/node-exposed.xml" "$tmp/exposed.xml"
"$ocvm" libvirt import demo --connect "test://$tmp/node-exposed.xml" -o "$tmp/exposed.json" \
    2>"$tmp/stderr"
status=$?
[ $status = 2 ] && grep -q "^ocvm: $tmp/exposed.json:[0-9]*:[0-9]*: gateway.host_listen: .*\[OCVM-P001\]" \
    "$tmp/stderr" && grep -q '"0.0.0.0:18789"' "$tmp/exposed.json"
result "import that breaks OCVM-P001: written, exit 2, the line names the rule" $? \
    "status $status: $(cat "$tmp/stderr")"

# --- usage
one_line_error "libvirt without a command" 2 'what\? define, undefine or import' -- "$ocvm" libvirt
one_line_error "libvirt frob" 2 'unknown command .*"frob"' -- "$ocvm" libvirt frob x
one_line_error "libvirt import without a domain" 2 'which domain\?' -- "$ocvm" libvirt import
one_line_error "libvirt define with -o" 2 '--output is for import' -- "$ocvm" libvirt define demo -o x
one_line_error "libvirt undefine x/y" 2 'not a VM name' -- "$ocvm" libvirt undefine x/y
one_line_error "libvirt --connect without its value" 2 'no value given for option "--connect"' \
    -- "$ocvm" libvirt import demo --connect
one_line_error "libvirt-xml without a VM" 2 'which VM\?' -- "$ocvm" libvirt-xml
sed 's/"cmdline": "console=ttyS0 panic=-1 quiet"/"cmdline": "ocvm.ip=1.2.3.4\/24"/' \
    "$OCVM_CONFIG_DIR/demo.json" >"$OCVM_CONFIG_DIR/badcmd.json"
sed -i 's/"name": "demo"/"name": "badcmd"/' "$OCVM_CONFIG_DIR/badcmd.json"
one_line_error "libvirt-xml of a config that breaks a rule: exit 2" 2 'OCVM-P003' \
    -- "$ocvm" libvirt-xml badcmd

# --- the sidecar's unit, offline
if command -v systemd-analyze >/dev/null; then
    sed "s|^ExecStart=/usr/bin/ocvm |ExecStart=$build/ocvm |" "$src/systemd/ocvm-libvirt@.service" \
        >"$tmp/ocvm-libvirt@demo.service"
    out=$(cd "$tmp" && systemd-analyze verify "$tmp/ocvm-libvirt@demo.service" 2>&1)
    [ $? = 0 ] && ! grep -q "ocvm-libvirt@" <<<"$out"
    result "systemd-analyze verify ocvm-libvirt@.service: says nothing" $? "$out"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
