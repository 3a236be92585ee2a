# test_sweep.sh: a scaling sweep end to end on the CPU -- megasweep writes the run files of a grid
# (2 sizes x 2 layouts x 2 sequence lengths), megatrain runs each from its file on its ranks, and
# megaplot turns the 8 logs into plots and a table holding the logs' numbers -- plus the paper's run
# files in jobs/paper: current with jobs/paper-sweep.sh and valid for their GPU counts.
. "$top_srcdir/tests/tap.sh"
# in a sanitizer build (ASan + UBSan) a report ends the tool with an error status, so the check
# that looks at the status fails and shows the report; every run's status is checked
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
ms="$top_builddir/megasweep"
mt="$top_builddir/megatrain"
mp="$top_builddir/megaplot"
cd "$tap_tmp" || exit 1
# check DESCRIPTION CONDITION: one TAP check that the shell condition holds, stderr shown if not
check() {
    if eval "$2"; then tap_ok 0 "$1"; else
        tap_ok 1 "$1"
        sed 's/^/#   /' "$tap_tmp/err" | head -5
    fi
}

run "$ms" --help
check "--help prints the usage, exit 0" '[ $rc -eq 0 ] && grep -q "^usage: megasweep" out'

# peak_tflops makes MFU defined on the CPU (any value: the plot only needs numbers)
cat >base.yaml <<'Y'
model: {vocab_size: 64, n_layers: 1, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}
data: {seq_len: 32, batch_size: 4}
train: {steps: 4, seed: 7}
log: {every: 1, peak_tflops: 0.01}
Y
run "$ms" base.yaml -o sweep --size s32:model.d_model=32 --size s64:model.d_model=64,model.n_layers=2 \
    --layout 1 --layout 2 --vary data.seq_len=16,32 --batch-tokens 128
check "megasweep writes the grid (exit $rc)" '[ $rc -eq 0 ] && [ "$(ls sweep/*.yaml | wc -l)" -eq 8 ]'
check "names: size, ranks, varied key and value" '[ -f sweep/s64-2-seq_len16.yaml ] && [ -f sweep/s32-1-seq_len32.yaml ]'
check "manifest: header and a row per run, with ranks and the batch from --batch-tokens" \
    '[ "$(wc -l <sweep/sweep.tsv)" -eq 9 ] && grep -q "^s64-2-seq_len16	2	2	1	1	1	1	16	8$" sweep/sweep.tsv'
check "run file: the point's keys, its own metrics log, how it was made" \
    'grep -q "^  d_model: 64$" sweep/s64-2-seq_len16.yaml && grep -q "^  batch_size: 8$" sweep/s64-2-seq_len16.yaml &&
     grep -q "^  metrics: \"sweep/s64-2-seq_len16.jsonl\"$" sweep/s64-2-seq_len16.yaml &&
     grep -q "^# .*Grid point: size s64:model.d_model=64,model.n_layers=2; layout 2; data.seq_len=16" sweep/s64-2-seq_len16.yaml'
run $MPIRUN -np 2 "$mt" sweep/s64-2-seq_len16.yaml --print-config
grep -v '^#' out >printed.yaml
check "megatrain reads a run file back to the same configuration" \
    '[ $rc -eq 0 ] && grep -v "^#" sweep/s64-2-seq_len16.yaml | cmp -s - printed.yaml'

# run the sweep from its files (mpirun must not eat the manifest on stdin)
fails=0
tail -n +2 sweep/sweep.tsv | {
    while IFS='	' read -r name ranks rest; do
        $MPIRUN -np "$ranks" "$mt" "sweep/$name.yaml" </dev/null >"$name.out" 2>&1 ||
            { echo "# $name failed:"; { grep -i -m 3 error "$name.out" || tail -3 "$name.out"; } | sed 's/^/#   /'; fails=1; }
    done
    exit $fails
}
sweep_rc=$?
check "megatrain runs all 8 from their run files" '[ $sweep_rc -eq 0 ] && [ "$(ls sweep/*.jsonl | wc -l)" -eq 8 ]'
check "each log's header has the layout its file planned" \
    'grep -q "\"layout\":{\"world\":2,\"dp\":2" sweep/s32-2-seq_len32.jsonl && grep -q "\"layout\":{\"world\":1,\"dp\":1" sweep/s64-1-seq_len16.jsonl'

run "$mp" --table csv -o plots sweep
cp out table.csv
check "megaplot: table of 8 runs and plots from the sweep (exit $rc)" '[ $rc -eq 0 ] && [ "$(wc -l <table.csv)" -eq 9 ]'
for p in loss throughput mfu; do
    check "$p.png and $p.svg drawn" \
        '[ "$(od -An -tx1 -N8 plots/$p.png | tr -d " \n")" = 89504e470d0a1a0a ] && grep -q "</svg>" plots/$p.svg'
done
# the table's numbers are the logs': last step, tokens and loss; mean tokens/s over steps 2-4
same=0
for log in sweep/*.jsonl; do
    name=$(basename "$log" .jsonl)
    want=$(awk -F'[:,}]' '/"type":"step"/ { for (i = 1; i < NF; i++) {
               if ($i == "\"step\"") s = $(i+1); if ($i == "\"tokens\"") t = $(i+1); if ($i == "\"loss\"") l = $(i+1);
               if ($i == "\"tokens_per_s\"" && s > 1) { sum += $(i+1); n++ } } }
           END { printf "%s %s %s %.9g", s, t, l, sum / n }' "$log")
    got=$(awk -F, -v run="$name" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
           $1 == run { printf "%s %s %s %s", $(c["steps"]), $(c["tokens"]), $(c["loss"]), $(c["tokens_per_s"]) }' table.csv)
    # equal to 1e-8 relative: the log and the table both print 9 significant digits
    awk -v a="$want" -v b="$got" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
        for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-8 * (x[i] < 0 ? -x[i] : x[i])) exit 1 } }' ||
        { same=1; echo "# $name: log $want, table $got"; }
done
check "the table's steps, tokens, loss and mean tokens/s are the logs'" '[ $same -eq 0 ]'
check "every run: 4 steps of 128 tokens" '[ "$(sed 1d table.csv | cut -d, -f10,11 | sort -u)" = "4,512" ]'

# the manifest keeps other names and replaces rows of the same name
run "$ms" base.yaml -o sweep --size s32:model.d_model=32 --layout 4 --batch-tokens 128
first=$rc
run "$ms" base.yaml -o sweep --size s32:model.d_model=32 --layout 4 --batch-tokens 128
check "a second sweep into the folder: rows added once, sorted" \
    '[ $first -eq 0 ] && [ $rc -eq 0 ] && [ "$(wc -l <sweep/sweep.tsv)" -eq 10 ] &&
     [ "$(grep -c "^s32-4	" sweep/sweep.tsv)" -eq 1 ] && sed 1d sweep/sweep.tsv | cut -f1 | sort -c'

# the paper's run files: generated by jobs/paper-sweep.sh, current, valid for their GPU counts
run sh -c "cd '$top_srcdir' && MEGASWEEP='$ms' sh jobs/paper-sweep.sh '$tap_tmp/paper'"
check "jobs/paper-sweep.sh runs" '[ $rc -eq 0 ]'
run diff -r "$top_srcdir/jobs/paper" paper
check "jobs/paper/ is what jobs/paper-sweep.sh writes (regenerate it after changes)" '[ $rc -eq 0 ]'
check "jobs/paper: 3 sizes x 8, 64, 256 GPUs" \
    '[ "$(sed 1d paper/sweep.tsv | cut -f2 | sort -n | uniq -c | tr -s " " | tr "\n" ";")" = " 3 8; 3 64; 3 256;" ]'
valid=0
for f in "$top_srcdir"/jobs/paper/*.yaml; do
    name=$(basename "$f" .yaml)
    ranks=$(awk -v n="$name" '$1 == n { print $2 }' "$top_srcdir/jobs/paper/sweep.tsv")
    "$ms" --check "$f" --ranks "$ranks" >printed.yaml 2>err || { valid=1; echo "# $name:"; sed 's/^/#   /' err; }
    grep -v '^#' "$f" | cmp -s - printed.yaml || { valid=1; echo "# $name: --check prints another config"; }
done
check "every paper run file checks for its own GPU count and is already resolved" '[ $valid -eq 0 ]'
check "the paper's hyper-parameters" \
    'f=paper/paper7B-256-cp2.yaml; grep -q "^  lr: 0.00035$" $f && grep -q "^  beta2: 0.95$" $f &&
     grep -q "^  warmup_steps: 2500$" $f && grep -q "^  seq_len: 32768$" $f && grep -q "^  batch_size: 128$" $f &&
     grep -q "^  chunk: 4096$" $f && grep -q "^  rope_base: 100000" $f && grep -q "^  tokens: 2000000000000$" $f'
run "$ms" --check "$top_srcdir/jobs/paper/paper7B-256-cp2.yaml" --ranks 5
check "--check: a GPU count the layout does not fit is refused, exit 2" '[ $rc -eq 2 ] && grep -q "does not divide the 5 ranks" err'
run "$ms" --check "$top_srcdir/jobs/paper/paper7B-256-cp2.yaml" --ranks 128
check "--check: the same file also fits 128 GPUs (dp 64)" '[ $rc -eq 0 ] && grep -q "^  cp: 2$" out'
run "$ms" --check "$top_srcdir/jobs/paper/mega200M-8-mb4.yaml" --ranks 64
check "--check: batch not divisible by dp x micro-batches, exit 2" \
    '[ $rc -eq 2 ] && grep -q "data.batch_size: 128 is not a multiple of data-parallel ranks (64) x parallel.micro_batches (4)" err'

# bad input: exit 2 naming the option or the grid point
bad() { # bad PATTERN DESCRIPTION ARGS...
    pattern=$1 desc=$2
    shift 2
    run "$ms" "$@"
    expect_fail 2 "$pattern" "$desc"
}
bad "megasweep: s32-3-cp2: error: .*does not divide the 3 ranks" "a layout that does not fit its ranks names the point" \
    base.yaml -o bad --size s32:model.d_model=32 --layout 3:cp=2
bad "batch-tokens 100 is not a multiple of data.seq_len (32)" "--batch-tokens not a multiple of the sequence" \
    base.yaml -o bad --batch-tokens 100
bad "unknown key 'model.width'" "unknown key in a size" base.yaml -o bad --size a:model.width=3
bad "'model.d_model' is not a key=value assignment" "assignment without a value" base.yaml -o bad --size a:model.d_model
bad "--layout 'two': expected an integer" "layout without ranks" base.yaml -o bad --layout two
bad "two grid points are named base-2" "two points of the same name" base.yaml -o bad --layout 2 --layout 2:model.d_model=64
bad "--vary 'seq_len=1,2': expected section.key" "--vary without a section" base.yaml -o bad --vary seq_len=1,2
bad "model.preset: unknown preset 'mega9B'" "unknown preset as a size" base.yaml -o bad --size mega9B
bad "no output folder given" "no -o" base.yaml
bad "--check needs --ranks" "--check without --ranks" --check base.yaml
bad "model.vocab_size: needs a value" "no vocabulary size" base.yaml -o bad --set model.vocab_size=0
tap_done
