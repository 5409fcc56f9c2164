# Sourced by the test scripts: one "ok" or "FAIL" line per check, and the counts.
passed=0 failed=0

# result NAME STATUS [DETAILS]: a check that passed if STATUS is 0; DETAILS go indented under a
# failure
result() {
    if [ "$2" = 0 ]; then
        echo "ok   $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        if [ -n "${3:-}" ]; then printf '%s\n' "$3" | sed 's/^/    /'; fi
        failed=$((failed + 1))
    fi
}

# check NAME COMMAND...: passes if COMMAND succeeds
check() {
    local name=$1
    shift
    "$@"
    result "$name" $?
}
