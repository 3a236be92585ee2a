# test_ckpt_reshard.sh: any layout continues any layout's checkpoint. A chain of runs, each
# continuing the previous one's checkpoint for 2 steps under another layout (dp2 -> tp2 -> pp2 ->
# cp2 -> tp2xcp2 -> tp2xpp2 -> dp4, and one rank -> pp4), gives the losses and gradient norms of
# one uninterrupted run, and ends with its parameters and AdamW moments; the same continuations
# from checkpoints resharded by `megackpt reshard` give exactly the direct continuations' numbers.
#
# Tolerance: the step after a resume runs under another layout, so its sums come in another order
# (tensor-parallel partial sums, data-parallel reduce-scatter, chunk-parallel state hand-over,
# the pipeline's split of the tied embedding's gradient): the runs agree to fp32 rounding, not
# bit for bit. Measured over this chain: losses within 4e-8 relative, gradient norms 2e-6, at
# step 14 parameters within 8e-6 and moments 1.6e-5 (norm-wise, worst tensor; an uninterrupted
# dp4 run differs from one rank by 5e-6 and 1.1e-5). Tolerances: 1e-6 (loss), 2e-5 (grad norm),
# 1e-4 (tensors). Two steps per layout check the moments: the second step's loss depends on the
# update that used them; resuming with zero moments moves it by 7e-3 relative, and the moments
# themselves by O(1).
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

# layout NAME: ranks in $np, its --set options in $lay, its tp and pp in $tp, $pp
layout() {
    np=2 tp=1 pp=1 cp=1
    case $1 in
    one) np=1 ;;
    tp2) tp=2 ;;
    pp2) pp=2 ;;
    cp2) cp=2 ;;
    tp2cp2) np=4 tp=2 cp=2 ;;
    tp2pp2) np=4 tp=2 pp=2 ;;
    dp4) np=4 ;;
    pp4) np=4 pp=4 ;;
    esac
    lay="--set parallel.tp=$tp --set parallel.pp=$pp --set parallel.cp=$cp"
}
# train NAME LAYOUT LAST_STEP [megatrain options]: log NAME.jsonl, checkpoints in NAME/
train() {
    name=$1 last=$3
    layout "$2"
    shift 3
    # shellcheck disable=SC2086 # $lay is a list of words
    run $MPIRUN -np $np "$mt" run.yaml $lay --set train.steps="$last" --set log.metrics="$name.jsonl" \
        --set checkpoint.dir="$name" "$@"
    cp "$tap_tmp/out" "$name.out"
}

train ref one 16 --set checkpoint.every=2
tap_ok $rc "reference: 16 steps uninterrupted on one rank, a checkpoint every 2 steps"

# the chain: LAYOUT:FIRST-STEP, each continuing the previous one's last checkpoint
chain="dp2:1 tp2:3 pp2:5 cp2:7 tp2cp2:9 tp2pp2:11 dp4:13"
k=0
for link in $chain; do
    to=${link%:*} first=${link#*:}
    last=$((first + 1))
    if [ "$to" = dp2 ]; then
        train dp2 dp2 2
    else
        # alternately by checkpoint folder and by run folder (its newest checkpoint)
        from=$prev
        [ $((k % 2)) -eq 1 ] && from=$prev/step-$(printf %08d $((first - 1)))
        train "$to" "$to" "$last" --set checkpoint.resume="$from"
        grep -q "resumed from $prev/step-0*$((first - 1)) (step $((first - 1)), written under" "$to.out"
        tap_ok $? "$to continues $prev's step $((first - 1)) (checkpoint.resume=$from)"
    fi
    compare ref.jsonl "$to.jsonl" 1e-6 2e-5
    tap_ok $(($? + rc)) "$to, steps $first-$last: losses and grad norms of the reference ($worst)"
    k=$((k + 1))
    prev=$to
done
train pp4 pp4 16 --set checkpoint.resume=ref/step-00000014
grep -q "resumed from ref/step-00000014 (step 14, written under tp 1 pp 1 dp 1 cp 1)" pp4.out
tap_ok $? "pp4 continues the one-rank run's step 14"
compare ref.jsonl pp4.jsonl 1e-6 2e-5
tap_ok $(($? + rc)) "pp4, steps 15-16: losses and grad norms of the reference ($worst)"

# the same continuations from checkpoints resharded for the new layout: bit-exact
prev=dp2
for link in $chain pp4:15; do
    to=${link%:*} first=${link#*:}
    [ "$to" = dp2 ] && continue
    [ "$to" = pp4 ] && prev=ref
    layout "$to"
    src=$prev/step-$(printf %08d $((first - 1)))
    run "$mc" reshard "$src" "rs-$to" --tp $tp --pp $pp
    ok=$rc
    run "$mc" verify "rs-$to"
    ok=$((ok + rc))
    train "rs-$to" "$to" $((first + 1)) --set checkpoint.resume="rs-$to" --set checkpoint.dir=rs-$to-run
    steps "$to.jsonl" >direct.txt
    steps "rs-$to.jsonl" >resharded.txt
    [ -s direct.txt ] && cmp -s direct.txt resharded.txt
    tap_ok $(($? + ok + rc)) "$src resharded for $to (tp $tp pp $pp) continues exactly as the direct resume"
    prev=$to
done

# the chain's state at step 14 (after six layout changes) against the uninterrupted run's
for c in ref/step-00000014 dp4/step-00000014; do
    run "$mc" reshard "$c" "flat-${c%%/*}"
done
err=$($PYTHON_REF - <<'P'
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "ref"))
from ckpt_h5 import GROUPS, read_checkpoint
worst = {}
for g in GROUPS:
    a, b = (read_checkpoint(f"flat-{n}", g) for n in ("ref", "dp4"))
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        worst[g] = max(worst.get(g, 0), np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30))
print(" ".join(f"{g} {e:.1e}" for g, e in worst.items()) if len(worst) == 3 else "missing groups")
P
)
tap_ok $(awk -v e="$err" 'BEGIN { n = split(e, w, " "); bad = n != 6; for (i = 2; i <= n; i += 2) if (w[i] + 0 > 1e-4) bad = 1; exit bad }'; echo $?) \
    "step 14 after the chain: parameters and moments of the uninterrupted run ($err)"
tap_done
