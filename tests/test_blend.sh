# test_blend.sh: training on a blend of datasets (data.blend).
#  - under dp2 and under cp2, a run resumed from its step-3 checkpoint continues the uninterrupted
#    run exactly: the same loss, gradient norm and validation loss strings, and the same tokens
#    drawn from each dataset (the metrics log's dataset_tokens), which add up to the run's tokens
#    in the proportion of the weights; one rank gives the same losses to fp32 rounding
#  - the run file's list form ({path, weight}) is the text form "WEIGHT PATH ..."; --print-config
#    prints it so
#  - data.path with data.blend, a malformed blend, datasets of different tokenizers, a dataset
#    without the val split that evaluation reads: exit 2 with a message naming what is wrong
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml
md="$top_builddir/megadata"

run "$md" build a "$top_srcdir/tests/data/text" --val-fraction 0.3
tap_ok $rc "dataset a: the text fixture, with a val split"
$PYTHON_REF -c '
import random
random.seed(3)
for d in range(6):
    open("b-text-%d.txt" % d, "w").write(" ".join(random.choice(["ab", "cd", "ef", "0123"]) for _ in range(600)))'
run "$md" build b b-text-*.txt --val-fraction 0.3
tap_ok $rc "dataset b: other text, with a val split"
blend="0.7 a 0.3 b"

# dataset_tokens LOG: "step t0 t1" of every step record
dataset_tokens() {
    sed -n 's/.*"type":"step","step":\([0-9]*\),.*"dataset_tokens":\[\([0-9]*\),\([0-9]*\)\].*/\1 \2 \3/p' "$1"
}

for lay in "dp2:" "cp2:--set parallel.cp=2"; do
    name=${lay%%:*} opts=${lay#*:}
    # shellcheck disable=SC2086 # $opts is a list of words
    full_and_resumed $name --set "data.blend=$blend" --set model.vocab_size=0 --set eval.every=2 \
        --set eval.batches=1 $opts
    dataset_tokens $name-full.jsonl >full-tokens.txt
    dataset_tokens $name-resumed.jsonl >resumed-tokens.txt
    [ "$(wc -l <resumed.txt)" -eq 3 ] && cmp -s full.txt resumed.txt && [ -s full-eval.txt ] &&
        cmp -s full-eval.txt resumed-eval.txt && sed -n '4,$p' full-tokens.txt | cmp -s - resumed-tokens.txt
    tap_ok $? "$name: steps 4-6 give the same loss, grad norm, val loss and tokens per dataset"
    sed 's/^/# /' resumed.txt
    # 4 sequences of 32 tokens a step: step s has drawn 128 s tokens, 70% from a within a sequence
    awk '{ if ($2 + $3 != 128 * $1 || ($2 - 0.7 * 128 * $1) ^ 2 > 32 ^ 2) bad = 1; n++ }
         END { exit bad || n != 6 }' full-tokens.txt
    tap_ok $? "$name: tokens per dataset add up to the run's, 0.7 of them from a ($(tail -1 full-tokens.txt))"
done

# one rank reads the same global batches: the same losses to fp32 rounding, the same tokens
run "$mt" run.yaml --set "data.blend=$blend" --set model.vocab_size=0 --set train.steps=6 --set log.metrics=one.jsonl
compare one.jsonl dp2-full.jsonl 1e-6 2e-5
dataset_tokens one.jsonl | cmp -s - full-tokens.txt
tap_ok $(($? + rc)) "one rank: the losses of dp2 to fp32 rounding ($worst), the tokens per dataset of dp2 and cp2"

cat >list.yaml <<'Y'
data:
  blend:
    - {path: a, weight: 0.7}
    - path: b
      weight: 0.3
  seq_len: 32
model: {vocab_size: 300}
Y
run "$mt" list.yaml --print-config
grep -q '^  blend: "0.7 a 0.3 b"$' out
tap_ok $(($? + rc)) "the list form reads as the text form: $(grep blend: out)"
run "$mt" list.yaml --set data.path=a --print-config
expect_fail 2 "data.blend: excludes data.path (set at --set data.path=a)" "data.path and data.blend: exit 2"
run "$mt" run.yaml --set "data.blend=0.7 a 0.3" --set train.steps=1
expect_fail 2 "--set data.blend=0.7 a 0.3: data.blend: the weight 0.3 has no dataset after it" \
    "a weight without a dataset: exit 2, naming where it was set"
run "$mt" run.yaml --set "data.blend=1 a -1 b" --set train.steps=1
expect_fail 2 "data.blend: '-1' is not a positive weight" "a negative weight: exit 2"
printf 'data:\n  blend:\n    - {path: a, weight: 1, extra: 2}\n' >extra.yaml
run "$mt" extra.yaml --print-config
expect_fail 2 "extra.yaml:3: data.blend: 'extra' is not one of path and weight" "a list item with another key: exit 2"
printf '\001\000\002\000\003\000\077\000' >t.u16
run "$md" build raw t.u16 --kind uint16 --vocab 64 --val-fraction 0
run "$mt" run.yaml --set "data.blend=1 a 1 raw" --set model.vocab_size=0 --set train.steps=1
expect_fail 2 "raw (split train): vocabulary 64, .* but a (split train) has 257.*share one tokenizer" \
    "datasets of different tokenizers: exit 2 naming both"
run "$md" build c b-text-0.txt --val-fraction 0
run "$mt" run.yaml --set "data.blend=1 a 1 c" --set train.steps=1 --set eval.every=1 --set model.vocab_size=0
expect_fail 2 "c: no shard of split 'val'" "evaluation reads every dataset's val split: one without is named, exit 2"
tap_done
