# test_demo.sh: the demo run file trains a MEGALODON on text under mpirun, and it learns: after
# 60 steps on 100 KB of synthetic English-like text (random sentences from a small grammar, so
# it cannot be memorised in 60 x 1024 tokens) the training loss is far below the text's byte
# unigram entropy, which is what a model that ignores context would reach. Two data-parallel
# ranks give the losses of one.
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
mt="$top_builddir/megatrain"
mkdir text
awk 'BEGIN {
    srand(7)
    split("the a one every this that some no", det, " ")
    split("quick lazy old young red small bright quiet happy dark", adj, " ")
    split("fox dog cat bird river garden house teacher child city", noun, " ")
    split("jumps over|walks into|looks at|runs past|sings to|waits for", verb, "|")
    for (d = 0; d < 40; d++) {
        f = sprintf("text/doc%02d.txt", d)
        for (s = 0; s < 60; s++) {
            line = det[int(rand() * 8) + 1] " " adj[int(rand() * 10) + 1] " " noun[int(rand() * 10) + 1] " " \
                   verb[int(rand() * 6) + 1] " " det[int(rand() * 8) + 1] " " noun[int(rand() * 10) + 1] "."
            print toupper(substr(line, 1, 1)) substr(line, 2) > f
        }
        close(f)
    }
}'
run "$top_builddir/megadata" build data text --val-fraction 0.1
tap_ok $rc "megadata builds the synthetic texts"
# unigram entropy (nats) of the train split's tokens
H=$($PYTHON_REF -c '
import glob, h5py, numpy as np
t = np.concatenate([h5py.File(f, "r")["tokens"][:] for f in sorted(glob.glob("data/train-*.h5"))])
p = np.bincount(t) / len(t); p = p[p > 0]
print(float(-(p * np.log(p)).sum()))')
tap_ok $([ -n "$H" ] && echo 0 || echo 1) "unigram entropy of the train split: $H nats"
run $MPIRUN -np 1 "$mt" "$top_srcdir/jobs/demo.yaml" --set data.path=data --set train.steps=60 \
    --set schedule.warmup_steps=10 --set eval.every=30 --set eval.batches=1 --set log.every=20 --set log.metrics=one.jsonl
tap_ok $rc "the demo config trains 60 steps (exit $rc)"
sed 's/^/# /' out
# threshold: the mean of the last 10 losses below half the unigram entropy; the first loss is
# above the entropy (about log 257 = 5.55 at initialisation)
verdict=$($PYTHON_REF -c '
import json, sys
H = float(sys.argv[1])
recs = [json.loads(l) for l in open("one.jsonl")]
steps = [r["loss"] for r in recs if r["type"] == "step"]
evals = [r for r in recs if r["type"] == "eval"]
last = sum(steps[-10:]) / 10
ok = len(steps) == 60 and steps[0] > H and last < 0.5 * H and len(evals) == 2 and recs[0]["type"] == "header"
print("ok" if ok else "bad", "first %.3f last10 %.3f H %.3f evals %d" % (steps[0], last, H, len(evals)))' "$H")
tap_ok $(case $verdict in ok*) echo 0;; *) echo 1;; esac) "loss falls well below the unigram entropy: ${verdict#* }"
run $MPIRUN -np 2 "$mt" "$top_srcdir/jobs/demo.yaml" --set data.path=data --set train.steps=60 \
    --set schedule.warmup_steps=10 --set eval.every=30 --set eval.batches=1 --set log.every=20 --set log.metrics=two.jsonl
tap_ok $rc "the same under mpirun -np 2 (data parallel)"
# fp32 sums in another order (the gradient all-reduce): the losses agree to 1e-3 relative over 60 steps
same=$($PYTHON_REF -c '
import json
def losses(f):
    return [r["loss"] for r in map(json.loads, open(f)) if r["type"] == "step"]
a, b = losses("one.jsonl"), losses("two.jsonl")
print(max(abs(x - y) / abs(x) for x, y in zip(a, b)) if len(a) == len(b) == 60 else 1)')
tap_ok $($PYTHON_REF -c "import sys; sys.exit(0 if ${same:-1} < 1e-3 else 1)"; echo $?) "dp=2 losses match one rank's (largest relative difference $same)"
tap_done
