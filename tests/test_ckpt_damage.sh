# test_ckpt_damage.sh: damaged checkpoints.
#  - a flipped byte in a tensor, then a truncated shard file, in the newest checkpoint: the restart
#    names the checkpoint, the file and (for the flip) the tensor, resumes from the previous good
#    checkpoint and continues exactly as the original run; `megackpt verify` exits 2 naming them;
#    with no good checkpoint left the restart stops with exit 2
#  - a flipped bit in a value of meta.h5 (the step, the data cursor, the chunk size made absurd):
#    verify and the restart both find it by meta.h5's checksum, and the restart falls back the same
#    way; so does a damaged byte of HDF5's own structures (by the seal in meta.h5's user block,
#    before HDF5 parses the file); checkpoints of format 2 (one file per stage and tp rank) and 1
#    (no checksum) still load, and an absurd value in format 1 is found by the range check verify
#    and resume share
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml
pp2="--set parallel.pp=2" # two shard files per checkpoint, one per stage

# shellcheck disable=SC2086 # $pp2 is a list of words
run $MPIRUN -np 2 "$mt" run.yaml $pp2 --set train.steps=8 --set checkpoint.every=2 --set checkpoint.dir=run \
    --set log.metrics=orig.jsonl
tap_ok $rc "8 steps on 2 ranks (pp2), checkpoints every 2 steps"
steps orig.jsonl >orig.txt

# restart TAG: train to step 8 again (resume auto), logging to TAG.jsonl
restart() {
    # shellcheck disable=SC2086
    run $MPIRUN -np 2 "$mt" run.yaml $pp2 --set train.steps=8 --set checkpoint.every=2 --set checkpoint.dir=run \
        --set log.metrics="$1.jsonl"
}
# continues_from TAG STEP: the restart resumed from run/step-STEP and its steps equal the original's
continues_from() {
    steps "$1.jsonl" >"$1.txt"
    sed -n "$(($2 + 1)),\$p" orig.txt >"$1.want"
    grep -q "resumed from run/step-0*$2 (step $2," "$tap_tmp/out" && [ -s "$1.txt" ] && cmp -s "$1.txt" "$1.want"
}

# a flipped byte in the data of one tensor of the newest checkpoint: the first slice of rank 1's
# file (stage 1: its first block's TimestepNorm weight)
file=run/step-00000008/rank-00001.h5
tensor="params/layers.2.mega.timenorm.weight, elements 0 to 31 of shard 0"
flip "$file" params 13 32
run "$mc" verify run/step-00000008
expect_fail 2 "$file: $tensor: checksum mismatch" "verify: a flipped byte: exit 2 naming the file and the tensor"
grep -q "run/step-00000008: 1 problem" "$tap_tmp/err"
tap_ok $? "verify counts one problem"
restart flip
grep -q "checkpoint run/step-00000008 is damaged: $file: $tensor: checksum mismatch" "$tap_tmp/err"
tap_ok $(($? + rc)) "restart: names the damaged checkpoint, file and tensor (exit $rc)"
continues_from flip 6
tap_ok $? "restart: resumes from step 6 and steps 7-8 are the original's"

# a truncated shard file in the (rewritten) newest checkpoint
file=run/step-00000008/rank-00000.h5
truncate -s 20000 "$file"
run "$mc" verify run/step-00000008
expect_fail 2 "$file: " "verify: a truncated file: exit 2 naming the file"
tap_ok $([ "$(grep -c "$file" "$tap_tmp/err")" -eq 1 ] && echo 0 || echo 1) "verify names the truncated file once"
restart trunc
grep -q "checkpoint run/step-00000008 is damaged: $file: " "$tap_tmp/err"
tap_ok $(($? + rc)) "restart: names the damaged checkpoint and the truncated file (exit $rc)"
continues_from trunc 6
tap_ok $? "restart: resumes from step 6 and steps 7-8 are the original's"

# a flipped bit in meta.h5: verify says bad and the restart falls back, both naming meta.h5
meta=run/step-00000008/meta.h5
# meta_flip TAG ATTR MASK WHY: flip a bit of ATTR in the newest checkpoint, verify, restart
meta_flip() {
    flip_attr $meta "$2" "$3"
    tap_ok $? "$1: one bit of $2 flipped in $meta ($4)"
    run "$mc" verify run/step-00000008
    expect_fail 2 "$meta: checksum mismatch" "$1: verify: exit 2 naming meta.h5's checksum"
    restart "$1"
    grep -q "checkpoint run/step-00000008 is damaged: $meta: checksum mismatch" "$tap_tmp/err"
    tap_ok $(($? + rc)) "$1: restart: names the damaged checkpoint and meta.h5 (exit $rc)"
    continues_from "$1" 6
    tap_ok $? "$1: restart: resumes from step 6 and steps 7-8 are the original's"
}
meta_flip step step 4 "step 8 reads 12"
meta_flip cursor cursor 128 "cursor 32 reads 160"
meta_flip chunk chunk $((1 << 62)) "chunk 8 reads 2^62 + 8, which an int cast reads as 8"

# a byte of HDF5's own structures in meta.h5 (a damaged file can crash HDF5 1.10 or make it allocate
# without bound, as fuzzing showed): the seal in its user block refuses it before HDF5 reads it
dd if=/dev/zero of=$meta bs=1 seek=600 count=8 conv=notrunc 2>/dev/null
run "$mc" verify run/step-00000008
expect_fail 2 "$meta: checksum mismatch: the file changed after megatrain wrote it" \
    "8 bytes of HDF5's superblock zeroed in meta.h5: verify: exit 2, before HDF5 parses the file"
restart seal
grep -q "checkpoint run/step-00000008 is damaged: $meta: checksum mismatch" "$tap_tmp/err"
tap_ok $(($? + rc)) "the same: the restart names the damaged checkpoint and meta.h5 (exit $rc)"
continues_from seal 6
tap_ok $? "the same: the restart resumes from step 6 and steps 7-8 are the original's"
# the seal's own first line damaged: not handed to HDF5 as an unsealed file either
printf 'X' | dd of=$meta bs=1 seek=3 count=1 conv=notrunc 2>/dev/null
run "$mc" verify run/step-00000008
expect_fail 2 "$meta: not a readable HDF5 file" "a byte of the seal's first line changed: verify: exit 2"

# format 2 (one file per stage and tp rank, written before format 4): still read, and the run
# continues from it as from the original
$PYTHON_REF "$top_srcdir/tests/ref/ckpt_h5.py" to-v2 run/step-00000006
tap_ok $([ -e run/step-00000006/shard-pp000-tp000.h5 ] && [ ! -e run/step-00000006/rank-00000.h5 ] && echo 0 || echo 1) \
    "format 2: step 6 rewritten as megatrain wrote checkpoints before format 4"
run "$mc" verify run/step-00000006
tap_ok $rc "format 2: verify says good"
rm -r run/step-00000008
restart v2
continues_from v2 6
tap_ok $(($? + rc)) "format 2: the restart resumes from it and steps 7-8 are the original's (exit $rc)"

# format 1 (no checksum): still read; an absurd value in it is out of range for verify and resume alike
$PYTHON_REF "$top_srcdir/tests/ref/ckpt_h5.py" to-v2 run/step-00000008
v1() { # v1 CKPT [ATTR VALUE]: rewrite as format 1, optionally setting ATTR
    $PYTHON_REF - "$@" <<'Q'
import os, sys, h5py, numpy as np
path = sys.argv[1] + "/meta.h5"
with h5py.File(path, "r") as f:
    attrs = {k: f.attrs[k] for k in f.attrs if k != "fnv1a64"}
    assert not list(f.keys()), "meta.h5 holds only root attributes"
attrs["format_version"] = np.array([1], np.int64)
if len(sys.argv) > 2:
    attrs[sys.argv[2]] = np.array([int(sys.argv[3])], np.int64)
with h5py.File(path + ".new", "w") as f:  # as format 1 wrote it: no user block, no seal
    for k, v in attrs.items():
        f.attrs[k] = v
os.replace(path + ".new", path)
Q
}
v1 run/step-00000008
run "$mc" verify run/step-00000008
tap_ok $([ $rc -eq 0 ] && grep -q "format 1: meta.h5 has no checksum" "$tap_tmp/out" && echo 0 || echo 1) \
    "format 1: verify says good, noting meta.h5 has no checksum"
restart v1
grep -q "resumed from run/step-00000008 (step 8," "$tap_tmp/out"
tap_ok $(($? + rc)) "format 1: the restart resumes from it (exit $rc)"
v1 run/step-00000008 chunk 9223372036854775807
run "$mc" verify run/step-00000008
expect_fail 2 "$meta: attribute chunk = 9223372036854775807 is out of range" \
    "format 1, chunk = INT64_MAX: verify: exit 2"
restart v1chunk
grep -q "checkpoint run/step-00000008 is damaged: $meta: attribute chunk = 9223372036854775807 is out of range" \
    "$tap_tmp/err" && ! grep -q "another model" "$tap_tmp/err"
tap_ok $(($? + rc)) "format 1, chunk = INT64_MAX: the restart names it as damaged, not another model's (exit $rc)"
continues_from v1chunk 6
tap_ok $? "format 1, chunk = INT64_MAX: the restart resumes from step 6 and steps 7-8 are the original's"

# nothing loadable: exit 2 before any work
mkdir only && cp -r run/step-00000008 only/ && truncate -s 1000 only/step-00000008/meta.h5
# shellcheck disable=SC2086
run $MPIRUN -np 2 "$mt" run.yaml $pp2 --set train.steps=10 --set checkpoint.dir=only --set log.metrics=none.jsonl
expect_fail 2 "only: none of its 1 checkpoint(s) could be loaded" "no good checkpoint left: exit 2"
grep -q "checkpoint only/step-00000008 is damaged: only/step-00000008/meta.h5: " "$tap_tmp/err"
tap_ok $? "... naming the damaged meta.h5"
rm -r only/step-00000008 && cp -r run/step-00000008 only/ && flip_attr only/step-00000008/meta.h5 step 1
# shellcheck disable=SC2086
run $MPIRUN -np 2 "$mt" run.yaml $pp2 --set train.steps=10 --set checkpoint.dir=only --set log.metrics=none.jsonl
expect_fail 2 "only: none of its 1 checkpoint(s) could be loaded" "a flipped bit in the only checkpoint's step: exit 2"
grep -q "checkpoint only/step-00000008 is damaged: only/step-00000008/meta.h5: checksum mismatch" "$tap_tmp/err" &&
    [ ! -e none.jsonl ]
tap_ok $? "... naming meta.h5's checksum, before any step"
tap_done
