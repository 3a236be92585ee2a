#!/bin/sh
# tokenizer-bench.sh: tokenisation speed of megadata's tokenizers beside the reference encoders, on
# the same files and machine, each on one core (taskset to the first CPU when taskset is there),
# and whether their ids agree. Each FILE is one document.
#
#   tools/tokenizer-bench.sh TOKENIZER FILE...
#
# The reference for a SentencePiece .model is SentencePiece's own encoder (python3-sentencepiece,
# its C++ library); for a tokenizer.json, Hugging Face's tokenizers (its Rust library, through the
# npm package tokenizers, fetched once into $MEGATRAIN_CACHE, else $XDG_CACHE_HOME/megatrain, else
# ~/.cache/megatrain; needs node and npm). Hugging Face's encoder matches added tokens written in
# the text and megadata does not (doc/data.md), so its ids are compared with the file's added
# tokens removed. MEGADATA names the megadata to time (default: the one beside tools/, else PATH).
set -eu

hf_version=0.23.2
[ $# -ge 2 ] || { echo "usage: $0 TOKENIZER FILE..." >&2; exit 2; }
case $1 in -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
tok=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
megadata=${MEGADATA:-$here/megadata}
[ -x "$megadata" ] || megadata=megadata
pin=""
if command -v taskset >/dev/null; then pin="taskset -c $(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')"; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tokenizer-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if [ "$(head -c 4096 "$tok" | tr -d ' \t\r\n' | head -c 1)" = "{" ]; then
    command -v node >/dev/null && command -v npm >/dev/null ||
        { echo "tokenizer-bench: error: node and npm are needed for Hugging Face's tokenizers" >&2; exit 1; }
    cache=${MEGATRAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/megatrain}/hf-tokenizers-$hf_version
    if [ ! -d "$cache/node_modules/tokenizers" ]; then
        echo "tokenizer-bench: fetching tokenizers@$hf_version from the npm registry into $cache"
        mkdir -p "$cache"
        (cd "$cache" && npm install --silent --no-audit --no-fund "tokenizers@$hf_version" >/dev/null)
    fi
    cat >"$work/ref.js" <<'EOF'
// ref.js MODULE TOKENIZER.json IDS_OUT FILE...: time Hugging Face's encoder, then write its ids
const { Tokenizer } = require(process.argv[2]);
const fs = require('fs');
const files = process.argv.slice(5);
const dec = new TextDecoder('utf-8', { ignoreBOM: true }); // as Python's decode(errors="replace")
const texts = files.map(f => dec.decode(fs.readFileSync(f)));
const bytes = files.reduce((s, f) => s + fs.statSync(f).size, 0);
const timed = Tokenizer.fromFile(process.argv[3]);
const json = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
json.added_tokens = [];
const plain = Tokenizer.fromString(JSON.stringify(json));
(async () => {
  let n = 0;
  const t0 = process.hrtime.bigint();
  for (const t of texts) n += (await timed.encode(t, null, { addSpecialTokens: false })).getIds().length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`reference tokenizers ${require(process.argv[2] + '/package.json').version} (Hugging Face, node): ` +
              `${bytes} bytes, ${texts.length} documents, ${n} tokens, ${s.toFixed(3)} s, ${(bytes / 1e6 / s).toFixed(2)} MB/s`);
  const out = [];
  for (const t of texts) out.push((await plain.encode(t, null, { addSpecialTokens: false })).getIds().join(' '));
  fs.writeFileSync(process.argv[4], out.join('\n') + '\n');
})();
EOF
    ref() { RAYON_NUM_THREADS=1 $pin node "$work/ref.js" "$cache/node_modules/tokenizers" "$tok" "$@"; }
else
    python=/usr/bin/python3
    [ -x $python ] || python=python3
    $python -c 'import sentencepiece' 2>/dev/null ||
        { echo "tokenizer-bench: error: python3-sentencepiece is needed (tools/install-deps.sh)" >&2; exit 1; }
    cat >"$work/ref.py" <<'EOF'
# ref.py MODEL IDS_OUT FILE...: time SentencePiece's encoder, then write its ids
import sys, time
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
docs = [open(f, "rb").read() for f in sys.argv[3:]]
t = time.perf_counter()
ids = [sp.encode(d) for d in docs]
t = time.perf_counter() - t
b = sum(map(len, docs))
print(f"reference sentencepiece {spm.__version__} (python3-sentencepiece): {b} bytes, {len(docs)} documents, "
      f"{sum(map(len, ids))} tokens, {t:.3f} s, {b / 1e6 / t:.2f} MB/s")
with open(sys.argv[2], "w") as f:
    f.write("".join(" ".join(map(str, i)) + "\n" for i in ids))
EOF
    ref() { $pin $python "$work/ref.py" "$tok" "$@"; }
fi

echo "tokenizer-bench: $tok, $# files, ${pin:-unpinned}"
$pin "$megadata" tokenizer bench "$tok" "$@"
ref "$work/ref-ids" "$@"
"$megadata" tokenizer encode "$tok" "$@" >"$work/ids"
if cmp -s "$work/ids" "$work/ref-ids"; then
    echo "ids: identical ($(wc -w <"$work/ids") ids)"
else
    echo "ids: DIFFER in $(paste -d '\n' "$work/ids" "$work/ref-ids" | awk 'NR % 2 { a = $0; next } a != $0 { n++ } END { print n + 0 }') documents"
    exit 1
fi
