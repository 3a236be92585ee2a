# plan_run.sh: for the memory-plan tests (sourced after tap.sh, in a folder holding run.yaml; $mt
# is megatrain). plan_run RANKS [KEY=VALUE...] plans run.yaml on RANKS ranks (plan.out, plan.err:
# `megatrain plan --bytes`) and runs it with each rank reporting its peak memory (run.out,
# run.err: "rank R stage S cp C: peak memory N bytes"); the run's status in $rc.
plan_run() {
    n=$1
    shift
    sets=
    for kv in "$@"; do sets="$sets --set $kv"; done
    "$mt" plan run.yaml --world "$n" --bytes $sets >plan.out 2>plan.err
    MEGATRAIN_TEST_PEAK=1 $MPIRUN -np "$n" "$mt" run.yaml $sets >run.out 2>run.err
    rc=$?
}
