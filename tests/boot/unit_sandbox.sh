#!/bin/bash
# Boots VMs the way systemd/ocvm@.service runs ocvm, as far as a machine whose PID 1 is not
# systemd allows, and checks that they still come up: the unit's restrictions, read from the unit
# file itself, applied by setpriv, libseccomp (through python3's ctypes) and unshare:
#   NoNewPrivileges=, CapabilityBoundingSet=          setpriv --no-new-privs --bounding-set
#   SystemCallFilter=, SystemCallErrorNumber=,         one seccomp filter: the groups expanded by
#   SystemCallArchitectures=native,                    `systemd-analyze syscall-filter`, socket()
#   RestrictAddressFamilies=, RestrictNamespaces=      by family, unshare/clone/setns by flag
#   ProtectSystem=strict (+ RuntimeDirectory=),        a mount namespace: every mount read-only
#   ProtectKernelTunables= (+ ReadWritePaths=),        but /dev, the test's directory (for
#   ProtectControlGroups=, ProtectProc=invisible,      /run/ocvm) and /proc/sys/net/ipv4/conf;
#   PrivateMounts=, ProtectHostname=                   /proc with hidepid=invisible; its own UTS
# Not applied here: DevicePolicy=/DeviceAllow= (a cgroup BPF program of systemd's), and the
# argument filters systemd adds for RestrictSUIDSGID=, LockPersonality=, RestrictRealtime=,
# ProtectClock=; PrivateTmp= and ProtectHome= (this test lives in /tmp, python3 may be in /root).
# Three VMs, each: `up -d` returns once ready, the gateway answers curl on host_listen, every
# process of the VM runs with no new privileges, a seccomp filter and a bounding set inside the
# unit's, and `down` leaves nothing:
#   demo     examples/demo.json as it is (its guest taken from BUILD_DIR/guest)
#   share    the demo with a read-only virtiofs share and machine.user nobody: virtiofsd's
#            chroot as that user, QEMU's -runas; a killed supervisor still takes QEMU along
#   net      the demo with a network: bridge, TAP, nft table, IPv4 forwarding
# The whole test runs in a network namespace of its own (tests/support/own_netns.sh).
set -uo pipefail
# shellcheck source=../support/own_netns.sh
. "$(dirname "$0")/../support/own_netns.sh"
build=$(realpath "${1:?usage: unit_sandbox.sh BUILD_DIR}")
src=${OCVM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
unit=${OCVM_UNIT:-$src/systemd/ocvm@.service} # OCVM_UNIT: try a changed copy
ocvm="$build/ocvm"
guest="$build/guest"
if [ "$(id -u)" != 0 ]; then
    echo "skip: needs root (setpriv --bounding-set, mount namespaces)"; exit 77
fi
for tool in qemu-system-x86_64 systemd-analyze setpriv unshare curl python3 nft; do
    command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initrd.img" ]; then
    echo "skip: no demo guest in $guest (scripts/build-guest makes it)"; exit 77
fi
python3 -c 'import ctypes; ctypes.CDLL("libseccomp.so.2")' 2>/dev/null ||
    { echo "skip: libseccomp.so.2 is missing"; exit 77; }
# shellcheck source=../support/check.sh
. "$src/tests/support/check.sh"

tmp=$(mktemp -d /tmp/ocvm-sandbox-XXXXXX)
export OCVM_RUNTIME_DIR="$tmp/run" OCVM_STATE_DIR="$tmp/state" # the unit's RuntimeDirectory= and StateDirectory=
configs=()
# Our own leftovers, if a check failed: processes whose command line names our temp dir.
leftovers() { pgrep -f -- "$tmp/" | grep -vx "$$" || true; }
cleanup() {
    for c in "${configs[@]}"; do "$ocvm" down --config "$c" >/dev/null 2>&1; done
    for p in $(leftovers); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# values KEY: what KEY= is given in the unit, the words one a line
values() { sed -n "s/^$1=//p" "$unit" | tr ' ' '\n' | sed '/^$/d'; }
caps=$(values CapabilityBoundingSet | tr '[:upper:]' '[:lower:]' | sed 's/^cap_/+/' | paste -sd,)
# the bounding set as /proc/PID/status shows it, from the numbers in linux/capability.h
capmask=$(values CapabilityBoundingSet | while read -r c; do
    awk -v c="$c" '$1 == "#define" && $2 == c { print $3 }' /usr/include/linux/capability.h
done | awk '{ m += 2 ^ $1 } END { printf "%016x\n", m }')
[ -n "$caps" ] && [ "$capmask" != 0000000000000000 ]
result "the unit names a bounding set ($caps = $capmask)" $? || exit 1

# The system call filter, as systemd builds it from the unit: usage: UNIT -- COMMAND...
cat >"$tmp/seccomp_exec.py" <<'PY'
import ctypes, errno, os, socket, subprocess, sys
unit, cmd = sys.argv[1], sys.argv[3:]
def values(key):
    words = []
    for line in open(unit):
        if line.startswith(key + "="):
            words += line.strip()[len(key) + 1:].split()
    return words
groups, group = {}, None
listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
for line in listing.splitlines():
    word = line.strip()
    if not word or word.startswith("#"):
        continue
    if not line[0].isspace():
        group = groups.setdefault(word, [])
    elif group is not None:
        group.append(word)
def expand(name):
    return set().union(*map(expand, groups[name])) if name.startswith("@") else {name}
allowed = set().union(*map(expand, values("SystemCallFilter")))
ACT_ALLOW, ACT_KILL_PROCESS = 0x7FFF0000, 0x80000000
def act_errno(e):
    return 0x00050000 | e
err = values("SystemCallErrorNumber")
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64),
                ("b", ctypes.c_uint64)]
CMP_EQ, CMP_MASKED_EQ = 4, 7
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
# the native architecture only (SystemCallArchitectures=native)
ctx = lib.seccomp_init(act_errno(getattr(errno, err[0])) if err else ACT_KILL_PROCESS)
def rule(action, name, *cmps):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a system call of this architecture
    r = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), (Cmp * len(cmps))(*cmps))
    if r < 0:
        sys.exit(f"seccomp: rule for {name}: {os.strerror(-r)}")
by_argument = {"socket", "unshare", "clone", "clone3", "setns"}
for name in sorted(allowed - by_argument):
    rule(ACT_ALLOW, name)
# RestrictAddressFamilies=: socket() for the listed families only
for family in values("RestrictAddressFamilies") if "socket" in allowed else []:
    rule(ACT_ALLOW, "socket", Cmp(0, CMP_EQ, getattr(socket, family), 0))
# RestrictNamespaces=: no other namespace flag to unshare() and clone(); clone3() hides its flags
# from a filter and gets ENOSYS, so that libc falls back to clone(), as under systemd
NS = {"cgroup": 0x02000000, "ipc": 0x08000000, "mnt": 0x00020000, "net": 0x40000000,
      "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000}
# "yes" keeps none, "no" all, otherwise the list of those kept
words = values("RestrictNamespaces")
kept = [] if words == ["yes"] else list(NS.values()) if words == ["no"] else [NS[n] for n in words]
denied = sum(NS.values()) & ~sum(kept)
for name in ("unshare", "clone"):
    if name in allowed:
        rule(ACT_ALLOW, name, Cmp(0, CMP_MASKED_EQ, denied, 0))
if "clone3" in allowed:
    rule(act_errno(errno.ENOSYS), "clone3")
for flag in kept if "setns" in allowed else []:
    rule(ACT_ALLOW, "setns", Cmp(1, CMP_EQ, flag, 0))
r = lib.seccomp_load(ctx)
if r < 0:
    sys.exit(f"seccomp: load: {os.strerror(-r)}")
os.execvp(cmd[0], cmd)
PY

# sandboxed COMMAND...: COMMAND as the unit runs ocvm (see the top of this file)
sandboxed() {
    unshare --mount --uts --propagation private -- /bin/bash -ec '
        tmp=$1 unit=$2 caps=$3
        shift 3
        for m in $(awk "{ print \$5 }" /proc/self/mountinfo | sort -u); do
            case $m in /dev | /dev/* | /proc | /proc/*) ;; *) mount -o remount,bind,ro "$m" ;; esac
        done
        mount --bind "$tmp" "$tmp" && mount -o remount,bind,rw "$tmp"
        mount -t proc -o hidepid=invisible,nosuid,nodev,noexec proc /proc
        mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
        mount --bind /proc/sys/net/ipv4/conf /proc/sys/net/ipv4/conf
        mount -o remount,bind,rw /proc/sys/net/ipv4/conf
        exec setpriv --no-new-privs --inh-caps=-all --bounding-set="-all,$caps" \
            python3 "$tmp/seccomp_exec.py" "$unit" -- "$@"
    ' sandbox "$tmp" "$unit" "$caps" "$@"
}

# The harness itself: a stand-in for ocvm sees what ocvm will see.
out=$(sandboxed /bin/sh -c 'grep -E "^(NoNewPrivs|Seccomp|CapBnd):" /proc/self/status
    touch /usr/.ocvm-sandbox 2>&1; touch /proc/sys/net/ipv4/ip_forward 2>&1
    touch /proc/sys/net/ipv4/conf/lo/forwarding && echo conf-writable
    touch "$0/writable" && echo tmp-writable
    unshare -U true 2>&1; python3 -c "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)" 2>&1 | tail -1' "$tmp" 2>&1)
grep -q "^NoNewPrivs:.1" <<<"$out" && grep -q "^Seccomp:.2" <<<"$out" &&
    grep -q "^CapBnd:.$capmask" <<<"$out"
result "harness: no new privileges, a seccomp filter, the unit's bounding set" $? "$out"
grep -qF "/usr/.ocvm-sandbox': Read-only file system" <<<"$out" &&
    grep -qF "ip_forward': Read-only file system" <<<"$out" &&
    grep -q "^conf-writable" <<<"$out" && grep -q "^tmp-writable" <<<"$out"
result "harness: / and /proc/sys read-only; /proc/sys/net/ipv4/conf and the runtime dir not" $? "$out"
grep -q "unshare failed: Operation not permitted" <<<"$out" &&
    grep -q "PermissionError" <<<"$out"
result "harness: no user namespace, no AF_PACKET socket" $? "$out"

json() { # CONFIG EXPR: EXPR of CONFIG's `ocvm status --json`
    "$ocvm" status --json --config "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$2)"
}
wait_for() { # SECONDS COMMAND...: true once COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $deadline ]; do "$@" && return 0; sleep 0.2; done
    return 1
}
# a zombie waiting for its reaper is not alive
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
gone() { ! alive "$1"; }
none_left() { [ -z "$(leftovers)" ]; }
# confined PID...: each runs with no new privileges, a seccomp filter, a bounding set inside
# the unit's; prints what it saw
confined() {
    local p bnd bad=0
    [ $# -gt 0 ] || return 1
    for p in "$@"; do
        bnd=$(awk '/^CapBnd:/ { print $2 }' "/proc/$p/status")
        grep -q "^NoNewPrivs:.1" "/proc/$p/status" && grep -q "^Seccomp:.2" "/proc/$p/status" &&
            [ $((0x$bnd & ~0x$capmask)) = 0 ] || bad=1
        echo "$p $(cat "/proc/$p/comm") uid $(awk '/^Uid:/ { print $2 }' "/proc/$p/status")" \
            "$(grep -E '^(NoNewPrivs|Seccomp|CapBnd|CapEff):' "/proc/$p/status" | tr -s '\t\n' '  ')"
    done
    return $bad
}

# demo_config NAME FILE [PYTHON]: examples/demo.json as FILE, its guest from BUILD_DIR/guest,
# named NAME, changed by the python statements PYTHON (on the dict c)
demo_config() {
    python3 - "$src/examples/demo.json" "$guest" "$1" "$2" "${3:-}" <<'PY'
import json, sys
demo, guest, name, out, change = sys.argv[1:]
c = json.load(open(demo))
c["name"] = name
c["boot"]["kernel"], c["boot"]["initrd"] = guest + "/vmlinuz", guest + "/initrd.img"
exec(change)
json.dump(c, open(out, "w"), indent=2)
PY
    configs+=("$2")
}

# boot NAME CONFIG: up -d in the sandbox, ready, the gateway answers, every process confined
boot() {
    local name=$1 cfg=$2 out start=$SECONDS listen pids
    if out=$(sandboxed "$ocvm" up -d --config "$cfg" 2>&1); then
        result "$name: up -d in the unit's sandbox returns once ready ($((SECONDS - start)) s)" 0
    else
        # the detached supervisor's own messages are gone with its runtime directory: ask again
        result "$name: up -d in the unit's sandbox" 1 "$out"$'\n'"up in the foreground says:"$'\n'"$(
            sandboxed timeout 60 "$ocvm" up --config "$cfg" 2>&1 | tail -8)"
        return 1
    fi
    [ "$(json "$cfg" "['phase']")" = ready ]
    result "$name: status says ready" $?
    listen=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c.get("gateway", {}).get("host_listen", "127.0.0.1:18789"))' "$cfg")
    out=$(curl -sS -m 10 "http://$listen/health" 2>&1)
    grep -q '"ok":true' <<<"$out" && grep -q '"peer":"127.0.0.1"' <<<"$out"
    result "$name: the gateway answers on $listen: $out" $?
    mapfile -t pids < <(leftovers)
    out=$(confined "${pids[@]}")
    result "$name: every process: no new privileges, seccomp, the unit's bounding set at most" $? "$out"
}

# down NAME CONFIG: down, and nothing of the VM is left
down() {
    local name=$1 cfg=$2 out
    out=$("$ocvm" down --config "$cfg" 2>&1)
    result "$name: down" $? "$out"
    wait_for 10 none_left
    result "$name: no process left" $? "$(ps -o pid=,args= -p "$(leftovers | paste -sd,)" 2>/dev/null | cut -c1-120)"
    [ ! -e "$OCVM_RUNTIME_DIR/$name" ]
    result "$name: runtime directory removed" $? "$(ls -la "$OCVM_RUNTIME_DIR/$name" 2>&1)"
}

# 1. The demo as it is.
demo_config demo "$tmp/demo.json"
boot demo "$tmp/demo.json" && down demo "$tmp/demo.json"

# 2. A read-only virtiofs share, QEMU as nobody.
mkdir -p "$tmp/share" && echo "from-the-host-$$" >"$tmp/share/hello.txt"
demo_config share "$tmp/share.json" "c['machine']['user'] = 'nobody'
c['shares'] = [{'tag': 'data', 'source': '$tmp/share', 'proto': 'virtiofs', 'read_only': True}]"
if boot share "$tmp/share.json"; then
    qemu=$(json "$tmp/share.json" "['qemu_pid']")
    [ "$(awk '/^Uid:/ { print $2 }' "/proc/$qemu/status")" = 65534 ]
    result "share: QEMU dropped to nobody (-runas)" $? "$(grep ^Uid: "/proc/$qemu/status")"
    # its source is an fd (/proc/self/fd/4/.): found by the root it chrooted into
    fsd=$(for p in $(pgrep -x virtiofsd); do
        [ "$(readlink "/proc/$p/root")" = "$tmp/share" ] && echo "$p"; done)
    [ -n "$fsd" ] && [ "$(awk '/^Uid:/ { print $2 }' "/proc/$fsd/status")" = 65534 ]
    result "share: virtiofsd runs as nobody, chrooted into the share" $? "pid ${fsd:-none}"
    wait_for 60 grep -q "ocvm-guest: ready" "$OCVM_RUNTIME_DIR/share/console.log"
    out=$( (sleep 1; printf 'cat /run/shares/data/hello.txt\n'; sleep 3; printf '\035') |
        timeout 20 "$ocvm" console --config "$tmp/share.json" 2>&1)
    grep -q "from-the-host-$$" <<<"$out"
    result "share: the guest reads the share through virtiofsd" $? "$out"
    # CAP_KILL: the reaper, root, stops a QEMU that runs as another user
    kill -9 "$(json "$tmp/share.json" "['supervisor_pid']")"
    wait_for 15 gone "$qemu"
    result "share: a killed supervisor still takes QEMU (nobody) along" $?
    down share "$tmp/share.json"
fi

# 3. A network: bridge, TAP, nft table and forwarding, in this test's network namespace, with a
# veth for the uplink.
ip link add up-sbx type veth peer name up-sbx-peer && ip link set up-sbx up &&
    ip link set up-sbx-peer up && ip addr add 10.251.0.1/24 dev up-sbx &&
    ip route add default via 10.251.0.2
result "net: an uplink in this test's namespace" $?
demo_config net "$tmp/net.json" "c['network'] = {'bridge': 'br-sbx', 'tap': 'vm-sbx',
    'bridge_address': '192.168.83.1/24', 'guest_address': '192.168.83.2', 'uplink': 'up-sbx',
    'dns': '192.168.83.1'}"
if boot net "$tmp/net.json"; then
    ip link show br-sbx >/dev/null 2>&1 && ip link show vm-sbx >/dev/null 2>&1 &&
        nft list table inet ocvm_net >/dev/null 2>&1
    result "net: bridge, TAP and nft table made under the bounding set and filter" $?
    [ "$(cat /proc/sys/net/ipv4/conf/br-sbx/forwarding)" = 1 ] &&
        [ "$(cat /proc/sys/net/ipv4/conf/up-sbx/forwarding)" = 1 ]
    result "net: forwarding turned on through /proc/sys/net/ipv4/conf (the rest read-only)" $?
    down net "$tmp/net.json"
    ! ip link show br-sbx >/dev/null 2>&1 && ! ip link show vm-sbx >/dev/null 2>&1 &&
        ! nft list table inet ocvm_net >/dev/null 2>&1
    result "net: bridge, TAP and table removed" $?
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
