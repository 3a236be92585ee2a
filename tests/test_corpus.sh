# test_corpus.sh: megadata build on corpora as people have them, on several ranks, interrupted.
#  - JSON Lines (plain, gzip, several gzip members, a nested text field, a UTF-8 BOM, CRLF, blank
#    lines, \u0000), plain text, folders and quoted glob patterns: the stream is each document's
#    bytes and EOD, in input order, and doc_offsets mark every start
#  - malformed lines: exit 2 naming FILE:LINE (also in a part that starts in the middle of the
#    file), or with --on-bad-line skip each reported, skipped and counted
#  - bad files: truncated, corrupt or fake gzip, another compression, a pattern matching nothing,
#    a file listed twice: exit 2 naming the file
#  - mpirun -np 1, 2 and 4 (and another --part-bytes) write the same bytes: shards and manifest;
#    the progress line; the same with a SentencePiece model (trained on the corpus) and --bos
#  - a build killed in the middle of a part and in the middle of a shard leaves no manifest,
#    megatrain and megadata refuse the folder, and --resume (under another number of ranks)
#    finishes it to the same bytes; --resume with other options is refused
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
md="$top_builddir/megadata"

# ---- a small corpus: JSON Lines in several forms, plain text, a subfolder
mkdir -p in/sub in/.hidden
$PYTHON_REF - <<'P'
import gzip, json, random
random.seed(5)
words = "the quick brown fox jumps over a lazy dog caf\u00e9 \u6f22\u5b57 \U0001F642 tab\tend new\nline".split(" ")
def doc():
    return " ".join(random.choice(words) for _ in range(random.randint(0, 120)))
def lines(n, key="text"):
    out = []
    for i in range(n):
        rec = {"id": i, key: doc()} if key == "text" else {"id": i, "meta": {"text": doc(), "n": i}}
        out.append(json.dumps(rec, ensure_ascii=random.random() < 0.5))
    return out
l0 = lines(140)
open("in/a.jsonl", "w").write("\ufeff" + "\n".join(l0[:70]) + "\n\n  \n" + "\r\n".join(l0[70:]) + "\r\n")
l1 = lines(90)
open("in/b.jsonl.gz", "wb").write(gzip.compress(("\n".join(l1[:40]) + "\n").encode()) +
                                  gzip.compress(("\n".join(l1[40:])).encode()))
open("in/sub/c.txt", "w").write("a plain text file is one document\n\nwith two paragraphs\n")
open("in/sub/d.ndjson", "w").write(json.dumps({"text": "nul\u0000inside"}) + "\n")
open("in/.hidden/skip.jsonl", "w").write("not read\n")
open("nested.jsonl", "w").write("\n".join(lines(30, "meta")) + "\n")
P
cat >expect.py <<'P'
# expect.py DATASET [--text-field F] INPUT...: the dataset's train split (val 0) is the documents of
# the inputs in order, each followed by EOD 256, and doc_offsets mark each start
import glob, gzip, json, os, sys
import h5py, numpy as np
out, args = sys.argv[1], sys.argv[2:]
field = "text"
if args[0] == "--text-field":
    field, args = args[1], args[2:]
files = []
for a in args:
    if os.path.isdir(a):
        for root, dirs, names in os.walk(a):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files += [os.path.join(root, n) for n in names if not n.startswith(".")]
    else:
        files += sorted(glob.glob(a)) if any(c in a for c in "*?[") else [a]
files = sorted(files, key=lambda f: f.encode()) if len(args) == 1 and os.path.isdir(args[0]) else files
docs = []
for f in files:
    data = gzip.open(f).read() if f.endswith(".gz") else open(f, "rb").read()
    if f.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
        for line in data.decode("utf-8-sig").splitlines():
            if line.strip():
                v = json.loads(line)
                for k in field.split("."):
                    v = v[k]
                docs.append(v.encode())
    else:
        docs.append(data)
shards = sorted(glob.glob(out + "/train-*.h5"))
tokens = np.concatenate([h5py.File(s, "r")["tokens"][:] for s in shards])
offsets = np.concatenate([h5py.File(s, "r")["doc_offsets"][:] + i * len(h5py.File(shards[0], "r")["tokens"])
                          for i, s in enumerate(shards)])
want = np.concatenate([np.append(np.frombuffer(d, np.uint8).astype(np.uint16), 256) for d in docs])
starts = np.cumsum([0] + [len(d) + 1 for d in docs])[:-1]
ok = np.array_equal(tokens, want) and np.array_equal(offsets, starts)
print(("ok" if ok else "bad"), len(docs), "documents,", len(tokens), "tokens")
P

# the folder walks in byte order; expect.py lists the same files
run "$md" build ds in --val-fraction 0 --shard-tokens 3000
tap_ok $rc "build: JSON Lines, gzip, plain text and a subfolder (exit $rc)"
verdict=$($PYTHON_REF expect.py ds in)
tap_ok $(case $verdict in ok*) echo 0;; *) echo 1;; esac) \
    "the stream is every document's bytes and EOD in input order, doc_offsets at every start: $verdict"
grep -q "tokenizing 100.0% | .* MB | .* MB/s | 232 documents | .* tokens | done in" err
tap_ok $? "the progress line: input MB, MB/s, documents, tokens"

run "$md" build nest nested.jsonl 'in/*.jsonl*' --text-field meta.text --on-bad-line skip --val-fraction 0
tap_ok $rc "build: a nested --text-field, a quoted glob pattern (exit $rc)"
grep -q "in/a.jsonl:2: no member 'meta.text'" err && grep -q "230 malformed lines skipped" err
tap_ok $? "--on-bad-line skip: lines without the member are named FILE:LINE, skipped and counted"
run "$md" build nest2 nested.jsonl --text-field meta.text --val-fraction 0
verdict=$($PYTHON_REF expect.py nest2 --text-field meta.text nested.jsonl)
tap_ok $(case $verdict in ok*) echo 0;; *) echo 1;; esac) "--text-field meta.text reads the nested member: $verdict"

# ---- malformed lines
printf '{"text":"a"}\n{"text":"b"}\n{"text": 5}\n{"text":"c"}\nnot json\n{"text":{"x":1}}\n\n{"other":"d"}\n' >bad.jsonl
run "$md" build bad1 bad.jsonl
expect_fail 2 "bad.jsonl:3: member 'text' is a number, expected a string" "a malformed line: exit 2 naming FILE:LINE"
run "$md" build bad2 bad.jsonl --on-bad-line skip --val-fraction 0
grep -q "bad.jsonl:5: expected a JSON object" err && grep -q "bad.jsonl:6: member 'text' is an object or an array" err &&
    grep -q "bad.jsonl:8: no member 'text'" err && grep -q "warning: 4 malformed lines skipped" err &&
    grep -q "train 1 shards, 6 tokens, 3 documents" out
tap_ok $(($? + rc)) "--on-bad-line skip: each named, 4 skipped and counted, 3 documents kept"
# a bad line far into a file cut into parts of 1000 bytes: its line number is the file's
$PYTHON_REF -c '
import json
lines = [json.dumps({"text": "line %d" % i}) for i in range(1, 400)]
lines[311] = "{broken"
open("long.jsonl", "w").write("\n".join(lines) + "\n")'
run "$md" build bad3 long.jsonl --part-bytes 1000 --val-fraction 0
expect_fail 2 "long.jsonl:312: expected" "a malformed line in a part that starts mid-file: its line number in the file"
run "$md" build bad3 long.jsonl --part-bytes 1000 --val-fraction 0
expect_fail 2 "output folder is not empty: a build was interrupted here .* give --resume" \
    "the stopped build's folder: a new build is refused, saying --resume or --force"
run "$md" build bad3 long.jsonl --part-bytes 1000 --on-bad-line skip --resume --val-fraction 0
grep -q "long.jsonl:312:" err && grep -q "train 1 shards, 3474 tokens, 398 documents" out
tap_ok $(($? + rc)) "--resume with --on-bad-line skip finishes it: 398 of 399 lines"

# ---- bad files
head -c 2000 in/b.jsonl.gz >cut.jsonl.gz
run "$md" build g1 cut.jsonl.gz
expect_fail 2 "cut.jsonl.gz: gzip data cut short after" "a truncated gzip file: exit 2 naming it"
cp in/a.jsonl fake.jsonl.gz
run "$md" build g2 fake.jsonl.gz
expect_fail 2 "fake.jsonl.gz: named .gz but not gzip data" "a .gz file that is not gzip: exit 2"
$PYTHON_REF -c '
import gzip
d = bytearray(gzip.compress(open("in/a.jsonl", "rb").read()))
for i in range(200, 260): d[i] ^= 0x55
open("corrupt.jsonl.gz", "wb").write(bytes(d))'
run "$md" build g3 corrupt.jsonl.gz
expect_fail 2 "corrupt.jsonl.gz: corrupt gzip data after" "a corrupt gzip file: exit 2 naming it"
: >x.jsonl.zst
run "$md" build g4 x.jsonl.zst
expect_fail 2 "x.jsonl.zst: zst compression is not read" "another compression: exit 2"
run "$md" build g5 'in/*.parquet'
expect_fail 2 "in/\*.parquet: no such file, and no file matches it as a pattern" "a pattern matching nothing: exit 2"
run "$md" build g6 in in/sub/c.txt
expect_fail 2 "the same file as" "a file listed twice: exit 2"
[ ! -e g4 ] && [ ! -e g5 ] && [ ! -e g6 ]
tap_ok $? "a bad input found while listing leaves no output folder"

# ---- any number of ranks: the same bytes
big() { # a corpus of 1.5 MB in 6 files, one of them gzip
    $PYTHON_REF - <<'P'
import gzip, json, os, random
random.seed(9)
os.makedirs("big", exist_ok=True)
words = [w for w in open("in/sub/c.txt").read().split()] + ["\u00e9t\u00e9", "\u4e2d\u6587", "12345"]
for f in range(6):
    recs = "".join(json.dumps({"text": " ".join(random.choice(words) for _ in range(random.randint(1, 200)))}) + "\n"
                   for _ in range(300))
    if f == 2:
        open("big/part-%d.jsonl.gz" % f, "wb").write(gzip.compress(recs.encode()))
    else:
        open("big/part-%d.jsonl" % f, "w").write(recs)
P
}
big
same() { # same A B: every file of A has the same bytes in B, and B has no other
    [ "$(ls "$1")" = "$(ls "$2")" ] || return 1
    for f in "$1"/*; do cmp -s "$f" "$2/$(basename "$f")" || return 1; done
}
args="big --val-fraction 0.02 --shard-tokens 40000"
run "$md" build np1 $args
tap_ok $rc "np 1: $(cat out)"
for np in 2 4; do
    run $MPIRUN -np $np "$md" build np$np $args --part-bytes 100000
    same np1 np$np
    tap_ok $(($? + rc)) "np $np (parts of 100 KB): the same shards and manifest, byte for byte"
done
[ "$(grep -c 'tokenizing 100.0%' err)" -eq 1 ] && grep -q 'writing shards 100.0% | .* tokens/s | done in' err
tap_ok $? "under mpirun one progress line (rank 0) per phase"
# the same with a SentencePiece model, trained by megadata tokenizer train on the corpus itself
run "$md" tokenizer train sp.model big --vocab 330
tap_ok $rc "tokenizer train on the JSON Lines corpus: $(cat out)"
run "$md" build sp1 $args --tokenizer sp.model --bos
tap_ok $rc "np 1, SentencePiece with BOS: $(cat out)"
for np in 2 4; do
    run $MPIRUN -np $np "$md" build sp$np $args --tokenizer sp.model --bos --part-bytes 100000
    same sp1 sp$np
    tap_ok $(($? + rc)) "np $np, SentencePiece with BOS: the same shards and manifest, byte for byte"
done

# ---- killed and resumed
MEGADATA_TEST_KILL=tokenize:600 run $MPIRUN -np 2 "$md" build kill $args --part-bytes 100000
ls kill/.megadata-build >work.txt
[ "$rc" -ne 0 ] && [ ! -e kill/manifest.h5 ] && grep -q '\.tok\.tmp$' work.txt && grep -q '\.tok$' work.txt
tap_ok $? "killed in the middle of a part: token files of the finished parts, no manifest"
run "$md" build kill $args --part-bytes 100000
expect_fail 2 "a build was interrupted here" "a new build into it is refused"
run "$md" manifest kill
expect_fail 2 "kill: a megadata build was interrupted here" "megadata manifest refuses it"
MEGADATA_TEST_KILL=assemble:150 run $MPIRUN -np 4 "$md" build kill $args --part-bytes 100000 --resume
ls kill >kill.txt
[ "$rc" -ne 0 ] && [ ! -e kill/manifest.h5 ] && grep -q '^train-.*\.h5$' kill.txt && grep -q '\.h5\.tmp$' kill.txt
tap_ok $? "resumed on 4 ranks and killed in the middle of a shard: whole shards and a .tmp one, no manifest"
run "$md" verify kill
expect_fail 2 "no manifest.h5: a megadata build was interrupted here .* --resume" \
    "verify (as megatrain's reader) refuses the folder, saying to resume"
run "$md" build kill $args --part-bytes 100000 --resume --seed 2
expect_fail 2 "kill/.megadata-build/plan: --resume: the interrupted build had 'seed 1' where this one has 'seed 2'" \
    "--resume with another option: exit 2 naming it"
run "$md" build kill $args --part-bytes 100000 --resume
same np1 kill && [ ! -e kill/.megadata-build ]
tap_ok $(($? + rc)) "--resume on 1 rank finishes it: the same bytes as the uninterrupted build, no work folder left"
tap_done
