#!/bin/sh
# check.sh: install what the tests need, build, run the whole test suite (make check), and end
# with one line "N passed, N failed" counting every check of every test.
set -u
cd "$(dirname "$0")/.."
tools/install-deps.sh && tools/build.sh || { echo "0 passed, 1 failed"; exit 1; }
make -j"$(nproc)" check >make-check.log 2>&1
status=$?
grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP):' make-check.log | grep -v '^PASS' || true
# the TAP driver counts each check; failures' details are in tests/*.log
count() { sed -n "s/^# $1: *\([0-9]*\)$/\1/p" test-suite.log 2>/dev/null | head -1; }
pass=$(count PASS); fail=$(count FAIL); err=$(count ERROR); xpass=$(count XPASS)
pass=${pass:-0}; fail=$(( ${fail:-0} + ${err:-0} + ${xpass:-0} ))
[ "$status" -ne 0 ] && [ "$fail" -eq 0 ] && { tail -20 make-check.log; fail=1; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
