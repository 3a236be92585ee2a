# test_demo.sh: the demo run file trains a MEGALODON on text under mpirun, and it learns: after
# 60 steps on 100 KB of synthetic English-like text (random sentences from a small grammar, so
# it cannot be memorised in 60 x 1024 tokens) the training loss is far below the text's byte
# unigram entropy, which is what a model that ignores context would reach. Two data-parallel
# ranks give the losses of one. Then tools/demo.sh on a small folder of text (tests/data/text) with
# this build's programs (nothing installed, built or downloaded): a folder named relative to the
# current one, its own dataset, metrics logs and checkpoints beside those of another folder of the
# same name, the checkpoint evaluated (given a validation split) and a sample of its text at the end,
# the dataset reused while the files stay the same and rebuilt when one changes, and a folder that
# does not exist refused with exit 2; --tokenizer FILE reaches megadata build, with a dataset
# folder of its own, and a tokenizer trained by megadata tokenizer train runs the whole demo: eval
# prints bits per byte and the sample is text (generate --tokenizer).
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

# demo ARGS...: tools/demo.sh with this build's programs, outputs in demo/, one training step
demo() {
    run env MEGATRAIN_BUILDDIR="$top_builddir" MEGATRAIN_DEMO_DIR=demo sh "$top_srcdir/tools/demo.sh" "$@" \
        --set train.steps=1
}
# show: the last run's stdout and stderr as TAP comments
show() { sed 's/^/# /' out err; }
demo nosuch
expect_fail 2 "nosuch: no such folder" "demo.sh: a folder that does not exist: exit 2"
tap_ok $([ ! -e demo ] && echo 0 || echo 1) "demo.sh: ... before installing, building or downloading anything (no demo/ made)"
demo text/doc00.txt
expect_fail 2 "text/doc00.txt: not a folder" "demo.sh: a file for the folder: exit 2"

here=$(pwd -P) # demo.sh names folders by their absolute paths
cp -R "$top_srcdir/tests/data/text" corpus
mkdir other
cp -R corpus other/corpus
echo "Another line." >>other/corpus/notes.txt
demo corpus
show
first=$(ls -d demo/corpus-*)
cp "$first/run-001.jsonl" first.jsonl
tap_ok $([ $rc -eq 0 ] && [ -f "$first/data/train-00000.h5" ] && [ -f "$first/run-001.jsonl" ] &&
    grep -q "^demo: dataset $here/$first/data; metrics log $here/$first/run-001.jsonl; checkpoints $here/$first/run-001$" out &&
    echo 0 || echo 1) "demo.sh corpus: the folder relative to the current one, outputs in $first, named on stdout"
tap_ok $([ -d "$first/run-001/step-00000001" ] && grep -q "^demo: a sample from the checkpoint:" out &&
    grep -q "prompt tokens" err && echo 0 || echo 1) \
    "demo.sh corpus: ends with a sample from the run's checkpoint (no validation split: no evaluation)"
demo other/corpus
show
tap_ok $([ $rc -eq 0 ] && [ "$(ls -d demo/corpus-* | wc -l)" -eq 2 ] && [ "$(ls demo/corpus-*/*.jsonl | wc -l)" -eq 2 ] &&
    cmp -s first.jsonl "$first/run-001.jsonl" && echo 0 || echo 1) \
    "demo.sh other/corpus (the same name): its own dataset and metrics log; the first log untouched"
touch before
sleep 1
demo corpus
tap_ok $([ $rc -eq 0 ] && grep -q "^demo: $here/corpus is unchanged: reusing" out &&
    [ -z "$(find "$first/data" -newer before)" ] && [ -f "$first/run-002.jsonl" ] && echo 0 || echo 1) \
    "demo.sh corpus again: the dataset reused, a new metrics log run-002.jsonl"
echo "A new line." >>corpus/poems/spring.txt
demo corpus
tap_ok $([ $rc -eq 0 ] && grep -q "^demo: building the dataset of $here/corpus" out &&
    [ -n "$(find "$first/data" -newer before)" ] && [ -f "$first/run-003.jsonl" ] && echo 0 || echo 1) \
    "demo.sh corpus after a file changed: the dataset rebuilt"
demo text
tap_ok $([ $rc -eq 0 ] && d=$(ls -d demo/text-*) && [ -s "$d/run-001.position.jsonl" ] &&
    grep -q "^eval $here/$d/run-001 (step 1), split val:" out && grep -q "^demo: a sample from the checkpoint:" out &&
    echo 0 || echo 1) "demo.sh on a corpus with a validation split: evaluates the checkpoint (loss by position too), then a sample"
demo --tokenizer bytes corpus
tap_ok $([ $rc -eq 0 ] && grep -q "^demo: $here/corpus is unchanged: reusing" out && echo 0 || echo 1) \
    "demo.sh --tokenizer bytes corpus: the byte-level dataset, reused"
demo --tokenizer nosuch.model corpus
expect_fail 2 "nosuch.model: no such tokenizer file" "demo.sh --tokenizer with a missing file: exit 2"
echo "not a tokenizer" >fake.model
demo --tokenizer fake.model corpus
expect_fail 2 "fake.model" "demo.sh --tokenizer FILE: megadata build encodes with FILE (not a tokenizer: exit 2 naming it)"
tap_ok $([ -d "$first-fake-$(printf '%08x' "$(printf '%s' "$here/fake.model" | cksum | cut -d' ' -f1)")" ] &&
    echo 0 || echo 1) "demo.sh --tokenizer FILE: the dataset of corpus with FILE has a folder of its own"
# a real tokenizer: a SentencePiece BPE trained by megadata tokenizer train on the corpus itself
run "$top_builddir/megadata" tokenizer train sp.model text/*.txt --vocab 320
tap_ok $rc "megadata tokenizer train: a 320-piece SentencePiece model of the synthetic texts"
demo --tokenizer sp.model text
show
tap_ok $([ $rc -eq 0 ] && d=$(ls -d demo/text-*-sp-*) && "$top_builddir/megadata" info "$d/data" | grep -q sentencepiece &&
    [ -s "$d/run-001.position.jsonl" ] && grep -aq "bits per byte [0-9]" out &&
    grep -a -A1 "^demo: a sample from the checkpoint:" out | grep -aq "^The " &&
    echo 0 || echo 1) "demo.sh --tokenizer sp.model text: trains, evaluates (bits per byte) and samples text on the SentencePiece dataset"
tap_done
