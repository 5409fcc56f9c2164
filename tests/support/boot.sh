# Sourced by the boot tests (tests/boot/*.sh): what each does before its own checks.
#
#   . "$(dirname "$0")/../support/boot.sh"
#   boot_in_netns [--mount] "$@"             # optional: a network (and mount) namespace
#   boot_setup "${1:-}" NAME [TOOL...]       # ocvm, the demo guest, $tmp and the VM's dirs
#   boot_cleanup_hook() { ...; }             # optional: run at exit, once nothing of $tmp runs
#   ...checks with ok/bad, wait_for, alive...
#   boot_finish                              # the summary line and the exit status

# boot_in_netns [--mount] "$@": runs the calling script again (as root) in a network namespace
# of its own with its loopback up, so that its ports cannot clash with another test's or the
# host's; with --mount in a mount namespace of its own as well (for the tmpfs it mounts).
# Exits 77 without root or unshare.
boot_in_netns() {
    local ns=-n
    if [ "${1:-}" = --mount ]; then
        ns="-n -m"
        shift
    fi
    [ "$(id -u)" = 0 ] || { echo "skip: needs root (namespaces of its own)"; exit 77; }
    [ -z "${OCVM_TEST_NETNS:-}" ] || return 0
    command -v unshare >/dev/null || { echo "skip: no unshare"; exit 77; }
    export OCVM_TEST_NETNS=1
    # shellcheck disable=SC2086
    exec unshare $ns bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
}

# boot_setup BUILD_DIR NAME [TOOL...]: $ocvm and the demo guest $guest of BUILD_DIR (exit 77
# without QEMU, the guest or a TOOL); $tmp, with the VM's own runtime, state and log
# directories (OCVM_RUNTIME_DIR, OCVM_STATE_DIR, OCVM_LOG_DIR); $name, $cfg, $rundir; the check
# counters; and, on exit, boot_cleanup.
boot_setup() {
    [ -n "${1:-}" ] || { echo "usage: $(basename "$0") BUILD_DIR" >&2; exit 2; }
    build=$(realpath "$1")
    name=$2
    shift 2
    ocvm="$build/ocvm"
    guest="$build/guest"
    local tool
    for tool in qemu-system-x86_64 "$@"; do
        command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
    done
    [ -f "$guest/vmlinuz" ] || { echo "skip: no demo guest in $guest (scripts/build-guest makes it)"; exit 77; }
    tmp=$(mktemp -d "/tmp/ocvm-$name-XXXXXX")
    export OCVM_RUNTIME_DIR="$tmp/run" OCVM_STATE_DIR="$tmp/state" OCVM_LOG_DIR="$tmp/log"
    cfg="$tmp/$name.json"
    rundir="$OCVM_RUNTIME_DIR/$name"
    passed=0 failed=0
    trap boot_cleanup EXIT
}

ok() { echo "ok   $1 [${SECONDS}s]"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }

# What still runs from $tmp: QEMU, a supervisor, virtiofsd (their command lines name $tmp).
leftovers() { pgrep -f -- "$tmp/" | grep -vx "$$" || true; }

# On exit: whatever still runs from $tmp, killed by pid (woken first, in case a test stopped
# it), then the script's boot_cleanup_hook (an `ocvm down` to undo a network, an umount), then
# $tmp.
boot_cleanup() {
    local p
    for p in $(leftovers); do
        kill -CONT "$p" 2>/dev/null
        kill -9 "$p" 2>/dev/null
    done
    if declare -F boot_cleanup_hook >/dev/null; then boot_cleanup_hook; fi
    rm -rf "$tmp"
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds (every 0.2 s), at most SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do "$@" && return 0; sleep 0.2; done
    return 1
}

# alive PID: the process exists and is not a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

boot_finish() {
    echo "$(basename "$0" .sh): $passed passed, $failed failed"
    [ "$failed" = 0 ]
}
