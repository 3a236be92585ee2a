# test_ckpt_resume.sh: resuming is exact, and a signal makes a checkpoint.
#  - a run resumed from its own intermediate checkpoint under the same layout (dp2; pp2 with 2
#    micro-batches) continues bit for bit: the same loss, gradient norm and validation loss
#    strings in the metrics log, and the same final weights, moments, step and data cursor (on a
#    real dataset: the sampler's cursor comes back; the default cosine schedule: the step counter)
#  - a restart of a run begun from checkpoint.resume=PATH continues the run's own newest checkpoint
#  - without checkpoint.dir a signal stops the run with exit 1 (nothing saved);
#  - SIGUSR1 to mpirun (Slurm's warning) and SIGTERM to a lone rank: exit 0 after a checkpoint of
#    the step where the run stopped; a restart continues from it exactly as an uninterrupted run
#  - keep_last and keep_every choose which checkpoints stay
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

run "$top_builddir/megadata" build data "$top_srcdir/tests/data/text" --val-fraction 0.3
tap_ok $rc "a small text dataset with a validation split"

# same_state A B: two checkpoints hold bit-identical tensors, step and cursor (prints what differs)
same_state() {
    $PYTHON_REF - "$1" "$2" <<'P'
import os, sys
import h5py, numpy as np
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "ref"))
from ckpt_h5 import GROUPS, read_checkpoint
a, b = sys.argv[1:]
diff = []
for k in ("step", "cursor", "tp", "pp"):
    if h5py.File(f"{a}/meta.h5", "r").attrs[k] != h5py.File(f"{b}/meta.h5", "r").attrs[k]:
        diff.append(k)
n = 0
for g in GROUPS:
    ta, tb = read_checkpoint(a, g), read_checkpoint(b, g)
    for t in ta:
        n += 1
        if t not in tb or not np.array_equal(ta[t], tb[t]):
            diff.append(f"{g}/{t}")
print(f"{n} tensors" if n and not diff else "differ: " + " ".join(diff[:5] or ["no tensors"]))
sys.exit(1 if diff or not n else 0)
P
}

# same run, uninterrupted and resumed from its step-3 checkpoint, under two layouts
for lay in "dp2" "pp2:--set parallel.pp=2 --set parallel.micro_batches=2"; do
    name=${lay%%:*} opts=
    case $lay in *:*) opts=${lay#*:} ;; esac
    # shellcheck disable=SC2086 # $opts is a list of words
    full_and_resumed $name --set data.path=data --set model.vocab_size=0 --set schedule.decay=cosine \
        --set schedule.warmup_steps=2 --set eval.every=2 --set eval.batches=1 $opts
    [ "$(wc -l <resumed.txt)" -eq 3 ] && cmp -s full.txt resumed.txt && [ -s full-eval.txt ] &&
        cmp -s full-eval.txt resumed-eval.txt
    tap_ok $? "$name: steps 4-6 give the same loss, grad norm and val loss strings"
    sed 's/^/# /' resumed.txt
    msg=$(same_state $name-full/step-00000006 $name-resumed/step-00000006)
    tap_ok $? "$name: the final checkpoints are bit-identical ($msg)"
done

# the same command again, one step further: it continues its own step-6 checkpoint, not the path
run $MPIRUN -np 2 "$mt" run.yaml --set data.path=data --set model.vocab_size=0 --set train.steps=7 \
    --set checkpoint.dir=dp2-resumed --set checkpoint.resume=dp2-full/step-00000003 --set log.metrics=
grep -q "resumed from dp2-resumed/step-00000006 (step 6," "$tap_tmp/out" && [ -d dp2-resumed/step-00000007 ]
tap_ok $(($? + rc)) "restarted, a run begun from another's checkpoint continues its own newest"

# signal_after STEP SIGNAL NAME CMD...: run CMD in the background (stdout NAME.out, stderr
# NAME.err), send SIGNAL once it printed step STEP's progress line; the exit status lands in $rc
# (a run of 3000 steps takes seconds: a lost signal fails the test instead of hanging it)
signal_after() {
    step=$1 sig=$2 name=$3
    shift 3
    "$@" >"$name.out" 2>"$name.err" &
    pid=$!
    for _ in $(seq 600); do
        grep -q "^step  *$step/" "$name.out" && break
        sleep 0.05
    done
    kill -"$sig" $pid
    wait $pid
    rc=$?
}

# SIGUSR1 to mpirun after the first progress lines: every rank stops at the same step
signal_after 3 USR1 sig $MPIRUN -np 2 "$mt" run.yaml --set train.steps=3000 --set log.every=1 \
    --set log.metrics=sig.jsonl --set checkpoint.dir=sig
stop=$(sed -n 's/^signal 10: stopping after step \([0-9]*\) and its checkpoint$/\1/p' sig.out)
tap_ok $([ $rc -eq 0 ] && [ -n "$stop" ] && echo 0 || echo 1) "SIGUSR1 to mpirun: exit $rc, stopped after step ${stop:-?}"
sed 's/^/# /' sig.err
stop=${stop:-0}
last=$(steps sig.jsonl | tail -1 | cut -d' ' -f1)
[ "$last" = "$stop" ] && [ "$(ls sig)" = "step-$(printf %08d "$stop")" ]
tap_ok $? "the checkpoint is of that step (the log's last step: ${last:-none}; sig/: $(ls sig | tr '\n' ' '))"
end=$((stop + 3))
run $MPIRUN -np 2 "$mt" run.yaml --set train.steps=$end --set log.metrics=sig.jsonl --set checkpoint.dir=sig
grep -q "resumed from sig/step-0*$stop (step $stop," "$tap_tmp/out"
tap_ok $(($? + rc)) "a restart resumes from it and runs to step $end"
run $MPIRUN -np 2 "$mt" run.yaml --set train.steps=$end --set log.metrics=straight.jsonl --set checkpoint.dir=straight
steps sig.jsonl >sig.txt
steps straight.jsonl >straight.txt
[ "$(wc -l <sig.txt)" -eq "$end" ] && cmp -s sig.txt straight.txt
tap_ok $? "steps 1-$end across the stop are those of an uninterrupted run, bit for bit"

# SIGTERM to a lone megatrain (the end of a Slurm job reaching the rank itself)
signal_after 2 TERM term "$mt" run.yaml --set train.steps=3000 --set log.every=1 --set log.metrics=term.jsonl \
    --set checkpoint.dir=term
stop=$(sed -n 's/^signal 15: stopping after step \([0-9]*\) and its checkpoint$/\1/p' term.out)
[ $rc -eq 0 ] && [ -n "$stop" ] && [ -d term/step-$(printf %08d "$stop") ]
tap_ok $? "SIGTERM: exit $rc, checkpoint of step ${stop:-?}"

# a signal with no checkpoint.dir: stop after the step, nothing saved, exit 1 (not a finished run)
signal_after 2 TERM nodir "$mt" run.yaml --set train.steps=3000 --set log.every=1 --set log.metrics=
grep -q '^signal 15: stopping after step [0-9]* (no checkpoint.dir: nothing saved)$' nodir.out
tap_ok $(($? + (rc != 1))) "SIGTERM without checkpoint.dir: exit $rc (1), nothing saved"

# keep_last 2 and keep_every 4 over 10 checkpoints
run "$mt" run.yaml --set train.steps=10 --set checkpoint.every=1 --set checkpoint.keep_last=2 \
    --set checkpoint.keep_every=4 --set checkpoint.dir=keep --set log.metrics=keep.jsonl
kept=$(ls keep | tr '\n' ' ')
tap_ok $([ $rc -eq 0 ] && [ "$kept" = "step-00000004 step-00000008 step-00000009 step-00000010 " ] && echo 0 || echo 1) \
    "keep_last 2, keep_every 4: kept $kept"
tap_done
