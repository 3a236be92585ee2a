# test_plan.sh: the memory plan. `megatrain plan` gives, for one rank and for dp2, tp2, pp2, cp2,
# tp2 x cp2, dp2 x pp2 x cp2 (8 ranks), bf16 gradient sums and each train.recompute, exactly the
# bytes each rank of the run then allocates (the CPU backend counts every allocation:
# MEGATRAIN_TEST_PEAK); recompute elementwise keeps fewer activations than none, blocks fewer
# still; a run whose plan does not fit stops before allocating, exit 2, saying what would fit
# (recompute elementwise first where it is enough); every run file in jobs/ fits an 80 GB GPU
# (80e9 bytes), and the paper's 7B at 256 GPUs needs at most 72 GB.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/plan_run.sh"
mt="$top_builddir/megatrain"
cd "$tap_tmp" || exit 1
export OMP_NUM_THREADS=1

run "$mt" plan --help
tap_ok $([ $rc -eq 0 ] && grep -q '^usage: megatrain plan RUN.yaml --world N' out && echo 0 || echo 1) \
    "plan --help prints the usage, exit 0"
run "$mt" --help
tap_ok $(grep -q 'megatrain plan RUN.yaml --world N' out && echo 0 || echo 1) "megatrain --help lists plan"

cat >run.yaml <<'Y'
model: {vocab_size: 64, n_layers: 3, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}
data: {seq_len: 32, batch_size: 8}
parallel: {micro_batches: 2, grad_bucket_mb: 0.002}
train: {steps: 2, seed: 7}
log: {every: 1}
Y
run "$mt" plan run.yaml
expect_fail 2 "plan needs --world N" "plan without --world: exit 2"
run "$mt" plan run.yaml --world 3 --set parallel.tp=2
expect_fail 2 "does not divide the 3 ranks" "plan of a layout that does not divide the world: exit 2"

# planned == allocated: the plan's total for each rank's (stage, cp rank), against what the rank
# says it held at most
exact() { # exact RANKS DESCRIPTION [KEY=VALUE...]
    n=$1 what=$2
    shift 2
    plan_run "$n" "$@"
    # plan rows: "stage S cp A-B ... total"; run lines: "rank R stage S cp C: peak memory N bytes"
    diffs=$(awk 'FNR == NR {
                     if ($1 != "every" && $1 != "stage" && $1 != "cp") next
                     s = 0; a = 0; b = 0
                     for (i = 1; i < NF; i++) {
                         if ($i == "stage") s = $(i + 1)
                         if ($i == "cp") { split($(i + 1), r, "-"); a = r[1]; b = (2 in r) ? r[2] : r[1] }
                     }
                     for (c = a; c <= b; c++) planned[s " " c] = $NF
                     next
                 }
                 /peak memory/ { n++; key = $5 " " substr($7, 1, length($7) - 1)
                                 if (!(key in planned)) print "rank " $3 ": no plan row"
                                 else if (planned[key] != $10) print "rank " $3 ": planned " planned[key] ", allocated " $10 }
                 END { if (n != '"$n"') print n + 0 " ranks reported" }' plan.out run.err)
    if [ $rc -eq 0 ] && [ -z "$diffs" ]; then
        tap_ok 0 "$what: planned bytes = allocated bytes on each of $n ranks ($(awk '/peak memory/ { print $10 }' run.err | sort -u | tr '\n' ' '))"
    else
        tap_ok 1 "$what: planned bytes = allocated bytes (exit $rc)"
        echo "$diffs" | sed 's/^/#   /'
        sed 's/^/#   /' plan.out run.err | tail -12
    fi
}
exact 1 "one rank"
exact 2 "dp2"
exact 2 "tp2" parallel.tp=2
exact 2 "pp2" parallel.pp=2
exact 2 "cp2" parallel.cp=2
exact 4 "tp2 x cp2" parallel.tp=2 parallel.cp=2
exact 8 "dp2 x pp2 x cp2" parallel.pp=2 parallel.cp=2
exact 2 "dp2, bf16 gradient sums" parallel.grad_reduce_dtype=bf16
exact 4 "pp2 x cp2, recompute" parallel.pp=2 parallel.cp=2 train.recompute=true
exact 1 "one rank, recompute elementwise" train.recompute=elementwise
exact 4 "tp2 x cp2, recompute elementwise" parallel.tp=2 parallel.cp=2 train.recompute=elementwise

# the activation columns (acts-rc, acts-ew, acts+rc: recompute none, elementwise, blocks) and the
# total of each mode; "every rank" takes two fields, so a column's value is one field right
plan_acts() { # plan_acts [KEY=VALUE...]: "none elementwise blocks total" bytes of one rank
    sets=
    for kv in "$@"; do sets="$sets --set $kv"; done
    "$mt" plan run.yaml --world 1 --bytes $sets |
        awk '/^position/ { for (i = 1; i <= NF; i++) col[$i] = i + 1 }
             /^every rank/ { print $col["acts-rc"], $col["acts-ew"], $col["acts+rc"], $NF }'
}
set -- $(plan_acts)
none=$1 ew=$2 blocks=$3 total=$4
set -- $(plan_acts train.recompute=elementwise)
tap_ok $([ -n "$total" ] && [ "$none" -gt "$ew" ] && [ "$ew" -gt "$blocks" ] && [ "$4" -eq $((total - none + ew)) ] &&
         echo 0 || echo 1) \
    "the plan's activations: none $none > elementwise $ew > blocks $blocks bytes; the total follows the mode"
ew_total=$4

# where recompute elementwise is enough it is offered first, then blocks; where it is not, only blocks
gib() { awk -v b="$1" 'BEGIN { printf "%.9f", b / 2^30 }'; }
run "$mt" plan run.yaml --world 1 --gpu-mem "$(gib $(((ew_total + total) / 2)))"
expect_fail 2 "to fit: train.recompute: elementwise (.* GiB); train.recompute: blocks (.* GiB); parallel" \
    "a plan over the limit that elementwise recomputation brings under suggests it first"
run "$mt" plan run.yaml --world 1 --gpu-mem "$(gib $((ew_total - 4096)))"
tap_ok $([ $rc -eq 2 ] && grep -q 'to fit: train.recompute: blocks (' err && ! grep -q elementwise err &&
         echo 0 || echo 1) \
    "... and not where it is not enough"

# a run that does not fit stops before allocating: once, exit 2, naming the layout and what fits
run $MPIRUN -np 2 "$mt" run.yaml --set train.memory_gib=0.001 --set parallel.cp=2
expect_fail 2 "memory plan of 2 ranks: dp 1 x tp 1 x pp 1 x cp 2 needs .* GiB per rank (cp 0-1: parameters .*) but train.memory_gib is 0.001 GiB" \
    "a run over train.memory_gib stops, exit 2, naming the layout"
run "$top_builddir/megabench" run.yaml --set train.memory_gib=0.001
expect_fail 2 "memory plan of 1 rank: dp 1 x tp 1 x pp 1 x cp 1 needs .* but train.memory_gib is 0.001 GiB" \
    "megabench checks the plan too: exit 2 before allocating"
tap_ok $(grep -q 'train.recompute: blocks (.* GiB); parallel.micro_batches: 4, 2 rows per micro-batch' err &&
         grep -q 'more parallel.tp or parallel.pp' err && [ "$(grep -c error err)" -eq 1 ] &&
         ! grep -q '^step' out && echo 0 || echo 1) "... saying what would fit, once, before any step"
run "$mt" plan run.yaml --world 2 --gpu-mem 0.0001
expect_fail 2 "but --gpu-mem is" "plan --gpu-mem below the plan: exit 2"
tap_ok $(grep -q '^every rank ' out && echo 0 || echo 1) "... after printing the plan"

# every run file in jobs/ fits an 80 GB GPU; ranks from megasweep's header ("for N ranks"), else
# one; a vocabulary taken from the dataset (the demo's, not built here) is the byte tokenizer's
gb80=$(awk 'BEGIN { print 80e9 / 2^30 }')
for f in "$top_srcdir"/jobs/*.yaml "$top_srcdir"/jobs/paper/*.yaml; do
    n=$(sed -n 's/^# .* for \([0-9]*\) ranks .*/\1/p' "$f" | head -1)
    vocab=$(grep -q '^  vocab_size: [1-9]' "$f" || echo "--set model.vocab_size=320")
    run "$mt" plan "$f" --world "${n:-1}" --gpu-mem "$gb80" $vocab
    tap_ok $([ $rc -eq 0 ] && echo 0 || echo 1) "jobs/${f#"$top_srcdir"/jobs/} on ${n:-1} ranks fits 80 GB per rank ($(awk '/^(every|cp|stage)/ { if ($NF > m) m = $NF } END { print m }' out) GiB)"
    [ $rc -eq 0 ] || sed 's/^/#   /' err
done

# the target: the paper's 7B, dp 128 x cp 2 at 32K context with recompute, at most 72 GB per rank
run "$mt" plan "$top_srcdir/jobs/paper/paper7B-256-cp2.yaml" --world 256 --bytes
peak=$(awk '/^(every|cp|stage)/ { if ($NF > m) m = $NF } END { printf "%.0f", m }' out)
tap_ok $([ $rc -eq 0 ] && grep -q 'dp 128 x tp 1 x pp 1 x cp 2, cuda (bf16), train.recompute blocks' out &&
         awk -v p="$peak" 'BEGIN { exit !(p > 0 && p <= 72e9) }' && echo 0 || echo 1) \
    "paper7B on 256 GPUs (dp 128 x cp 2, recompute): $peak bytes per rank, at most 72 GB"
tap_done
