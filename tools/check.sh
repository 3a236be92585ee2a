#!/bin/sh
# check.sh: install what the tests need, build, run the whole test suite (make check), check that
# the CUDA backend still compiles when nvcc is here (no GPU is needed for that), and end with one
# line "N passed, N failed" counting every check of every test, the CUDA build as one.
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
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    # a copy of the distributed sources (the tree itself is configured for the CPU build)
    rm -rf build-cuda
    if (make distdir distdir=build-cuda && cd build-cuda &&
        ./configure -q --with-cuda && make -j"$(nproc)") >build-cuda.log 2>&1; then
        echo "PASS: the CUDA build (configure --with-cuda) compiles"; pass=$((pass + 1))
    else
        tail -20 build-cuda.log; echo "FAIL: the CUDA build (configure --with-cuda)"; fail=$((fail + 1))
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
