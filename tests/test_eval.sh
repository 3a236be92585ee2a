# test_eval.sh: megatrain eval and megatrain generate on a checkpoint of a tiny run (trained under
# dp2 on tests/data/text):
#  - eval of the training validation's windows gives the val_loss of the metrics log; under dp2,
#    cp2, tp2 and pp2 the same as one rank (the same windows; fp32 sums in another order: 1e-6
#    relative, seen below 1e-8)
#  - --by-position: buckets 0-4, 4-8, 8-16, 16-32 for 32-token windows, whose token-weighted mean
#    is the loss; 8x the training context, under cp2 too; megaplot draws the curve
#  - bits per byte: the loss in bits over the targets that are bytes (not end-of-document ids),
#    counted here from the split's tokens
#  - generate: the prompt first, then at most N tokens; the same seed gives the same text,
#    temperature 0 the same text whatever the seed; prompt ids; one rank only
#  - bad input (options, checkpoints, another model, windows, context) stops with exit 2
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml
mp="$top_builddir/megaplot"

run "$top_builddir/megadata" build data "$top_srcdir/tests/data/text" --val-fraction 0.3
tap_ok $rc "a small text dataset with a validation split"
set -- --set data.path=data --set model.vocab_size=0
run $MPIRUN -np 2 "$mt" run.yaml "$@" --set train.steps=6 --set eval.every=6 --set eval.batches=3 \
    --set checkpoint.dir=ck --set log.metrics=m.jsonl
tap_ok $([ $rc -eq 0 ] && [ -d ck/step-00000006 ] && echo 0 || echo 1) "6 steps under dp2, validation and a checkpoint"
val=$(sed -n 's/.*"type":"eval","step":6,.*"val_loss":\([^,]*\),.*/\1/p' m.jsonl)

# loss FILE: the summary's loss in an eval --by-position file
loss() { sed -n 's/.*"type":"checkpoint_eval".*"loss":\([^,]*\),.*/\1/p' "$1"; }
# close A B TOL: |A - B| <= TOL |B|
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
    exit !(a != "" && b != "" && d <= t * m) }'; }
run "$mt" eval run.yaml "$@" --set eval.batches=3 --checkpoint ck --by-position one.jsonl
one=$(loss one.jsonl)
tap_ok $([ $rc -eq 0 ] && close "$one" "$val" 1e-6 && echo 0 || echo 1) \
    "eval of the validation's windows on one rank: loss $one = the training loop's val_loss $val"
sed 's/^/# /' out
tap_ok $(grep -q "^eval ck (step 6), split val: 12 windows of 32 tokens (384 tokens)$" out && echo 0 || echo 1) \
    "the summary names the checkpoint, step, split, windows and tokens"
for layout in dp2: cp2:parallel.cp=2 tp2:parallel.tp=2 pp2:parallel.pp=2; do
    name=${layout%%:*} key=${layout#*:}
    run $MPIRUN -np 2 "$mt" eval run.yaml "$@" --set eval.batches=3 ${key:+--set $key} --checkpoint ck \
        --by-position $name.jsonl
    got=$(loss $name.jsonl)
    tap_ok $([ $rc -eq 0 ] && close "$got" "$one" 1e-6 && echo 0 || echo 1) "eval under $name: loss $got = one rank's"
done

# position records: from to tokens loss
positions() { sed -n 's/.*"type":"position","from":\([0-9]*\),"to":\([0-9]*\),"tokens":\([0-9]*\),"loss":\([^}]*\)}/\1 \2 \3 \4/p' "$1"; }
tap_ok $([ "$(positions one.jsonl | cut -d' ' -f1-3 | tr '\n' ' ')" = "0 4 48 4 8 48 8 16 96 16 32 192 " ] &&
    echo 0 || echo 1) "--by-position: buckets 0-4, 4-8, 8-16, 16-32 of 12 windows"
mean=$(positions one.jsonl | awk '{ s += $3 * $4; n += $3 } END { printf "%.17g", s / n }')
tap_ok $(close "$mean" "$one" 1e-9 && echo 0 || echo 1) "the buckets' token-weighted mean $mean is the loss"
run "$mt" eval run.yaml "$@" --checkpoint ck --seq-len 256 --windows 6 --by-position long.jsonl
long=$(loss long.jsonl)
tap_ok $([ $rc -eq 0 ] && [ "$(positions long.jsonl | cut -d' ' -f1-2 | tr '\n' ' ')" = "0 32 32 64 64 128 128 256 " ] &&
    echo 0 || echo 1) "8x the training context (256 tokens): buckets 0-32 ... 128-256, loss $long"
run $MPIRUN -np 2 "$mt" eval run.yaml "$@" --checkpoint ck --seq-len 256 --windows 6 --set parallel.cp=2 \
    --by-position long-cp2.jsonl
positions long.jsonl >a.txt
positions long-cp2.jsonl >b.txt
worst=$(paste -d' ' a.txt b.txt | awk '{ d = ($4 - $8) / $8; d = d < 0 ? -d : d; if (d > w) w = d } END { print w + 0 }')
tap_ok $([ $rc -eq 0 ] && [ "$(wc -l <b.txt)" -eq 4 ] && close "$(loss long-cp2.jsonl)" "$long" 1e-6 &&
    awk -v w="$worst" 'BEGIN { exit !(w < 1e-6) }' && echo 0 || echo 1) \
    "8x context under cp2: the same loss and losses by position (largest difference $worst)"

# bits per byte from the split's tokens: the first 12 windows of 33 tokens at stride 32
bpb=$(sed -n 's/.*"bits_per_byte":\([^}]*\)}.*/\1/p' one.jsonl)
want=$($PYTHON_REF -c '
import glob, math, sys, h5py, numpy as np
t = np.concatenate([h5py.File(f, "r")["tokens"][:] for f in sorted(glob.glob("data/val-*.h5"))])
n = (len(t) - 1) // 32
targets = np.concatenate([t[(k % n) * 32 + 1:(k % n) * 32 + 33] for k in range(12)])
print("%.17g" % (float(sys.argv[1]) * len(targets) / math.log(2) / (targets != 256).sum()))' "$one")
tap_ok $(close "$bpb" "$want" 1e-9 && echo 0 || echo 1) "bits per byte $bpb: the loss in bits over the bytes ($want)"

run "$mp" --table none -o plots one.jsonl long.jsonl m.jsonl
tap_ok $([ $rc -eq 0 ] && [ "$(od -An -tx1 -N4 plots/position.png | tr -d ' \n')" = 89504e47 ] &&
    grep -q "^256 " plots/position.gp && grep -q "logscale x" plots/position.gp && [ -s plots/loss.png ] &&
    echo 0 || echo 1) "megaplot reads the eval files beside a metrics log and draws loss by position (log x)"

# eval's bad input
bad() { # bad PATTERN DESCRIPTION ARGS...: exit 2 and the message
    pattern=$1 what=$2
    shift 2
    run "$@"
    expect_fail 2 "$pattern" "eval, $what: exit 2"
}
ev="$mt eval run.yaml --set data.path=data --set model.vocab_size=0"
bad "eval needs --checkpoint" "no checkpoint" $ev
bad "nosuch: no checkpoint there" "a missing checkpoint" $ev --checkpoint nosuch
bad "another model" "a checkpoint of another model" $ev --checkpoint ck --set model.d_model=64
bad "--windows 'x': expected an integer" "--windows x" $ev --checkpoint ck --windows x
bad "--windows 3: not a multiple of the 2 data-parallel ranks" "windows not a multiple of dp" \
    $MPIRUN -np 2 $ev --checkpoint ck --windows 3
bad "data.seq_len: 12 must be below model.chunk (8) or a multiple of it" "a context that is no whole chunk" \
    $ev --checkpoint ck --seq-len 12
bad "fewer than one window of seq_len + 1 = 1000001" "a context longer than the split" $ev --checkpoint ck --seq-len 1000000
bad "no shard of split 'nosuch'" "a split that does not exist" $ev --checkpoint ck --split nosuch
bad "--by-position nodir/p.jsonl: cannot write" "an output that cannot be written" $ev --checkpoint ck \
    --by-position nodir/p.jsonl
bad "unknown option '--frobnicate'" "an unknown option" $ev --checkpoint ck --frobnicate
bad "eval needs a dataset: data.path is empty" "no dataset" "$mt" eval run.yaml --checkpoint ck

# generate
gen="$mt generate run.yaml --set data.path=data --set model.vocab_size=0 --checkpoint ck"
run $gen --prompt "The " --tokens 40 --seed 3
cp out g1.txt
tap_ok $([ $rc -eq 0 ] && [ "$(head -c 4 g1.txt)" = "The " ] && [ "$(wc -c <g1.txt)" -le 45 ] &&
    grep -q "prompt tokens" err && echo 0 || echo 1) "generate: the prompt, then at most 40 tokens ($(wc -c <g1.txt) bytes)"
run $gen --prompt "The " --tokens 40 --seed 3
tap_ok $(cmp -s out g1.txt && echo 0 || echo 1) "the same seed gives the same text"
run $gen --prompt "The " --tokens 40 --temperature 0 --seed 1
cp out greedy.txt
run $gen --prompt "The " --tokens 40 --temperature 0 --seed 2 --set parallel.tp=2
tap_ok $([ $rc -eq 0 ] && cmp -s out greedy.txt && echo 0 || echo 1) \
    "temperature 0: the same text for any seed; a run file's tp2 layout does not apply (one rank)"
run $gen --prompt-ids "84,104,101 32" --tokens 0 --top-k 5 --top-p 0.9
tap_ok $([ $rc -eq 0 ] && [ "$(cat out)" = "The " ] && echo 0 || echo 1) "--prompt-ids: the ids' text, and --tokens 0"
bad_gen() { # bad_gen PATTERN DESCRIPTION ARGS...
    pattern=$1 what=$2
    shift 2
    run "$@"
    expect_fail 2 "$pattern" "generate, $what: exit 2"
}
bad_gen "generate runs on one rank (it was started on 2)" "under mpirun -np 2" $MPIRUN -np 2 $gen --prompt "a"
bad_gen "generate needs one of --prompt TEXT and --prompt-ids IDS" "no prompt" $gen
bad_gen "generate needs one of --prompt TEXT and --prompt-ids IDS" "two prompts" $gen --prompt a --prompt-ids 1
bad_gen "an id '300': expected an integer in \[0, 256\]" "an id outside the vocabulary" $gen --prompt-ids 300
bad_gen "--top-p '2': expected a number in \[0, 1\]" "--top-p 2" $gen --prompt a --top-p 2
bad_gen "another model" "a checkpoint of another model" $gen --prompt a --set model.n_layers=2
bad_gen "nosuch: no checkpoint there" "a missing checkpoint" "$mt" generate run.yaml --set data.path=data \
    --set model.vocab_size=0 --checkpoint nosuch --prompt a
tap_done
