# test_slurm.sh: jobs/megatrain.sbatch under a fake Slurm (tests/fake-slurm: sbatch, srun,
# scontrol, mpirun and a megatrain that keeps the checkpoint contract): its directives, the launch
# with srun and mpirun, the pre-timeout signal forwarded and the job requeued after the checkpoint,
# no requeue when the run finished, was cancelled, failed or ran out of restarts; then real
# megatrain runs through it on 2 ranks.
. "$top_srcdir/tests/tap.sh"
fake="$top_srcdir/tests/fake-slurm"
job="$top_srcdir/jobs/megatrain.sbatch"
cd "$tap_tmp" || exit 1
PATH="$fake:$PATH"
FAKE_SLURM_LOG="$tap_tmp/slurm.log"
FAKE_REAL_MPIRUN=$MPIRUN
MEGATRAIN="$fake/fake-megatrain"
export PATH FAKE_SLURM_LOG FAKE_REAL_MPIRUN MEGATRAIN
has() { grep -q -- "$1" "$2"; } # has PATTERN FILE
# check DESCRIPTION CONDITION: one TAP check that the shell condition holds; the last job's log
# goes to the TAP output when it does not
check() {
    if eval "$2"; then tap_ok 0 "$1"; else
        tap_ok 1 "$1"
        cat details 2>/dev/null
    fi
}
printf 'train: {steps: 5}\n' >run.yaml

# submit [sbatch options] [-- args for the script]: one job of one task, output in job.out
submit() {
    : >slurm.log
    rm -f job.out
    opts=''
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts="$opts $1"; shift; done
    [ $# -gt 0 ] && shift
    # shellcheck disable=SC2086
    run sbatch --ntasks-per-node=1 --output=job.out $opts "$job" "$@"
    { echo "# sbatch exit $rc; slurm.log:"; sed 's/^/#   /' slurm.log; echo "# job.out:"; sed 's/^/#   /' job.out; } \
        >details 2>/dev/null
}

# a finished run: no requeue
submit -- run.yaml --set train.steps=5
check "finished run: job exits 0" '[ $rc -eq 0 ] && has "^Submitted batch job" out'
check "directives ask for the pre-timeout signal to the batch shell, requeue, appended output" \
    'has "^sbatch.* --signal=B:USR1@[0-9]" slurm.log && has "^sbatch.* --requeue" slurm.log &&
     has "^sbatch.* --open-mode=append" slurm.log'
check "srun launches megatrain with the run file, the extra arguments and the task's CPUs" \
    'has "^srun --kill-on-bad-exit=1 --ntasks=1 --cpus-per-task=8 $MEGATRAIN run.yaml --set train.steps=5\$" slurm.log'
check "finished run: not requeued" '! has scontrol slurm.log && has "run finished" job.out'

# the time limit comes: checkpoint, then requeue
FAKE_TRAIN_SECONDS=30 FAKE_SLURM_WARN_AFTER=0.5 submit -- run.yaml
id=$(sed -n 's/^job \([0-9]*\) exit.*/\1/p' slurm.log)
check "SIGUSR1 before the time limit: megatrain checkpoints, the job requeues itself (job $id)" \
    '[ $rc -eq 0 ] && has "^checkpoint\$" slurm.log && has "^scontrol requeue $id\$" slurm.log'
check "the job's output says so" 'has "requeueing job $id" job.out'

# the requeued job starts again: same command, megatrain resumes by itself
FAKE_SLURM_RESTART_COUNT=1 submit -- run.yaml
check "restarted job: same megatrain command, finished, not requeued" \
    '[ $rc -eq 0 ] && has "^megatrain run.yaml\$" slurm.log && has "(start 2)" job.out && ! has scontrol slurm.log'

# cancelled or preempted: SIGTERM, checkpoint, no requeue by the job (Slurm requeues preempted jobs)
FAKE_TRAIN_SECONDS=30 FAKE_SLURM_WARN_AFTER=0.5 submit --signal=B:TERM@60 -- run.yaml
check "SIGTERM: forwarded, checkpointed, not requeued" \
    '[ $rc -eq 0 ] && has "^checkpoint\$" slurm.log && ! has scontrol slurm.log && has SIGTERM job.out'

# failures end the job without a requeue
FAKE_TRAIN_EXIT=3 submit -- run.yaml
check "megatrain fails: the job fails with its status, no requeue" \
    '[ $rc -eq 3 ] && ! has scontrol slurm.log && has "exited with status 3" job.out'
FAKE_TRAIN_SECONDS=5 FAKE_NO_CHECKPOINT=1 FAKE_SLURM_WARN_AFTER=0.5 submit -- run.yaml
check "megatrain killed by the signal (no checkpoint support): no requeue (exit $rc)" \
    '[ $rc -ne 0 ] && ! has scontrol slurm.log'
MEGATRAIN_MAX_RESTARTS=2 FAKE_SLURM_RESTART_COUNT=2 FAKE_TRAIN_SECONDS=30 FAKE_SLURM_WARN_AFTER=0.5 submit -- run.yaml
check "out of restarts: checkpointed, not requeued, exit 1" \
    '[ $rc -eq 1 ] && has "^checkpoint\$" slurm.log && ! has scontrol slurm.log && has MEGATRAIN_MAX_RESTARTS job.out'
FAKE_SCONTROL_FAIL=1 FAKE_TRAIN_SECONDS=30 FAKE_SLURM_WARN_AFTER=0.5 submit -- run.yaml
check "a failed requeue fails the job" '[ $rc -eq 1 ] && has "scontrol requeue failed" job.out'

# the checkpoint folder, mpirun, bad use
MEGATRAIN_CKPT_ROOT=/scratch/ckpt submit -- run.yaml
check "MEGATRAIN_CKPT_ROOT gives each run file its checkpoint folder" \
    'has "^megatrain run.yaml --set checkpoint.dir=/scratch/ckpt/run\$" slurm.log'
LAUNCHER=mpirun LAUNCH_ARGS='--bind-to none' submit -- run.yaml
check "LAUNCHER=mpirun: mpirun -np NTASKS with LAUNCH_ARGS" \
    '[ $rc -eq 0 ] && has "^mpirun -np 1 --bind-to none $MEGATRAIN run.yaml\$" slurm.log'
LAUNCHER=bogus submit -- run.yaml
check "unknown launcher: exit 2" '[ $rc -eq 2 ] && has "LAUNCHER=bogus: expected srun or mpirun" job.out'
submit -- missing.yaml
check "missing run file: exit 2 before any launch" \
    '[ $rc -eq 2 ] && has "missing.yaml: cannot read the run file" job.out && ! has "^megatrain" slurm.log'
submit
check "no run file: usage, exit 2" '[ $rc -eq 2 ] && has "usage: sbatch" job.out'
run bash "$job" run.yaml
check "outside Slurm: refuses to start" '[ $rc -ne 0 ] && has "not inside a Slurm job" err'

# the directives' output file name, appended across starts of the job
: >slurm.log
run sbatch --ntasks-per-node=1 "$job" run.yaml
id=$(sed -n 's/^Submitted batch job //p' out)
check "output in %x-%j.out (megatrain-$id.out)" '[ -s "megatrain-$id.out" ] && has "job $id (start 1)" "megatrain-$id.out"'
FAKE_SLURM_RESTART_COUNT=1 run sbatch --ntasks-per-node=1 --output="megatrain-$id.out" "$job" run.yaml
check "a restart appends to the job's output" 'has "(start 1)" "megatrain-$id.out" && has "(start 2)" "megatrain-$id.out"'

# real megatrain, 2 ranks, through srun and through mpirun
cat >tiny.yaml <<'Y'
model: {vocab_size: 64, n_layers: 1, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}
data: {seq_len: 32, batch_size: 4}
train: {steps: 3}
log: {metrics: tiny.jsonl, every: 1}
Y
for launcher in srun mpirun; do
    rm -f tiny.jsonl
    MEGATRAIN="$top_builddir/megatrain" LAUNCHER=$launcher submit --ntasks-per-node=2 --cpus-per-task=1 -- tiny.yaml
    check "megatrain on 2 ranks through $launcher: 3 steps logged, finished" \
        '[ $rc -eq 0 ] && has "\"layout\":{\"world\":2,\"dp\":2" tiny.jsonl &&
         [ "$(grep -c "\"type\":\"step\"" tiny.jsonl)" -eq 3 ] && has "run finished" job.out'
done
tap_done
