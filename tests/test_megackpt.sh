# test_megackpt.sh: megackpt's command line: help, ls (order, layout, leftovers, damage), verify of
# a good checkpoint and of a flipped bit in tp rank 1's copy of an unsplit tensor, reshard (exact:
# its export is byte-identical to the source's; layout checks; never overwrites), export/import
# round trip (import for tp 2 pp 2 too), and every kind of bad argument or file: exit 2 with one
# message naming it. Outputs: export replaces only a regular file (never a device, FIFO, folder or
# symlink); a write that fails (a file size limit, /dev/full as standard output) exits 2 naming
# the file, leaving no output behind.
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

run "$mc" --help
tap_ok $([ $rc -eq 0 ] && grep -q '^usage: megackpt ls DIR' out && echo 0 || echo 1) "--help: usage, exit 0"
run "$mc" --version
tap_ok $([ $rc -eq 0 ] && grep -q '^megackpt [0-9]' out && echo 0 || echo 1) "--version"
for c in ls verify reshard export import; do
    run "$mc" $c --help
    tap_ok $([ $rc -eq 0 ] && grep -q "^usage: megackpt $c " out && echo 0 || echo 1) "$c --help"
done
run "$mc"
expect_fail 2 "megackpt: error: no command given" "no command: exit 2"
run "$mc" list ck
expect_fail 2 "unknown command 'list'" "unknown command: exit 2"

run "$mt" run.yaml --set train.steps=4 --set checkpoint.every=2 --set checkpoint.dir=ck --set log.metrics=m.jsonl
tap_ok $rc "a 4-step run with checkpoints at steps 2 and 4"
mkdir ck/.step-00000006.tmp ck/step-00000005
: >ck/step-00000005/meta.h5
echo junk >ck/notes.txt
run "$mc" ls ck
awk 'NR > 1 && $1 ~ /^[0-9]+$/ { printf "%s %s,", $1, $(NF - 1) }' out >rows.txt
tap_ok $([ $rc -eq 0 ] && [ "$(cat rows.txt)" = "6 incomplete,5 damaged,4 complete,2 complete," ] && echo 0 || echo 1) \
    "ls: newest first, with the leftover and the damaged folder ($(cat rows.txt))"
grep -q '^ *4  tp1 pp1 dp1 cp1 .* complete  *ck/step-00000004$' out && grep -q 'ck/step-00000005/meta.h5: not a readable HDF5' out
tap_ok $? "ls: layout, path, and why a folder is damaged"
sed 's/^/# /' out
rm -r ck/step-00000005 ck/.step-00000006.tmp
run "$mc" ls ck/step-00000002
tap_ok $([ $rc -eq 0 ] && grep -q ' 2  tp1 pp1 dp1 cp1 .* complete  *ck/step-00000002$' out && echo 0 || echo 1) "ls of one checkpoint folder"
run "$mc" ls nowhere
expect_fail 2 "nowhere: cannot open the folder" "ls of a missing folder: exit 2"

run "$mc" verify ck/step-00000004
tap_ok $([ $rc -eq 0 ] && grep -q 'ck/step-00000004: good (step 4' out && echo 0 || echo 1) "verify: a good checkpoint, exit 0"
run "$mc" verify ck
expect_fail 2 "ck is a run folder of 2 checkpoint(s); name one of them (newest: ck/step-00000004)" "verify of a run folder: exit 2"
run "$mc" verify
expect_fail 2 "verify: CKPT (a checkpoint folder) missing" "verify without a path: exit 2"
run "$mc" verify ck/step-00000004 more
expect_fail 2 "verify: unexpected argument 'more'" "verify with an extra argument: exit 2"
run "$mc" verify nowhere
expect_fail 2 "nowhere: no such checkpoint folder" "verify of a missing folder: exit 2"

# reshard
run "$mc" reshard ck/step-00000004 rs/tp2pp2 --tp 2 --pp=2
ok=$rc
run "$mc" ls rs/tp2pp2
tap_ok $((ok + rc + $(grep -c ' 4  tp2 pp2 dp1 cp1 .* complete' out) - 1)) "reshard to tp 2 pp 2 (a new folder under a new parent)"
tap_ok $([ "$(ls rs/tp2pp2)" = "$(printf 'meta.h5\nrank-00000.h5\nrank-00001.h5\nrank-00002.h5\nrank-00003.h5')" ] &&
    echo 0 || echo 1) "... one rank file per (stage, tp rank)"
run "$mc" reshard rs/tp2pp2 rs/back
run "$mc" export ck/step-00000004 a.safetensors
ok=$rc
run "$mc" export rs/back b.safetensors
ok=$((ok + rc))
run "$mc" export rs/tp2pp2 c.safetensors
tap_ok $((ok + rc)) "export of the source and of the resharded checkpoints"
cmp -s a.safetensors b.safetensors && cmp -s a.safetensors c.safetensors
tap_ok $? "... byte-identical: resharding there and back copies every value exactly"
run "$mc" reshard ck/step-00000004 rs/tp2pp2 --tp 2
expect_fail 2 "rs/tp2pp2 exists; give a new path" "reshard onto an existing path: exit 2"
ln -s nowhere rs/dangling
run "$mc" reshard ck/step-00000004 rs/dangling
expect_fail 2 "rs/dangling exists; give a new path" "reshard onto a dangling symlink: exit 2"
tap_ok $([ -L rs/dangling ] && [ ! -e nowhere ] && echo 0 || echo 1) "... which stays a symlink to nothing"
run "$mc" verify rs/tp2pp2
tap_ok $rc "... and leaves it alone"
# a flipped bit in the first slice of (stage 0, tp rank 1)'s file: the embedding's shard 1
cp -r rs/tp2pp2 rs/flip
flip rs/flip/rank-00001.h5 adam_v 2 1
run "$mc" verify rs/flip
expect_fail 2 "rs/flip/rank-00001.h5: adam_v/embed.weight, elements 0 to [0-9]* of shard 1: checksum mismatch" \
    "verify: a flipped bit in tp rank 1's shard of the embedding: exit 2 naming file, tensor and elements"
run "$mc" reshard ck/step-00000004 rs/x --tp 3
expect_fail 2 "\-\-tp 3 must divide the model's n_heads (2)" "reshard --tp 3 on 2 heads: exit 2"
run "$mc" reshard ck/step-00000004 rs/x --pp 5
expect_fail 2 "\-\-pp 5: the model has 4 layers" "reshard --pp 5 on 4 layers: exit 2"
run "$mc" reshard ck/step-00000004 rs/x --tp two
expect_fail 2 "\-\-tp 'two': expected an integer" "reshard --tp two: exit 2"
run "$mc" reshard ck/step-00000004 rs/x --tp
expect_fail 2 "\-\-tp needs a value" "reshard --tp without a value: exit 2"
run "$mc" reshard ck/step-00000004 rs/x --dp 2
expect_fail 2 "reshard: unknown option '--dp'" "reshard --dp: exit 2"
run "$mc" reshard ck/step-00000004
expect_fail 2 "reshard: OUT (the new checkpoint folder) missing" "reshard without OUT: exit 2"

# export and import
run "$mc" export ck/step-00000004 nowhere/w.safetensors
expect_fail 2 "nowhere/w.safetensors.tmp: cannot create" "export into a missing folder: exit 2"
run "$mc" import a.safetensors imp --config run.yaml
ok=$rc
run "$mc" verify imp
ok=$((ok + rc))
run "$mc" export imp d.safetensors
ok=$((ok + rc))
hdr() { od -An -t u8 -N 8 "$1" | tr -d ' '; }
# the data sections (after 8 + header bytes) agree; the metadata differs (step 0, the config)
tail -c +$(($(hdr a.safetensors) + 9)) a.safetensors >a.data
tail -c +$(($(hdr d.safetensors) + 9)) d.safetensors >d.data
tap_ok $((ok + $(cmp -s a.data d.data; echo $?))) "import of the export, verified, exports the same tensors"
# for tp 2 pp 2: every shard file's parameter table is freed after it (once a use after free)
run "$mc" import a.safetensors imp22 --config run.yaml --set parallel.tp=2 --set parallel.pp=2
ok=$rc
run "$mc" verify imp22
ok=$((ok + rc))
run "$mc" export imp22 e.safetensors
tail -c +$(($(hdr e.safetensors) + 9)) e.safetensors >e.data
tap_ok $((ok + rc + $(cmp -s a.data e.data; echo $?))) "import for tp 2 pp 2, verified, exports the same tensors"
tap_ok $([ "$(ls imp22)" = "$(ls rs/tp2pp2)" ] && echo 0 || echo 1) "... in one rank file per (stage, tp rank)"
run "$mc" import a.safetensors imp2
expect_fail 2 "import: --config RUN.yaml missing" "import without --config: exit 2"
run "$mc" import a.safetensors imp2 --config run.yaml --set model.d_model=64
expect_fail 2 "a.safetensors: .* tensor(s) missing or not as the run file's model has them" "import for another model: exit 2"
grep -q '  embed.weight: F32 \[64, 32\], expected F32 \[64, 64\]' "$tap_tmp/err"
tap_ok $? "... naming each tensor with its shape and the expected one"
tap_ok $([ ! -e imp2 ] && echo 0 || echo 1) "... and writing nothing"
run "$mc" import a.safetensors imp2 --config run.yaml --set parallel.tp=4096 --set parallel.pp=4096 --set parallel.cp=256
expect_fail 2 "tp \* pp \* cp = 4294967296 ranks" "import for a layout whose rank count overflows an int: exit 2"
run "$mc" import missing.safetensors imp2 --config run.yaml
expect_fail 2 "missing.safetensors: cannot open" "import of a missing file: exit 2"

# export replaces only a regular file: a device (made here when root may, else /dev/full itself,
# which others cannot replace), a FIFO, a folder, a symlink (and its target) stay as they are
dev=full
mknod $dev c 1 7 2>/dev/null || dev=/dev/full
mkfifo fifo
mkdir folder
echo target >target
ln -s target link
for out in $dev fifo folder link; do
    kind=$(stat -c %F $out)
    run "$mc" export ck/step-00000004 $out
    expect_fail 2 "$out is a .*: only a regular file is replaced" "export onto $out ($kind): exit 2"
done
[ -c $dev ] && [ -p fifo ] && [ -d folder ] && [ -L link ] && [ "$(cat target)" = target ]
tap_ok $? "... each left as it was"
ln -s target new.safetensors.tmp
run "$mc" export ck/step-00000004 new.safetensors
expect_fail 2 "new.safetensors.tmp is a symbolic link" "export whose OUT.tmp is a symlink: exit 2"
tap_ok $([ "$(cat target)" = target ] && [ ! -e new.safetensors ] && echo 0 || echo 1) "... its target untouched"
cp a.safetensors old.safetensors && echo leftover >old.safetensors.tmp
run "$mc" export rs/tp2pp2 old.safetensors
tap_ok $((rc + $(cmp -s a.safetensors old.safetensors; echo $?))) \
    "export over a regular file (and a leftover OUT.tmp) replaces it"
tap_ok $([ ! -e old.safetensors.tmp ] && echo 0 || echo 1) "... leaving no OUT.tmp"
# a write that fails: exit 1 naming the file, nothing left (SIGXFSZ ignored: the write fails instead)
(ulimit -f 16 && trap '' XFSZ && exec "$mc" export ck/step-00000004 big.safetensors) >"$tap_tmp/out" 2>"$tap_tmp/err"
rc=$?
expect_fail 2 "big.safetensors.tmp: cannot write: File too large" "export past a file size limit: exit 2"
tap_ok $([ ! -e big.safetensors ] && [ ! -e big.safetensors.tmp ] && echo 0 || echo 1) "... leaving no file"
(ulimit -f 16 && trap '' XFSZ && exec "$mc" reshard ck/step-00000004 big) >"$tap_tmp/out" 2>"$tap_tmp/err"
rc=$?
expect_fail 2 "big.tmp/rank-00000.h5: HDF5 error" "reshard past a file size limit: exit 2 naming the file"
tap_ok $([ ! -e big ] && echo 0 || echo 1) "... and no checkpoint at OUT"
"$mc" ls ck >/dev/full 2>"$tap_tmp/err"
rc=$?
expect_fail 2 "standard output: cannot write: No space left on device" "ls into /dev/full: exit 2"

# damaged safetensors files, made from the good one
$PYTHON_REF - <<'P'
import json, struct
raw = open("a.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head, data = json.loads(raw[8:8 + n]), raw[8 + n:]
def write(name, h, d=data, pad=True):
    text = json.dumps(h).encode()
    text += b" " * (-len(text) % 8 if pad else 0)
    open(name, "wb").write(struct.pack("<Q", len(text)) + text + d)
h = dict(head); del h["layers.2.mega.wz.bias"]; write("missing.st", h)
h = json.loads(json.dumps(head)); h["output.final_norm.bias"]["dtype"] = "F16"
h["output.final_norm.bias"]["data_offsets"][1] -= 64; write("dtype.st", h)
h = dict(head); h["extra.weight"] = dict(head["output.final_norm.bias"]); write("overlap.st", h)
open("truncated.st", "wb").write(raw[:len(raw) - 100])
open("short.st", "wb").write(raw[:5])
open("badjson.st", "wb").write(struct.pack("<Q", 16) + b'{"a": [1, 2}    ' + data)
open("biglen.st", "wb").write(struct.pack("<Q", 1 << 40) + raw[8:])
P
bad() { # bad FILE PATTERN DESCRIPTION
    run "$mc" import "$1" imp2 --config run.yaml
    expect_fail 2 "$2" "import: $3: exit 2"
}
bad missing.st "^  layers.2.mega.wz.bias: missing (expected F32 \[16\])" "a tensor missing (named)"
bad dtype.st "output.final_norm.bias: F16 \[32\], expected F32 \[32\]" "a tensor of another dtype"
bad overlap.st "overlap.st: not a valid safetensors file: overlapping data of two tensors: extra.weight" "overlapping data"
bad truncated.st "truncated.st: not a valid safetensors file: data_offsets .* (truncated?): " "a truncated file"
bad short.st "short.st: not a valid safetensors file: shorter than the 8-byte header length" "a 5-byte file"
bad badjson.st "badjson.st: not a valid safetensors file: byte 12 of the JSON header: expected" "a malformed header"
bad biglen.st "biglen.st: not a valid safetensors file: the header length (first 8 bytes) is out of range" "a huge header length"
tap_done
