#!/bin/sh
# scaling.sh: the multi-GPU scaling table of doc/perf.md: megabench under mpirun (one rank per GPU)
# for dp, tp and cp at 1, 2 and 4 GPUs, the mega200M and mega1.3B presets, with each layout's
# per-GPU tokens/s and MFU (dp at 2 and 4 GPUs also with parallel.overlap_grad_reduce=false: the
# difference is what starting the gradient sums during backward hides); then the longest 1.3B
# context that trains with cp = 4 and recomputation. Run from the build directory after `make megabench` on a machine with >= 4 GPUs:
#     tests/gpu/scaling.sh OUTDIR [SRCDIR]
# Each run's output goes to OUTDIR/scale-*.log, the summary lines to stdout. Weak scaling: dp keeps
# the per-GPU batch (8 x 4K); tp keeps the global batch; cp splits each 32K (or longer) sequence.
out=${1:?usage: scaling.sh OUTDIR [SRCDIR]}
src=${2:-.}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { # name, ranks, megabench options...
    name=$1 n=$2
    shift 2
    timeout 600 mpirun -np "$n" ./megabench "$src/tests/gpu/bench.yaml" "$@" >"$out/scale-$name.log" 2>&1
    rc=$?
    grep '^megabench: .* L=' "$out/scale-$name.log" | sed "s/^/$name: /" ||
        { echo "$name: failed (exit $rc)"; tail -3 "$out/scale-$name.log"; }
    return $rc
}
for p in mega200M mega1.3B; do
    for n in 1 2 4; do
        run "$p-dp$n" $n --set model.preset=$p --set data.seq_len=4096 --set data.batch_size=$((8 * n))
        [ $n -gt 1 ] && run "$p-dp$n-serial" $n --set model.preset=$p --set data.seq_len=4096 \
            --set data.batch_size=$((8 * n)) --set parallel.overlap_grad_reduce=false
        run "$p-tp$n" $n --set model.preset=$p --set data.seq_len=4096 --set data.batch_size=8 --set parallel.tp=$n
        run "$p-cp$n" $n --set model.preset=$p --set data.seq_len=$((32768 * n)) --set data.batch_size=1 \
            --set parallel.cp=$n
    done
done
for L in ${SCALE_LONG_LENGTHS:-524288 786432 1048576}; do
    run "mega1.3B-cp4-$L" 4 --set model.preset=mega1.3B --set data.seq_len=$L --set data.batch_size=1 \
        --set parallel.cp=4 --set train.recompute=true --steps 1 --warmup 1 || break
done
