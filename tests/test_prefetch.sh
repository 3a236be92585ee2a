# test_prefetch.sh: reading the next micro-batch on a thread (data.prefetch) changes nothing.
#  - one rank: the same loss, grad norm and val loss strings with prefetch on and off
#  - dp2 x pp3 x cp2 (a middle stage, which reads nothing) with prefetch: the losses of one rank to
#    fp32 rounding; resumed from its step-3 checkpoint, the uninterrupted run's strings (the data
#    cursor stays exact)
#  - a damaged shard met by a prefetch stops the run when its batch is taken: exit 2, the shard
#    named, after as many logged steps and with the same message as a run without prefetch
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml
ckpt_text_data data
set -- --set data.path=data --set model.vocab_size=0 --set eval.every=2 --set eval.batches=2 \
    --set parallel.micro_batches=2 --set train.steps=6

run "$mt" run.yaml "$@" --set data.prefetch=false --set log.metrics=off.jsonl
tap_ok $rc "one rank, data.prefetch=false"
run "$mt" run.yaml "$@" --set log.metrics=on.jsonl
steps off.jsonl >off.txt
steps on.jsonl >on.txt
grep '"type":"eval"' off.jsonl | cut -d, -f2- >off-eval.txt
grep '"type":"eval"' on.jsonl | cut -d, -f2- >on-eval.txt
[ $rc -eq 0 ] && [ "$(wc -l <on.txt)" -eq 6 ] && cmp -s off.txt on.txt && [ -s on-eval.txt ] &&
    cmp -s off-eval.txt on-eval.txt
tap_ok $? "one rank, prefetch on: the same loss, grad norm and val loss strings as off"

lay="--set parallel.pp=3 --set parallel.cp=2"
# shellcheck disable=SC2086 # $lay is a list of words
run $MPIRUN -np 12 "$mt" run.yaml "$@" $lay --set checkpoint.dir=full --set checkpoint.every=3 \
    --set log.metrics=full.jsonl
tap_ok $rc "dp2 x pp3 x cp2, prefetch on: 6 steps, checkpoints at steps 3 and 6"
compare on.jsonl full.jsonl 1e-6 2e-5
tap_ok $? "dp2 x pp3 x cp2: the losses of one rank to fp32 rounding ($worst)"
grep -o '"type":"eval","step":[0-9]*' on.jsonl >on-evals.txt
grep -o '"type":"eval","step":[0-9]*' full.jsonl | cmp -s on-evals.txt -
tap_ok $? "dp2 x pp3 x cp2: evaluates at the steps one rank does ($(wc -l <on-evals.txt) evaluations)"
# shellcheck disable=SC2086
run $MPIRUN -np 12 "$mt" run.yaml "$@" $lay --set checkpoint.dir=resumed \
    --set checkpoint.resume=full/step-00000003 --set log.metrics=resumed.jsonl
steps full.jsonl | sed -n '4,$p' >full.txt
steps resumed.jsonl >resumed.txt
grep '"type":"eval"' full.jsonl | sed -n '2,$p' | cut -d, -f2- >full-eval.txt
grep '"type":"eval"' resumed.jsonl | cut -d, -f2- >resumed-eval.txt
[ $rc -eq 0 ] && [ "$(wc -l <resumed.txt)" -eq 3 ] && cmp -s full.txt resumed.txt &&
    cmp -s full-eval.txt resumed-eval.txt
tap_ok $? "dp2 x pp3 x cp2: resumed from step 3, steps 4-6 give the same loss, grad norm and val loss strings"
sed 's/^/# /' resumed.txt

# a damaged shard: 10 shards of 2000 random tokens; one byte of shard 3's tokens flipped (the
# Fletcher-32 checksum of its chunk finds it), a shard that step 1 does not read
$PYTHON_REF -c '
import random
random.seed(5)
open("tokens.u16", "wb").write(bytes(b for _ in range(20000) for b in (random.randrange(256), 0)))'
run "$top_builddir/megadata" build bad tokens.u16 --kind uint16 --vocab 256 --val-fraction 0 --shard-tokens 2000
tap_ok $rc "10 shards of random tokens"
$PYTHON_REF - bad/train-00003.h5 <<'P'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    at = f["tokens"].id.get_chunk_info(0).byte_offset + 1000
with open(path, "r+b") as f:
    f.seek(at)
    b = f.read(1)[0]
    f.seek(at)
    f.write(bytes([b ^ 1]))
P
set -- --set data.path=bad --set model.vocab_size=256 --set parallel.micro_batches=2 --set train.steps=20
for p in false true; do
    run "$mt" run.yaml "$@" --set data.prefetch=$p --set log.metrics=bad-$p.jsonl
    expect_fail 2 "bad/train-00003.h5: " "prefetch $p: the damaged shard stops the run, exit 2, naming it"
    grep -v '^#' err >bad-$p.err
    steps bad-$p.jsonl | wc -l >bad-$p.steps
done
[ "$(cat bad-true.steps)" -ge 1 ] && cmp -s bad-false.steps bad-true.steps && cmp -s bad-false.err bad-true.err
tap_ok $? "prefetch on: the same message after the same $(cat bad-true.steps) steps as off"
sed 's/^/# /' bad-true.err
tap_done
