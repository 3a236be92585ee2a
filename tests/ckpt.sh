# ckpt.sh: shared by the checkpoint tests (sourced after tap.sh, in $tap_tmp): the programs, a tiny
# run file that every layout of up to 4 ranks can run, reading and comparing metrics logs, and
# damaging a tensor in a shard file.
mt="$top_builddir/megatrain"
mc="$top_builddir/megackpt"

# A tiny MEGALODON (4 layers, so up to 4 pipeline stages; 2 heads, d_model 32, for tp 2; 2 chunks
# of 8 tokens per rank under cp 2) with a tied embedding. The optimizer is set so that runs
# under different layouts stay within fp32 rounding of each other: a constant learning rate (the
# cosine schedule depends on train.steps, which the tests vary) and AdamW eps 1e-3 (with 1e-8
# Adam divides rounding-level gradients by their own size and layouts drift apart by 1e-3
# within 3 steps; with 1e-3 they agree to 4e-8 over 16 steps, measured).
ckpt_runfile() { # ckpt_runfile FILE
    cat >"$1" <<'Y'
model: {vocab_size: 64, n_layers: 4, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48,
        chunk: 8, groups: 4, cema_ndim: 2, share_emb: true}
data: {seq_len: 32, batch_size: 4}
optimizer: {lr: 0.01, eps: 1.0e-3}
schedule: {warmup_steps: 1, decay: constant}
train: {steps: 4, seed: 11}
log: {every: 1000}
checkpoint: {keep_last: 100}
Y
}

# ckpt_text_data DIR: the text fixture as a dataset with a validation split, a check
ckpt_text_data() {
    run "$top_builddir/megadata" build "$1" "$top_srcdir/tests/data/text" --val-fraction 0.3
    tap_ok $rc "a small text dataset with a validation split"
}

# steps LOG: "step loss grad_norm" of every step record, as written (%.9g)
steps() {
    sed -n 's/.*"type":"step","step":\([0-9]*\),"tokens":[0-9]*,"loss":\([^,]*\),"lr":[^,]*,"grad_norm":\([^,]*\),.*/\1 \2 \3/p' "$1"
}

# full_and_resumed NAME ARGS...: under mpirun -np 2, run.yaml with ARGS for 6 steps with
# checkpoints at steps 3 and 6 (NAME-full/, NAME-full.jsonl), then the same run resumed from its
# step-3 checkpoint (NAME-resumed/, NAME-resumed.jsonl), a check each; leaves steps 4-6 of both in
# full.txt and resumed.txt, and their later evaluations in full-eval.txt and resumed-eval.txt
full_and_resumed() {
    name=$1
    shift
    run $MPIRUN -np 2 "$mt" run.yaml "$@" --set train.steps=6 --set checkpoint.dir=$name-full \
        --set checkpoint.every=3 --set log.metrics=$name-full.jsonl
    tap_ok $rc "$name: 6 steps uninterrupted, checkpoints at steps 3 and 6"
    run $MPIRUN -np 2 "$mt" run.yaml "$@" --set train.steps=6 --set checkpoint.dir=$name-resumed \
        --set checkpoint.resume=$name-full/step-00000003 --set log.metrics=$name-resumed.jsonl
    grep -q "resumed from $name-full/step-00000003 (step 3," "$tap_tmp/out"
    tap_ok $(($? + rc)) "$name: the same run resumed from its step-3 checkpoint"
    steps $name-full.jsonl | sed -n '4,$p' >full.txt
    steps $name-resumed.jsonl >resumed.txt
    grep '"type":"eval"' $name-full.jsonl | sed -n '2,$p' | cut -d, -f2- >full-eval.txt
    grep '"type":"eval"' $name-resumed.jsonl | cut -d, -f2- >resumed-eval.txt
}

# compare REF LOG LOSS_TOL NORM_TOL: every step of LOG has the loss and gradient norm of the same
# step of REF within the relative tolerances (and there is at least one); sets $worst to the
# largest differences seen
compare() {
    steps "$1" >"$tap_tmp/ref.txt"
    steps "$2" >"$tap_tmp/got.txt"
    worst=$(awk -v lt="$3" -v gt="$4" '
        NR == FNR { loss[$1] = $2; norm[$1] = $3; next }
        function rel(a, b) { d = (a - b) / b; return d < 0 ? -d : d }
        { n++; if (!($1 in loss)) bad = 1; else {
              l = rel($2, loss[$1]); g = rel($3, norm[$1])
              if (l > wl) wl = l; if (g > wg) wg = g; if (l > lt || g > gt) bad = 1 } }
        END { printf "loss %.1e, grad norm %.1e%s", wl, wg, n ? "" : ", no steps"; exit bad || !n }' \
        "$tap_tmp/ref.txt" "$tap_tmp/got.txt")
}

# flip FILE DATASET BYTE MASK: xor byte BYTE of a dataset's data, in place in the HDF5 file
flip() {
    $PYTHON_REF - "$@" <<'P'
import sys, h5py
path, name, byte, mask = sys.argv[1:]
with h5py.File(path, "r") as f:
    at = f[name].id.get_offset() + int(byte)
with open(path, "r+b") as f:
    f.seek(at)
    b = f.read(1)[0]
    f.seek(at)
    f.write(bytes([b ^ int(mask)]))
P
}

# flip_attr FILE ATTR MASK: xor the int64 value of root attribute ATTR with MASK, in place; fails
# unless that changed exactly one byte of the file (a bit flip in the stored value, nothing else)
flip_attr() {
    $PYTHON_REF - "$@" <<'P'
import sys, h5py
path, name, mask = sys.argv[1], sys.argv[2], int(sys.argv[3])
before = open(path, "rb").read()
with h5py.File(path, "r+") as f:
    v = f.attrs[name].copy()
    v[0] ^= mask
    f.attrs.modify(name, v)
after = open(path, "rb").read()
sys.exit(len(before) != len(after) or sum(a != b for a, b in zip(before, after)) != 1)
P
}
