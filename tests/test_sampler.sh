# test_sampler.sh: the sampler gives the same global batches under 1, 2 and 4 ranks. Builds a
# dataset of random uint16 tokens in 15 shards, runs tests/test_sampler (which checks every
# (dp, cp) layout against a serial read) under each rank count, and compares the batch hashes
# the runs print; the same for a blend of it and a second dataset, 3:1 (and on one rank the
# blend's schedule and samples); then a window longer than the dataset must stop with exit 2,
# naming it.
. "$top_srcdir/tests/tap.sh"
megadata="$top_builddir/megadata"
prog="$top_builddir/tests/test_sampler"
dir="$tap_tmp/ds"

head -c 200000 /dev/urandom >"$tap_tmp/tokens.u16"
run "$megadata" build "$dir" "$tap_tmp/tokens.u16" --kind uint16 --vocab 65536 --val-fraction 0 \
  --shard-tokens 7000
tap_ok $rc "megadata builds 100000 random tokens into 15 shards"

# ranks LABEL ARGS...: test_sampler ARGS under 1, 2 and 4 ranks, its checks renumbered into this
# script's plan; then whether the three runs read the same global batches
ranks() {
    label=$1
    shift
    hashes=""
    for np in 1 2 4; do
        run $MPIRUN -np $np "$prog" "$@"
        while read -r line; do
            case "$line" in
                "ok "*) tap_ok 0 "${label}np $np: ${line#ok [0-9]* - }" ;;
                "not ok "*) tap_ok 1 "${label}np $np: ${line#not ok [0-9]* - }" ;;
            esac
        done <"$tap_tmp/out"
        tap_ok $rc "${label}np $np: test_sampler exits 0"
        [ $rc -eq 0 ] || sed 's/^/#   /' "$tap_tmp/err" | head -10
        hashes="$hashes $(sed -n 's/^# batch-hash //p' "$tap_tmp/out")"
    done
    # shellcheck disable=SC2086 # the three hashes
    set -- $hashes
    [ $# -eq 3 ] && [ "$1" = "$2" ] && [ "$2" = "$3" ]
    tap_ok $? "${label}the global batches are identical under 1, 2 and 4 ranks ($1)"
}
ranks "" "$dir"

# a blend of it and another dataset, 3:1
head -c 60000 /dev/urandom >"$tap_tmp/other.u16"
run "$megadata" build "$tap_tmp/other" "$tap_tmp/other.u16" --kind uint16 --vocab 65536 --val-fraction 0 \
  --shard-tokens 7000
ranks "blend, " "$dir" --blend "$tap_tmp/other"

run $MPIRUN -np 1 "$prog" "$dir" --short
expect_fail 2 "ds (split train): 100000 tokens, fewer than one window of seq_len + 1 = 100001" \
  "a dataset shorter than one window stops with exit 2, naming it"
tap_done
