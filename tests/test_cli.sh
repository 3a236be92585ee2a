# test_cli.sh: megatrain's command line and configuration: help, version, every config error
# path (file:line, key, what was expected, exit 2, printed once under mpirun), --set and
# --print-config round trips, presets, a dataset whose vocabulary does not fit the model.
. "$top_srcdir/tests/tap.sh"
mt="$top_builddir/megatrain"
cd "$tap_tmp" || exit 1

run "$mt" --help
tap_ok $([ $rc -eq 0 ] && grep -q 'usage: megatrain RUN.yaml' out && echo 0 || echo 1) "--help prints the usage, exit 0"
run "$mt" --version
tap_ok $([ $rc -eq 0 ] && grep -q '^megatrain [0-9]' out && echo 0 || echo 1) "--version"
run "$mt" --help-config
tap_ok $([ $rc -eq 0 ] && grep -q 'seq_len' out && grep -q 'grad_clip' out && echo 0 || echo 1) "--help-config lists the keys"
undocumented=$(awk '/^[a-z]+:$/ { sec = substr($1, 1, length($1) - 1); next }
                    /^  [a-z_0-9]+ / { print sec "." $1 }' out |
               while read -r k; do grep -q "\`$k\`" "$top_srcdir/doc/config.md" || echo "$k"; done)
tap_ok $([ -z "$undocumented" ] && echo 0 || echo 1) "doc/config.md documents every key${undocumented:+ (missing: $undocumented)}"
run "$mt"
expect_fail 2 "no run file given" "no arguments: exit 2 with a message"
run "$mt" run.yaml --frobnicate
expect_fail 2 "unknown option '--frobnicate'" "unknown option: exit 2"
run "$mt" missing.yaml
expect_fail 2 "missing.yaml: cannot open the config file" "missing config file: exit 2"

cat >good.yaml <<'Y'
# a small valid run
model:
  vocab_size: 64
  n_layers: 1
  d_model: 32
  n_heads: 2
  z_dim: 16
  v_dim: 32
  ffn_dim: 48
  chunk: 8
  groups: 4
data:
  seq_len: 32
  batch_size: 2
train:
  steps: 3
Y
run "$mt" good.yaml --print-config
tap_ok $rc "--print-config on a valid file"
cp out printed.yaml
run "$mt" printed.yaml --print-config
tap_ok $([ $rc -eq 0 ] && cmp -s out printed.yaml && echo 0 || echo 1) "--print-config output reads back to the same config"
tap_ok $(/usr/bin/python3 -c 'import yaml,sys; d=yaml.safe_load(open("printed.yaml")); sys.exit(0 if d["model"]["norm_eps"]==1e-5 and d["data"]["seq_len"]==32 else 1)' 2>/dev/null; echo $?) "printed config is valid YAML for other readers (PyYAML)"

# the README's command: data.path set but not built yet; vocab_size stays "the dataset's" (0)
run "$mt" "$top_srcdir/jobs/demo.yaml" --print-config
cp out demo-printed.yaml
tap_ok $([ $rc -eq 0 ] && grep -q '  vocab_size: 0$' out && echo 0 || echo 1) "--print-config of jobs/demo.yaml, its dataset not built (exit $rc)"
run "$mt" demo-printed.yaml --print-config
tap_ok $([ $rc -eq 0 ] && cmp -s out demo-printed.yaml && echo 0 || echo 1) "... reads back to the same config"

run "$mt" good.yaml --set model.d_model=64 --set=optimizer.lr=3e-4 --print-config
tap_ok $([ $rc -eq 0 ] && grep -q '  d_model: 64$' out && grep -q '  lr: 0.0003$' out && echo 0 || echo 1) "--set overrides keys (both spellings)"
printf 'model: {preset: mega200M, vocab_size: 32000, chunk: 256}\ndata: {seq_len: 512}\n' >preset.yaml
run "$mt" preset.yaml --print-config
tap_ok $([ $rc -eq 0 ] && grep -q '  d_model: 1024$' out && grep -q '  chunk: 256$' out && grep -q '  n_layers: 12$' out && echo 0 || echo 1) "preset fills the dimensions, explicit keys win"

# train.recompute was a boolean: false and true (in a file or --set) are none and blocks
sed 's/^  steps: 3$/&\n  recompute: true/' good.yaml >recompute.yaml
run "$mt" recompute.yaml --print-config
tap_ok $([ $rc -eq 0 ] && grep -q '^  recompute: "blocks"$' out && echo 0 || echo 1) "train.recompute: true is blocks"
run "$mt" recompute.yaml --set train.recompute=false --print-config
tap_ok $([ $rc -eq 0 ] && grep -q '^  recompute: "none"$' out && echo 0 || echo 1) "... false is none"
run "$mt" recompute.yaml --set train.recompute=elementwise --print-config
cp out elementwise.yaml
run "$mt" elementwise.yaml --print-config
tap_ok $([ $rc -eq 0 ] && grep -q '^  recompute: "elementwise"$' out && cmp -s out elementwise.yaml &&
         echo 0 || echo 1) \
    "train.recompute: elementwise reads back from --print-config"

# every kind of bad value: file:line, key, expectation, exit 2
bad() { # bad LINE-TEXT EXPECTED-PATTERN DESCRIPTION (the YAML is good.yaml with one line appended)
    cp good.yaml bad.yaml
    printf '%s\n' "$1" >>bad.yaml
    run "$mt" bad.yaml --print-config
    expect_fail 2 "$2" "$3"
}
bad 'eval: {every: 2, frequency: 3}' "bad.yaml:17: unknown key 'eval.frequency' (keys of eval: every, batches)" "unknown key names file:line and the known keys"
bad 'optimiser: {lr: 1}' "bad.yaml:17: unknown section 'optimiser'" "unknown section"
bad 'log: {every: ten}' "bad.yaml:17: log.every: expected an integer in \[1, " "wrong type (integer)"
bad 'optimizer: {lr: fast}' "bad.yaml:17: optimizer.lr: expected a number" "wrong type (number)"
bad 'model: {scale_emb: maybe}' "bad.yaml:17: model.scale_emb: expected true or false" "wrong type (boolean)"
bad 'log: {every: 0}' "log.every: expected an integer in \[1," "out of range"
bad 'train: {device: tpu}' "train.device: expected one of cpu|cuda, got 'tpu'" "bad enum value"
bad 'train: {recompute: all}' "train.recompute: expected one of none|blocks|elementwise, false or true, got 'all'" \
    "bad train.recompute"
bad 'eval: {every: [1, 2]}' "bad.yaml:17: eval.every: expected an integer .*, got a list" "a list where a scalar belongs"
bad 'train: {steps: 3, steps: 4}' "train.steps is set twice" "duplicate key"
bad 'model: [oops' "bad.yaml:.*YAML syntax error" "YAML syntax error with line and column"
bad 'model: {preset: mega9B}' "model.preset: unknown preset 'mega9B'" "unknown preset"

# hostile files: bounded size and nesting depth, refused at once (libyaml is quadratic in the
# depth of flow collections: 40,000 '[' took 5 s, 300,000 take minutes)
$PYTHON_REF -c 'print("model: " + "[" * 300000)' >deep.yaml
run timeout 60 "$mt" deep.yaml --print-config
expect_fail 2 "deep.yaml:1:71: nested deeper than 64 levels" "300,000 nested flow lists: exit 2 naming file and place, no hang"
$PYTHON_REF -c 'print("# " + "x" * 2000000)' >huge.yaml
run timeout 60 "$mt" huge.yaml --print-config
expect_fail 2 "huge.yaml: larger than 1048576 bytes" "a 2 MB file: exit 2"

# products and ranges in 64 bits
run timeout 60 "$mt" good.yaml --set model.n_layers=4096 --set model.d_model=4096 --set model.n_heads=4096 \
    --set model.z_dim=8192 --set model.v_dim=4096 --set model.ffn_dim=4096 --set model.groups=4096 \
    --set model.chunk=1 --set data.seq_len=256 --set model.vocab_size=4096 --set parallel.tp=4096 \
    --set parallel.pp=4096 --set parallel.cp=256 --print-config
expect_fail 2 "parallel.tp: tp \* pp \* cp = 4096 \* 4096 \* 256 = 4294967296 does not divide the 1 ranks" \
    "tp x pp x cp beyond 2^31: exit 2, no division by zero"
run timeout 60 "$mt" good.yaml --set train.tokens=9000000000000000000 --print-config
cp out tokens.yaml
tap_ok $([ $rc -eq 0 ] && grep -q '  steps: 140625000000000000$' out && echo 0 || echo 1) "train.tokens 9e18: steps rounded up without overflow"
run timeout 60 "$mt" tokens.yaml --print-config
tap_ok $([ $rc -eq 0 ] && cmp -s out tokens.yaml && echo 0 || echo 1) "... and it reads back to the same config"
run timeout 60 "$mt" good.yaml --set train.tokens=9000000000000000000 --set data.batch_size=268435456 \
    --set data.seq_len=1073741824 --set model.chunk=16777216 --print-config
expect_fail 2 "train.tokens: 32 steps of 288230376151711744 tokens .* count more than 9223372036854775807" \
    "train.tokens whose steps overflow the token count: exit 2 (was: negative steps)"
run timeout 60 "$mt" good.yaml --set data.batch_size=1073741824 --set data.seq_len=1073741824 --set model.chunk=16777216 --print-config
expect_fail 2 "data.batch_size: a micro-batch of 1073741824 sequences of 1073741824 tokens per rank" \
    "a micro-batch beyond 2^31 tokens: exit 2"

# inconsistent values name the key and where it was set
run "$mt" good.yaml --set data.seq_len=20 --print-config
expect_fail 2 "--set data.seq_len=20: data.seq_len: 20 must be below model.chunk (8) or a multiple of it" "sequence length not a multiple of the chunk"
run "$mt" good.yaml --set model.groups=5 --print-config
expect_fail 2 "model.groups: 5 does not divide model.d_model (32)" "groups not dividing the width"
run "$mt" good.yaml --set model.z_dim=6 --print-config
expect_fail 2 "model.z_dim: 6 must be n_heads (2) times an even head width" "odd head width"
run "$mt" good.yaml --set model.vocab_size=0 --print-config
expect_fail 2 "model.vocab_size: needs a value when data.path and data.blend are empty" "no vocabulary"
run "$mt" good.yaml --set parallel.cp=2 --print-config
expect_fail 2 "parallel.cp: tp \* pp \* cp = 1 \* 1 \* 2 = 2 does not divide the 1 ranks" "layout not dividing the world size"
run "$mt" good.yaml --set parallel.tp=4 --print-config
expect_fail 2 "parallel.tp: 4 does not divide model.n_heads (2)" "tp not dividing the heads"
run "$mt" good.yaml --set parallel.tp=2 --set model.vocab_size=63 --print-config
expect_fail 2 "parallel.tp: 2 does not divide model.vocab_size (63), which tensor parallelism splits" \
    "tp not dividing the vocabulary"
run "$mt" good.yaml --set parallel.pp=2 --set model.n_layers=1 --print-config
expect_fail 2 "parallel.pp: 2 stages for 1 layers" "more pipeline stages than layers"
run timeout 60 $MPIRUN -np 2 "$mt" good.yaml --set parallel.cp=2 --set data.seq_len=24 --print-config
expect_fail 2 "pieces of 12 tokens, not a whole number of model.chunk (8) chunks" "a chunk-parallel piece not a whole number of chunks"
run "$mt" good.yaml --set train.device=cuda --print-config
if grep -q 'define HAVE_CUDA 1' "$top_builddir/autoconfig.h"; then tap_ok 0 "cuda accepted by a CUDA build"; else
    expect_fail 2 "built without CUDA" "device cuda refused by a CPU-only build"; fi
run "$mt" good.yaml --set nonsense --print-config
expect_fail 2 "--set nonsense: expected section.key=value" "malformed --set"
run "$mt" good.yaml --set model.width=3 --print-config
expect_fail 2 "unknown key 'model.width'" "--set of an unknown key"
run "$mt" good.yaml --set data.path=/nonexistent/dataset
expect_fail 2 "--set data.path=/nonexistent/dataset: data.path: /nonexistent/dataset: no such dataset (.*--set data.path=DIR)" \
    "missing dataset folder: exit 2 naming it, the key and how to set it"
mkdir texts && echo "some text" >texts/a.txt
run "$mt" good.yaml --set data.path=texts
expect_fail 2 "data.path: texts holds no dataset shards .*megadata build" "a folder of text files: says to run megadata build"
"$top_builddir/megadata" build bytes texts --val-fraction 0 >/dev/null
run "$mt" good.yaml --set data.path=bytes
expect_fail 2 "model.vocab_size: 64 is smaller than the dataset's vocabulary (257)" \
    "a dataset whose vocabulary (257) does not fit model.vocab_size (64): exit 2"

# dump: every micro-batch's logits (the model holds one micro-batch), train.threads honoured
sed 's/batch_size: 2/batch_size: 4/' good.yaml >dump.yaml
run "$mt" dump dump.yaml mb1.h5
run env OMP_NUM_THREADS=1 "$mt" dump dump.yaml mb2.h5 --set parallel.micro_batches=2 --set train.threads=2
tap_ok $([ $rc -eq 0 ] && grep -q 'in 2 micro-batches, cpu, 2 threads' out && echo 0 || echo 1) "dump takes train.threads (2, with OMP_NUM_THREADS=1)"
# Logits to fp32 rounding, not bit for bit: OpenBLAS's sgemm may sum a row's products in another
# order when the matrix has fewer rows (seen with 0.3.21 on an AMD EPYC: 1.2e-6 apart), while a
# row dropped, repeated or mixed up is off by the logits' own size.
$PYTHON_REF -c '
import sys, h5py, numpy as np
a, b = h5py.File("mb1.h5", "r"), h5py.File("mb2.h5", "r")
x, y = a["logits"][...], b["logits"][...]
close = x.shape == y.shape and np.isfinite(y).all() and np.abs(x - y).max() <= 1e-5 * max(1.0, np.abs(x).max())
sys.exit(0 if np.array_equal(a["tokens"][...], b["tokens"][...]) and close and abs(a["loss"][()] - b["loss"][()]) < 1e-6 else 1)'
tap_ok $? "dump with 2 micro-batches: the same tokens, logits (every row, to fp32 rounding) and loss as with 1"

# train.graph (the default): a job of one rank says it runs each micro-batch as a graph and learns
# the same as without; several ranks run without, and their first line says nothing of graphs
run "$mt" good.yaml --set train.graph=false
grep '^step' out | cut -d'|' -f2 >losses-plain
run "$mt" good.yaml
tap_ok $([ $rc -eq 0 ] && grep -q "steps 1 to 3; each micro-batch's forward and backward as one graph" out err &&
    [ "$(grep '^step' out | cut -d'|' -f2)" = "$(cat losses-plain)" ] && [ -s losses-plain ] && echo 0 || echo 1) \
    "train.graph on one rank: announced, the same losses as without"
run timeout 60 $MPIRUN -np 2 "$mt" good.yaml
tap_ok $([ $rc -eq 0 ] && ! cat out err | grep -q "graph" && echo 0 || echo 1) \
    "train.graph on 2 ranks: runs without, and the first line does not claim graphs (exit $rc)"

# under mpirun: one message, exit 2, nobody hangs
run timeout 60 $MPIRUN -np 3 "$mt" good.yaml --set parallel.cp=2
n=$(grep -c "does not divide the 3 ranks" err)
tap_ok $([ $rc -eq 2 ] && [ "$n" -eq 1 ] && echo 0 || echo 1) "mpirun -np 3 with cp 2: printed once, exit 2 (got exit $rc, $n messages)"
run timeout 60 $MPIRUN -np 2 "$mt" good.yaml --set data.path=/nonexistent/dataset
n=$(grep -c "/nonexistent/dataset" err)
tap_ok $([ $rc -eq 2 ] && [ "$n" -ge 1 ] && echo 0 || echo 1) "mpirun -np 2 with a missing dataset: exit 2 (got exit $rc)"

# a rank that meets a damaged chunk of tokens in the middle of training (its Fletcher-32 checksum
# fails when a window is read from it) takes the job down, the other rank waiting in a collective:
# exit 2 naming the file, well before the timeout. About 1 MB of text makes ~60 chunks of 16K
# tokens; 4 bytes in the middle of the file spoil one, which a rank reads within the first few
# dozen steps.
$PYTHON_REF -c '
import random
r = random.Random(5)
words = ["stone", "river", "lamp", "quiet", "north", "bread", "ember", "glass"]
with open("big.txt", "w") as f:
    for _ in range(20000):
        f.write(" ".join(r.choice(words) for _ in range(8)) + "\n")'
run "$top_builddir/megadata" build damaged big.txt --val-fraction 0
size=$(stat -c %s damaged/train-00000.h5)
$PYTHON_REF -c '
import sys
path, at = sys.argv[1], int(sys.argv[2]) // 2
with open(path, "r+b") as f:
    f.seek(at)
    b = bytearray(f.read(4))
    f.seek(at)
    f.write(bytes(x ^ 0x5a for x in b))' damaged/train-00000.h5 "$size"
run timeout 120 $MPIRUN -np 2 "$mt" good.yaml --set data.path=damaged --set model.vocab_size=0 \
    --set train.steps=100000 --set log.every=1
n=$(grep -c "train-00000.h5: HDF5 error in H5Dread" err)
last=$(sed -n 's|^step *\([0-9]*\)/.*|\1|p' out | tail -1)
tap_ok $([ $rc -eq 2 ] && [ "$n" -ge 1 ] && echo 0 || echo 1) \
    "a damaged chunk met at step ${last:-0} under mpirun -np 2: exit $rc (2), the file named ($n message(s))"
tap_done
