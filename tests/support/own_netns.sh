# Sourced first by a test that must not touch the host's network: as root (where unshare works),
# it re-executes the calling script in a network namespace of its own, with loopback up.
if [ "$(id -u)" = 0 ] && [ -z "${OCVM_TEST_NETNS:-}" ] && command -v unshare >/dev/null; then
    export OCVM_TEST_NETNS=1
    exec unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
