# test_ckpt_kill.sh: kill -9 of the ranks at moments while a checkpoint is being written (several
# delays): no incomplete checkpoint ever looks complete (every step-* folder verifies; leftovers
# are .step-*.tmp), and the next start resumes from the newest complete one.
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

# a model of 2.8 M parameters on two stages, so two ranks write (32 MB per checkpoint, about 0.1 s
# to write), a checkpoint every step, keeping one (so pruning is killed too); mpirun takes 1 s to
# notice its ranks' deaths, so few delays
big="--set model.d_model=256 --set model.z_dim=64 --set model.v_dim=256 --set model.ffn_dim=512"
big="$big --set model.vocab_size=256 --set parallel.pp=2 --set checkpoint.every=1 --set checkpoint.keep_last=1"
tmp_seen=0
for delay in 0 0.03 0.06 0.1 0.2; do
    newest=$(ls kill 2>/dev/null | grep '^step-' | tail -1)
    n=0
    [ -n "$newest" ] && n=$(expr "${newest#step-}" + 0)
    # shellcheck disable=SC2086
    $MPIRUN -np 2 "$mt" run.yaml $big --set train.steps=$((n + 20)) --set checkpoint.dir=kill \
        --set log.metrics=kill.jsonl >kill.out 2>&1 &
    pid=$!
    # the job's second checkpoint being written (its temporary folder: the first one's name may
    # be a leftover of the previous job), then the delay
    while kill -0 $pid 2>/dev/null && [ ! -d "kill/.step-$(printf %08d $((n + 2))).tmp" ]; do
        sleep 0.005
    done
    sleep $delay
    ranks=$(pgrep -P $pid)
    # shellcheck disable=SC2086 # the ranks' ids
    [ -n "$ranks" ] && kill -9 $ranks
    wait $pid
    # where the killed job had started from
    if [ -z "$newest" ]; then
        grep -q 'steps 1 to' kill.out
    else
        grep -q "resumed from kill/$newest (" kill.out
    fi
    tap_ok $(($? + $([ -n "$ranks" ] && echo 0 || echo 1))) \
        "kill -9 after ${delay} s: that job had started from ${newest:-nothing} (the newest complete checkpoint)"
    bad=
    for e in $(ls -a kill); do
        case $e in
        . | ..) ;;
        .step-*.tmp) tmp_seen=$((tmp_seen + 1)) ;;
        step-*) "$mc" verify "kill/$e" >verify.out 2>&1 || { bad="$bad $e"; sed 's/^/# /' verify.out; } ;;
        *) bad="$bad $e" ;;
        esac
    done
    tap_ok $([ -z "$bad" ] && echo 0 || echo 1) \
        "kill -9 after ${delay} s: every step-* folder verifies, the rest are .tmp leftovers ($(ls -a kill | grep step | tr '\n' ' '))${bad:+; bad:$bad}"
done
tap_ok $([ "$tmp_seen" -gt 0 ] && echo 0 || echo 1) "some kills hit a write in progress ($tmp_seen .tmp leftovers seen)"
run "$mc" ls kill
grep -q 'incomplete' "$tap_tmp/out" || ! ls -a kill | grep -q '\.tmp$'
tap_ok $? "megackpt ls shows the leftovers as incomplete"
newest=$(ls kill | grep '^step-' | tail -1)
n=$(expr "${newest#step-}" + 0) # (the job killed after 0.2 s at least finished a checkpoint)
# shellcheck disable=SC2086
run $MPIRUN -np 2 "$mt" run.yaml $big --set train.steps=$((n + 1)) --set checkpoint.dir=kill --set log.metrics=kill.jsonl
grep -q "resumed from kill/$newest (" "$tap_tmp/out" && [ -d "kill/step-$(printf %08d $((n + 1)))" ] &&
    ! ls -a kill | grep -q '\.tmp$'
tap_ok $(($? + rc)) "the next start resumes from $newest, checkpoints step $((n + 1)) and clears the leftovers"
tap_done
