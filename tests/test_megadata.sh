# test_megadata.sh: the megadata command line. Help and bad flags; build, info and verify on the
# text fixture in tests/data/text (tokens = its bytes plus one EOD per file); splits that add up;
# refusing to overwrite, --force and --append; raw token files; verify naming a truncated and a
# corrupted shard with exit 2; the manifest: a deleted shard, a dataset without one, and
# `megadata manifest`; a FIFO named like a shard (exit 2, not a hang).
. "$top_srcdir/tests/tap.sh"
megadata="$top_builddir/megadata"
text="$top_srcdir/tests/data/text"
out="$tap_tmp/ds"

# expect_out PATTERN DESCRIPTION: the last run exited 0 and its stdout matches PATTERN
expect_out() {
    if [ "$rc" -eq 0 ] && grep -q -- "$1" "$tap_tmp/out"; then tap_ok 0 "$2"; else
        tap_ok 1 "$2"
        echo "# exit $rc, stdout and stderr:"; cat "$tap_tmp/out" "$tap_tmp/err" | sed 's/^/#   /' | head -8
    fi
}

# ---- help and bad flags
run "$megadata" --help
expect_out "usage: megadata COMMAND" "megadata --help"
for cmd in build info verify manifest; do
    run "$megadata" $cmd --help
    expect_out "usage: megadata $cmd" "megadata $cmd --help"
done
run "$megadata"
expect_fail 2 "usage: megadata" "no command: usage on stderr, exit 2"
run "$megadata" frobnicate
expect_fail 2 "unknown command 'frobnicate'" "an unknown command: exit 2"
run "$megadata" build "$out" "$text" --bogus
expect_fail 2 "unknown option '--bogus' (see megadata build --help)" "an unknown flag: exit 2"
run "$megadata" build "$out" "$text" --kind utf7
expect_fail 2 "kind 'utf7': expected text, uint16 or uint32" "a bad --kind: exit 2"
run "$megadata" build "$out" "$text" --val-fraction 1.5
expect_fail 2 "val-fraction '1.5': expected a number in \[0, 1)" "--val-fraction out of range: exit 2"
run "$megadata" build "$out" "$text" --shard-tokens 12x
expect_fail 2 "shard-tokens '12x': expected an integer" "a malformed number: exit 2"
run "$megadata" build "$out" "$text" --seed
expect_fail 2 "seed needs a value" "a flag without its value: exit 2"
run "$megadata" build "$out" "$text" --kind uint16
expect_fail 2 "kind uint16 needs --vocab" "raw tokens without --vocab: exit 2"
run "$megadata" build "$out" "$text" --vocab 300
expect_fail 2 "vocab and --eod are for raw token files" "--vocab with text: exit 2"
run "$megadata" build "$out"
expect_fail 2 "needs OUT_DIR and at least one INPUT" "build without inputs: exit 2"
run "$megadata" info
expect_fail 2 "needs the dataset folder" "info without a folder: exit 2"
run "$megadata" info "$tap_tmp/nowhere"
expect_fail 2 "nowhere: cannot open the dataset folder" "info on a missing folder: exit 2"
[ ! -e "$out" ]
tap_ok $? "no failed command created the output folder"

# ---- build, info, verify on the fixture
files=$(find "$text" -type f ! -name '.*' | wc -l)
bytes=$(find "$text" -type f ! -name '.*' -exec cat {} + | wc -c)
tokens=$((bytes + files))
run "$megadata" build "$out" "$text" --val-fraction 0 --shard-tokens 500
expect_out "train 3 shards, $tokens tokens, $files documents; val 0 shards" \
  "build: $files files give $tokens tokens (bytes + one EOD each) in 3 shards"
run "$megadata" info "$out"
expect_out "split train: 3 shards, $tokens tokens, $files documents, uint16" "info: shards, tokens, documents"
grep -q "^tokenizer  bytes" "$tap_tmp/out" && grep -q "^vocab      257" "$tap_tmp/out" && grep -q "^eod        256" "$tap_tmp/out"
tap_ok $? "info: tokenizer bytes, vocab 257, eod 256"
run "$megadata" verify "$out"
expect_out "split train: 3 shards, $tokens tokens, $files documents, unigram entropy [0-9.]* nats: ok" "verify: ok"

# ---- refusing to overwrite, --force, --append
run "$megadata" build "$out" "$text"
expect_fail 2 "not empty: give --force" "build refuses a non-empty OUT_DIR"
run "$megadata" build "$out" "$text" --force --val-fraction 0.3 --seed 5
train=$(sed -n 's/.*train [0-9]* shards, \([0-9]*\) tokens.*/\1/p' "$tap_tmp/out")
val=$(sed -n 's/.*val [0-9]* shards, \([0-9]*\) tokens.*/\1/p' "$tap_tmp/out")
[ "$rc" -eq 0 ] && [ "$val" -gt 0 ] && [ $((train + val)) -eq $tokens ] && [ ! -e "$out/train-00002.h5" ]
tap_ok $? "build --force replaces the shards; train $train + val $val = $tokens tokens"
run "$megadata" build "$out" "$text" --append --val-fraction 0
run "$megadata" info "$out"
expect_out "split train: 2 shards, $((train + tokens)) tokens" "build --append adds train-00001.h5 after the others"
run "$megadata" build "$out" "$tap_tmp/ds/train-00000.h5" --append --kind uint32 --vocab 100
expect_fail 2 "cannot append: it has vocab_size 257" "--append refuses another vocabulary"

# ---- raw tokens
printf '\001\000\002\000\003\000\377\000' >"$tap_tmp/t.u16"
run "$megadata" build "$tap_tmp/raw" "$tap_tmp/t.u16" --kind uint16 --vocab 256 --eod 255 --val-fraction 0
expect_out "train 1 shards, 4 tokens, 1 files" "raw uint16: 4 tokens"
run "$megadata" info "$tap_tmp/raw"
expect_out "tokenizer  raw" "raw: tokenizer raw"
run "$megadata" build "$tap_tmp/raw2" "$tap_tmp/t.u16" --kind uint16 --vocab 255
expect_fail 2 "t.u16: token 3 (byte offset 6) is 255, not below --vocab 255" "raw: an id >= --vocab is refused"

# ---- corrupted shards: verify names each bad file, exit 2
run "$megadata" build "$tap_tmp/bad" "$text" --val-fraction 0 --shard-tokens 400
cp "$tap_tmp/bad/train-00001.h5" "$tap_tmp/whole.h5"
size=$(wc -c <"$tap_tmp/whole.h5")
head -c $((size / 2)) "$tap_tmp/whole.h5" >"$tap_tmp/bad/train-00001.h5"
run "$megadata" verify "$tap_tmp/bad"
expect_fail 2 "train-00001.h5: HDF5 error in H5Fopen: truncated file" "verify: a truncated shard is named, exit 2"
grep -q "bad: 1 error" "$tap_tmp/err" && ! grep -q "train-0000[02]" "$tap_tmp/err" && ! grep -q HDF5-DIAG "$tap_tmp/err"
tap_ok $? "verify: only that file is reported, without HDF5's error dump"
cp "$tap_tmp/whole.h5" "$tap_tmp/bad/train-00001.h5"
# overwrite 4 bytes of the token data: where 16 text bytes stored as uint16 start
at=$(perl -0777 -ne 'print $-[0] if /(?:[ -~]\x00){16}/' "$tap_tmp/whole.h5")
printf 'XXXX' | dd of="$tap_tmp/bad/train-00001.h5" bs=1 seek=$((at + 8)) conv=notrunc 2>/dev/null
run "$megadata" verify "$tap_tmp/bad"
expect_fail 2 "train-00001.h5: HDF5 error in H5Dread: data error detected by Fletcher32 checksum (chunk 0, tokens 0..399)" \
  "verify: overwritten token bytes fail the chunk's Fletcher-32 checksum, exit 2, naming the chunk"

# ---- the manifest
cp "$tap_tmp/whole.h5" "$tap_tmp/bad/train-00001.h5"
[ -f "$tap_tmp/bad/manifest.h5" ] && [ -f "$out/manifest.h5" ] && [ ! -e "$tap_tmp/bad/manifest.h5.tmp" ]
tap_ok $? "build and build --append write manifest.h5"
run "$megadata" info "$tap_tmp/bad"
expect_out "^format     megatrain-dataset version 2, shards megatrain-tokens version 2" "info: the dataset format"
mv "$tap_tmp/bad/train-00001.h5" "$tap_tmp/middle.h5"
run "$megadata" verify "$tap_tmp/bad"
expect_fail 2 "train-00001.h5: missing: .*bad/manifest.h5 lists it" "verify: a deleted middle shard is named, exit 2"
grep -q "split train: 3 shards, .*: 1 BAD" "$tap_tmp/out"
tap_ok $? "verify: the missing shard counts as a bad one of its split"
run "$megadata" build "$tap_tmp/bad" "$text" --append
expect_fail 2 "train-00001.h5: missing" "build --append refuses a dataset that lost a shard, before writing"
[ ! -e "$tap_tmp/bad/train-00003.h5" ]
tap_ok $? "build --append wrote nothing"
mv "$tap_tmp/middle.h5" "$tap_tmp/bad/train-00001.h5"
rm "$tap_tmp/bad/manifest.h5"
run "$megadata" verify "$tap_tmp/bad"
expect_fail 2 "bad: no manifest.h5.*megadata manifest .*bad. checks every shard" \
  "verify: a dataset without a manifest (format version 1) is refused, saying how to upgrade"
run "$megadata" manifest "$tap_tmp/bad"
expect_out "bad/manifest.h5: 3 shards checked and added" "manifest: checks the 3 shards and lists them"
run "$megadata" verify "$tap_tmp/bad"
expect_out "split train: 3 shards, .*: ok" "verify: ok after megadata manifest"
run "$megadata" manifest "$tap_tmp/bad"
expect_out "bad/manifest.h5: 0 shards checked and added" "manifest again: nothing new to add"
run "$megadata" manifest "$tap_tmp/nowhere"
expect_fail 2 "nowhere: cannot open the dataset folder" "manifest on a missing folder: exit 2"

# ---- a FIFO named like a shard: exit 2, never a hang (timeout turns a hang into exit 124)
rm "$tap_tmp/bad/train-00002.h5"
mkfifo "$tap_tmp/bad/train-00002.h5"
for cmd in verify info manifest; do
    run timeout 60 "$megadata" $cmd "$tap_tmp/bad"
    expect_fail 2 "train-00002.h5: is a FIFO, expected a regular HDF5 file" "$cmd: a FIFO named like a shard, exit 2"
done
tap_done
