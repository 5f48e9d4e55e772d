# Sourced by the shell test runners (tests/install/run, tests/cmake/run, tests/dist/run): a
# counting check helper and the version numbers. The sourcing script sets $work (a scratch
# directory) and $root (the repository) first.
#
#   check NAME COMMAND...   runs COMMAND, its output kept in $work/last.log; prints "ok    NAME"
#                           or "FAIL  NAME" and the log's last lines
#   contains FILE TEXT      succeeds when FILE contains TEXT, else prints FILE
#   finish RUNNER           prints "RUNNER: N passed, N failed"; returns non-zero on a failure
passed=0
failed=0
version="$("$root/scripts/version")"
abi_series="$("$root/scripts/version" --abi)"
soname="librigllama.so.$abi_series"

check() {
    local name="$1"; shift
    if "$@" >"$work/last.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name; last lines:"
        tail -n 20 "$work/last.log" | sed 's/^/      /'
    fi
}

contains() {
    grep -qF -- "$2" "$1" || { echo "'$2' not found in $1:"; cat "$1"; return 1; }
}

finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
