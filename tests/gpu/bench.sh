#!/bin/sh
# bench.sh: the doc/perf.md measurements on one GPU: megabench on the mega200M and mega1.3B presets
# at 4K (one sequence per step, the protocol of the PyTorch comparison, and 8 sequences) and 32K
# (1 sequence) context, the 1.3B at 32K also with elementwise recomputation (what fits an 80 GB
# card), the one-sequence 4K rows again with train.graph (the step as a CUDA graph), then the
# longest 1.3B context that fits with recomputation. Run from the build directory
# after `make megabench`:
#     tests/gpu/bench.sh OUTDIR [SRCDIR]
# Each configuration's full output goes to OUTDIR/bench-*.log; the summary lines to stdout.
# BENCH_LONG=0 skips the long contexts; BENCH_LONG_LENGTHS lists the ones to try, in order.
out=${1:?usage: bench.sh OUTDIR [SRCDIR]}
src=${2:-.}
mkdir -p "$out"
run() { # name, megabench options...
    name=$1
    shift
    timeout 300 ./megabench "$src/tests/gpu/bench.yaml" "$@" >"$out/bench-$name.log" 2>&1
    rc=$?
    grep '^megabench: .* L=' "$out/bench-$name.log" || { echo "$name: failed (exit $rc)"; tail -3 "$out/bench-$name.log"; }
    return $rc
}
run 200M-4K-B1 --set model.preset=mega200M --set data.seq_len=4096 --set data.batch_size=1
run 200M-4K-B1-graph --set model.preset=mega200M --set data.seq_len=4096 --set data.batch_size=1 --set train.graph=true
run 200M-4K --set model.preset=mega200M --set data.seq_len=4096 --set data.batch_size=8
run 200M-32K --set model.preset=mega200M --set data.seq_len=32768 --set data.batch_size=1
run 1.3B-4K-B1 --set model.preset=mega1.3B --set data.seq_len=4096 --set data.batch_size=1
run 1.3B-4K-B1-graph --set model.preset=mega1.3B --set data.seq_len=4096 --set data.batch_size=1 --set train.graph=true
run 1.3B-4K --set model.preset=mega1.3B --set data.seq_len=4096 --set data.batch_size=8
run 1.3B-32K --set model.preset=mega1.3B --set data.seq_len=32768 --set data.batch_size=1
run 1.3B-32K-elementwise --set model.preset=mega1.3B --set data.seq_len=32768 --set data.batch_size=1 \
    --set train.recompute=elementwise
[ "${BENCH_LONG:-1}" = 1 ] || exit 0
for L in ${BENCH_LONG_LENGTHS:-131072 262144 327680}; do
    run "1.3B-$L-recompute" --set model.preset=mega1.3B --set data.seq_len=$L --set data.batch_size=1 \
        --set train.recompute=true --steps 1 --warmup 1 || break
done
