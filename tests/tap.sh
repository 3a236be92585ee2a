# tap.sh: TAP helpers for shell tests (sourced). Each check prints "ok N - what" or
# "not ok N - what"; tap_done prints the plan and sets the exit status.
tap_n=0
tap_failed=0
tap_tmp=$(mktemp -d "${TMPDIR:-/tmp}/megatrain-test.XXXXXX")
trap 'rm -rf "$tap_tmp"' EXIT
# Under --enable-sanitizers (Makefile.am sets ASAN_OPTIONS) every report goes to a file of this
# test as well as failing its program, so tap_done fails the test even on a report from a command
# whose status or stderr it does not look at.
if [ -n "${ASAN_OPTIONS:-}" ]; then
    ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$tap_tmp/sanitizer"
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$tap_tmp/sanitizer"
    export ASAN_OPTIONS UBSAN_OPTIONS
fi

tap_ok() { # tap_ok CONDITION-EXIT-STATUS DESCRIPTION
    tap_n=$((tap_n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $tap_n - $2"; else echo "not ok $tap_n - $2"; tap_failed=$((tap_failed + 1)); fi
}

# run CMD...: runs it, keeping stdout in $tap_tmp/out, stderr in $tap_tmp/err, status in $rc
run() {
    "$@" >"$tap_tmp/out" 2>"$tap_tmp/err"
    rc=$?
}

# expect_fail STATUS PATTERN DESCRIPTION: the last run exited STATUS and stderr matches PATTERN
expect_fail() {
    if [ "$rc" -eq "$1" ] && grep -q -- "$2" "$tap_tmp/err"; then tap_ok 0 "$3"; else
        tap_ok 1 "$3"
        echo "# exit $rc, stderr:"; sed 's/^/#   /' "$tap_tmp/err" | head -5
    fi
}

tap_done() {
    for report in "$tap_tmp"/sanitizer.*; do
        [ -e "$report" ] || continue
        tap_ok 1 "no sanitizer report ($(basename "$report"))"
        sed 's/^/#   /' "$report"
    done
    echo "1..$tap_n"
    [ "$tap_failed" -eq 0 ]
}
