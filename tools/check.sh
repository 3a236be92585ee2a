#!/bin/sh
# check.sh: install what the tests need, build, run the whole test suite (make check), check that
# the CUDA backend still compiles when nvcc is here (no GPU is needed for that), and end with one
# line "N passed, N failed" counting every check of every test, the CUDA build as one (and, on a
# machine without a GPU, the CUDA megatrain's refusal to start as another). On the way
# it says what it is doing and, as each test program finishes, its checks passed and failed
# (make check's output goes to make-check.log, each test's own to its .log beside it).
set -u
cd "$(dirname "$0")/.."
say() { echo "check: $*"; }
say "installing the packages (tools/install-deps.sh)"
tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
say "configuring and building (tools/build.sh)"
tools/build.sh || { echo "0 passed, 1 failed"; exit 1; }
ntests=$(make -s --no-print-directory --eval 'check-sh-tests: ; @echo $(TESTS)' check-sh-tests | wc -w)
say "running the test suite: $ntests test programs (make check; its output goes to make-check.log)"
# make's output to make-check.log; a line per test program once its results (.trs) are written;
# make's exit status comes last, as the awk program's own
{ make -j"$(nproc)" check 2>&1; echo "check.sh: make exit status $?"; } | awk -v ntests="$ntests" '
    # report TEST once its results (BASE.trs) are written: how many of its checks passed and failed
    function report(test,   base, line, got, n, bad) {
        base = test
        sub(/\.[^.\/]*$/, "", base)
        while ((got = getline line <(base ".trs")) > 0) {
            n += line ~ /^:test-result: /
            bad += line ~ /^:test-result: (FAIL|ERROR|XPASS)/
        }
        close(base ".trs")
        if (got < 0 || n == 0)
            return
        printf "check: [%d/%d] %s: %d passed%s\n", ++done, ntests, test, n - bad,
            bad ? ", " bad " FAILED (see " base ".log)" : ""
        fflush()
        delete pending[test]
    }
    /^check\.sh: make exit status / { status = $NF; next }
    { print >"make-check.log" }
    /^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP): / && !($2 in seen) { seen[$2] = pending[$2] = 1 }
    { for (t in pending) report(t) }
    END { for (t in pending) report(t); exit status }'
status=$?
grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP):' make-check.log | grep -v '^PASS' || true
# the TAP driver counts each check; failures' details are in tests/*.log
count() { sed -n "s/^# $1: *\([0-9]*\)$/\1/p" test-suite.log 2>/dev/null | head -1; }
pass=$(count PASS); fail=$(count FAIL); err=$(count ERROR); xpass=$(count XPASS)
pass=${pass:-0}; fail=$(( ${fail:-0} + ${err:-0} + ${xpass:-0} ))
[ "$status" -ne 0 ] && [ "$fail" -eq 0 ] && { tail -20 make-check.log; fail=1; }
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    # a copy of the distributed sources (the tree itself is configured for the CPU build)
    say "building the CUDA backend in build-cuda/ (configure --with-cuda; output in build-cuda.log)"
    rm -rf build-cuda
    if (make distdir distdir=build-cuda && cd build-cuda &&
        ./configure -q --with-cuda && make -j"$(nproc)") >build-cuda.log 2>&1; then
        echo "PASS: the CUDA build (configure --with-cuda) compiles"; pass=$((pass + 1))
        if ! nvidia-smi -L >/dev/null 2>&1; then # no GPU here: the CUDA build says so
            printf '%s\n' 'model: {vocab_size: 64, n_layers: 1, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}' \
                'data: {seq_len: 16, batch_size: 2}' 'train: {steps: 1, device: cuda}' >build-cuda/nogpu.yaml
            (cd build-cuda && ./megatrain nogpu.yaml) >build-cuda/nogpu.out 2>&1
            rc=$?
            if [ $rc -eq 2 ] && grep -q 'train.device: cuda: no GPU is visible to this process' build-cuda/nogpu.out; then
                echo "PASS: the CUDA build without a GPU stops at once, saying so (exit 2)"; pass=$((pass + 1))
            else
                cat build-cuda/nogpu.out; echo "FAIL: the CUDA build without a GPU (exit $rc)"; fail=$((fail + 1))
            fi
        fi
    else
        tail -20 build-cuda.log; echo "FAIL: the CUDA build (configure --with-cuda)"; fail=$((fail + 1))
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
