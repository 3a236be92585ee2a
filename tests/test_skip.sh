# test_skip.sh: megatrain skips an update whose loss or gradient norm is not finite, or spikes,
# and says so (progress line, metrics log); after train.max_skips skips in a row it stops, exit 1,
# with a checkpoint of the state after the last update applied. The NaN comes from the testing
# aid MEGATRAIN_TEST_INJECT_NAN (src/train.c); tests/test_guard.c checks the numbers bit for bit.
. "$top_srcdir/tests/tap.sh"
mt="$top_builddir/megatrain"
cd "$tap_tmp" || exit 1

cat >run.yaml <<'Y'
model: {vocab_size: 64, n_layers: 1, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}
data: {seq_len: 32, batch_size: 4}
train: {steps: 6}
schedule: {warmup_steps: 1, decay: constant}  # lr independent of train.steps
log: {metrics: m.jsonl, every: 100}
Y
# field FIELD STEP: the value of FIELD in the metrics log's record of STEP
field() { $PYTHON_REF -c '
import json, sys
for line in open("m.jsonl"):
    r = json.loads(line)
    if r.get("type") == "step" and r["step"] == int(sys.argv[2]):
        print(r.get(sys.argv[1]))' "$1" "$2"; }

# one NaN under dp2: that step is skipped and logged, the run goes on to the end
run env MEGATRAIN_TEST_INJECT_NAN=3:1 timeout 120 $MPIRUN -np 2 "$mt" run.yaml
tap_ok $([ $rc -eq 0 ] && grep -q '^step *3/6 .*gnorm nan .*| update skipped: nonfinite (1 in a row)$' out && echo 0 || echo 1) \
    "dp2, NaN in rank 1's gradient at step 3: progress line says the update was skipped, exit $rc"
tap_ok $([ "$(field skipped 3)" = nonfinite ] && [ "$(field skipped_in_row 3)" = 1 ] && [ "$(field skipped 4)" = None ] &&
    [ "$(field step 6)" = 6 ] && echo 0 || echo 1) "... the metrics log marks step 3 skipped, and the run reached step 6"
tap_ok $(grep -q 'MEGATRAIN_TEST_INJECT_NAN=3:1 (a testing aid)' err && echo 0 || echo 1) "... and the testing aid announces itself"

# a clean run's checkpoint after step 2, to compare the stopped run's with
run timeout 120 $MPIRUN -np 2 "$mt" run.yaml --set parallel.tp=2 --set train.steps=2 --set checkpoint.dir=clean \
    --set log.metrics=
tap_ok $rc "tp2, 2 clean steps with a checkpoint"

# Inf from step 3 on under tp2: steps 3, 4, 5 skipped, then the run stops with the state after step 2
rm -f m.jsonl
run env MEGATRAIN_TEST_INJECT_NAN=3-100:0:inf timeout 120 $MPIRUN -np 2 "$mt" run.yaml --set parallel.tp=2 \
    --set train.steps=10 --set train.max_skips=3 --set checkpoint.dir=ck
tap_ok $([ $rc -eq 1 ] && grep -q 'steps 3 to 5: 3 updates in a row skipped (train.max_skips; the last: nonfinite); stopping with the state after step 2 (saved in ck)' err &&
    echo 0 || echo 1) "tp2, Inf from step 3 on, max_skips 3: stops after step 5 with a message, exit $rc (1)"
tap_ok $([ "$(ls ck)" = step-00000002 ] && [ "$(field loss 6)" = "" ] && echo 0 || echo 1) \
    "... its only checkpoint is step 2's, and step 6 never ran"
$PYTHON_REF -c '
import os, sys, h5py, numpy as np
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "ref"))
from ckpt_h5 import GROUPS, read_checkpoint
a, b = "ck/step-00000002", "clean/step-00000002"
ma, mb = h5py.File(a + "/meta.h5", "r"), h5py.File(b + "/meta.h5", "r")
ok = all(ma.attrs[k] == mb.attrs[k] for k in ("step", "cursor"))
for g in GROUPS:
    ta, tb = read_checkpoint(a, g), read_checkpoint(b, g)
    ok = ok and sorted(ta) == sorted(tb) and all(np.array_equal(ta[n], tb[n]) for n in ta)
sys.exit(0 if ok else 1)'
tap_ok $? "... equal to a clean run's after step 2, bit for bit: step, data cursor, parameters, moments"
run env MEGATRAIN_TEST_INJECT_NAN=1-100:1 timeout 120 $MPIRUN -np 2 "$mt" run.yaml --set train.max_skips=2 --set log.metrics=
tap_ok $([ $rc -eq 1 ] && grep -q 'state after step 0 (no checkpoint.dir: not saved)' err && echo 0 || echo 1) \
    "without checkpoint.dir: stops, says nothing was saved, exit $rc (1)"

# the spike guard: a large but finite gradient at step 8 after a window of 4 steps
rm -f m.jsonl
run env MEGATRAIN_TEST_INJECT_NAN=8:0:1e4 timeout 120 "$mt" run.yaml --set train.steps=9 --set train.spike_window=4 \
    --set train.spike_grad_z=3
tap_ok $([ $rc -eq 0 ] && [ "$(field skipped 8)" = grad_spike ] && [ "$(field skipped 7)" = None ] && echo 0 || echo 1) \
    "spike_grad_z 3: a gradient norm spike at step 8 skips that update only (exit $rc)"
rm -f m.jsonl
run env MEGATRAIN_TEST_INJECT_NAN=8:0:1e4 timeout 120 "$mt" run.yaml --set train.steps=9
tap_ok $([ $rc -eq 0 ] && [ "$(field skipped 8)" = None ] && echo 0 || echo 1) "... which is off by default"

run env MEGATRAIN_TEST_INJECT_NAN=3 timeout 60 "$mt" run.yaml
expect_fail 2 "MEGATRAIN_TEST_INJECT_NAN=3: expected FIRST\[-LAST\]:RANK\[:VALUE\]" "a malformed testing aid: exit 2"
tap_done
