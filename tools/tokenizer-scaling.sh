#!/bin/sh
# tokenizer-scaling.sh: how megadata build's tokenizing speeds up over MPI ranks, on a corpus that
# never repeats itself.
#
#   tools/tokenizer-scaling.sh TOKENIZER OUT_DIR TEXT... [--copies K] [--ranks "N..."]
#
# Writes OUT_DIR/corpus: K JSON Lines files copy-0001.jsonl .., each holding one document per TEXT
# file ({"text": ...}, in the order given). Copy k is enciphered: every ASCII letter goes through a
# permutation of the alphabet drawn from the seed k (case kept; every other byte kept), so the
# copies share almost no words (a two-letter word has the same image in two copies one time in 650),
# while each keeps the texts' word lengths, word frequencies and byte lengths (ill-formed UTF-8
# becomes U+FFFD, as JSON wants), like fresh text of the same kind. Why: the tokenizers cache the
# pieces of every word they encode, per process, so on K identical copies one rank encodes the text
# cold once and then hits its cache, while each of N ranks pays a cold pass, and the speed-up looks
# smaller than it is on a corpus that does not repeat (doc/data.md, "Over ranks"). The corpus is
# written by python3: its json module escapes any text as JSON wants and bytes.translate enciphers
# at memory speed; awk has no JSON escaping, and awks disagree on bytes. The corpus stays for reruns
# (OUT_DIR/corpus/.stamp records K and the inputs' sizes).
#
# For each N (1 first, as the baseline): $MPIRUN -np N --bind-to core $MEGADATA build OUT_DIR/ds-N
# OUT_DIR/corpus --tokenizer TOKENIZER --part-bytes B, where B is one copy's size: every copy is a
# part, so the ranks get equal shares when K is a multiple of N. It prints a table of the
# "tokenizing 100.0% ... done in X s" lines: ranks, seconds, the fastest and slowest rank's seconds
# (far apart: uneven shares; close: each rank ran slower), MB/s (10^6 bytes a second, megadata's
# own figure), MB/s per rank, speed-up over 1 rank, efficiency (speed-up / N); and whether every
# N's manifest.h5 is the same bytes as 1 rank's (exit 1 if not, keeping those datasets). Each
# build's output is in OUT_DIR/build-N.log; the datasets OUT_DIR/ds-N are removed.
#
# Enciphered English is not English to a model trained on English: it splits into about three times
# as many pieces, and no word comes back from another copy, where real corpora repeat their common
# words. So its MB/s are not English's (doc/data.md has both): this measures scaling;
# tools/tokenizer-bench.sh measures absolute speed.
#
#   --copies K    copies of the texts (default 64)
#   --ranks "N.." rank counts (default: the powers of two up to the online cores, and their number)
# MEGADATA names the megadata (default: the one beside tools/, else PATH); MPIRUN the launcher,
# options allowed (default mpirun). --bind-to core is given to Open MPI's mpirun where N is at
# most the online cores. Exit status 1 when a build fails or the datasets differ, 2 on usage errors.
set -eu

usage() {
    echo "tokenizer-scaling: $1" >&2
    echo "usage: $0 TOKENIZER OUT_DIR TEXT... [--copies K] [--ranks \"N...\"] (--help)" >&2
    exit 2
}
die() { echo "tokenizer-scaling: error: $1" >&2; exit 1; }
posint() { case $1 in '' | *[!0-9]* | 0*) return 1 ;; esac; }

copies=64
ranks=""
n=$#
while [ "$n" -gt 0 ]; do # options anywhere: the other arguments go round to the end of "$@"
    a=$1
    shift
    n=$((n - 1))
    case $a in
    -h | --help) sed -n '1d; /^#/!q; s/^# \{0,1\}//p' "$0"; exit 0 ;;
    --copies | --ranks)
        [ "$n" -gt 0 ] || usage "$a needs a value"
        if [ "$a" = --copies ]; then copies=$1; else ranks=$1; fi
        shift
        n=$((n - 1)) ;;
    --copies=*) copies=${a#*=} ;;
    --ranks=*) ranks=${a#*=} ;;
    --) while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n - 1)); done ;;
    -?*) usage "unknown option $a" ;;
    *) set -- "$@" "$a" ;;
    esac
done
[ $# -ge 3 ] || usage "TOKENIZER, OUT_DIR and at least one TEXT are needed"
posint "$copies" || usage "--copies: '$copies' is not a positive number"
tok=$1
out=$2
shift 2
for f; do [ -f "$f" ] && [ -r "$f" ] || usage "$f: not a readable file"; done

cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ -z "$ranks" ]; then
    r=1
    while [ "$r" -le "$cores" ]; do ranks="$ranks $r"; r=$((r * 2)); done
    [ $((r / 2)) -eq "$cores" ] || ranks="$ranks $cores"
fi
list=1
for r in $ranks; do
    posint "$r" || usage "--ranks: '$r' is not a positive number"
    case " $list " in *" $r "*) ;; *) list="$list $r" ;; esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
megadata=${MEGADATA:-$here/megadata}
[ -x "$megadata" ] || megadata=megadata
command -v "$megadata" >/dev/null || die "no megadata (build it, or name it in MEGADATA)"
mpirun=${MPIRUN:-mpirun}
openmpi=0
if $mpirun --version 2>&1 | grep -q 'Open MPI'; then openmpi=1; fi
command -v python3 >/dev/null || die "python3 is needed to write the corpus"

# ---- the corpus, unless it is there for the same copies and inputs
corpus=$out/corpus
mkdir -p "$out"
stamp=$(printf 'tokenizer-scaling corpus 1 (letters permuted from seed k)\ncopies %s\n' "$copies"
        wc -c -- "$@")
if [ -f "$corpus/.stamp" ] && [ "$(cat "$corpus/.stamp")" = "$stamp" ]; then
    echo "tokenizer-scaling: corpus $corpus is there ($copies copies)"
else
    [ ! -e "$corpus" ] || [ -f "$corpus/.stamp" ] ||
        die "$corpus exists and was not written by this script: remove it or give another OUT_DIR"
    rm -rf "$corpus"
    mkdir "$corpus"
    echo "tokenizer-scaling: writing $copies enciphered copies of $# texts into $corpus"
    python3 - "$corpus" "$copies" "$@" <<'EOF'
# CORPUS K TEXT...: copy-k.jsonl for k in 1..K, each text a line, letters permuted from seed k
import json, os, sys
out, copies, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
docs = [open(f, "rb").read() for f in files]
M = (1 << 64) - 1

def permutation(seed):
    """Fisher-Yates on splitmix64 draws: the same permutation on any Python"""
    p, s = list(range(26)), seed
    for i in range(25, 0, -1):
        s = (s + 0x9E3779B97F4A7C15) & M
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        j = (z ^ (z >> 31)) % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p

for k in range(1, copies + 1):
    p = permutation(k)
    table = bytearray(range(256))
    for i in range(26):
        table[ord("a") + i], table[ord("A") + i] = ord("a") + p[i], ord("A") + p[i]
    # ASCII letters never occur inside a multibyte UTF-8 sequence: the rest decodes as before
    lines = [json.dumps({"text": d.translate(table).decode("utf-8", "replace")}, ensure_ascii=False)
             for d in docs]
    with open(os.path.join(out, "copy-%04d.jsonl" % k), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
EOF
    printf '%s\n' "$stamp" >"$corpus/.stamp"
fi
part=$(wc -c <"$corpus/copy-0001.jsonl" | tr -d ' ')
total=$((part * copies))
cat "$corpus"/*.jsonl >/dev/null # read once, so that 1 rank does not pay the disk alone

bound="unbound"
[ $openmpi -eq 0 ] || bound="bound to cores up to $cores ranks"
echo "tokenizer-scaling: $tok; $copies copies, $total bytes, a copy ($part bytes) a part;" \
    "ranks $list; $mpirun ($bound); $megadata"

# ---- a build for each N
results=""
differ=""
for r in $list; do
    ds=$out/ds-$r
    log=$out/build-$r.log
    rm -rf "$ds"
    bind=""
    if [ $openmpi -eq 1 ] && [ "$r" -le "$cores" ]; then bind="--bind-to core"; fi
    # shellcheck disable=SC2086 # $mpirun and $bind are words
    if ! $mpirun -np "$r" $bind "$megadata" build "$ds" "$corpus" --tokenizer "$tok" --part-bytes "$part" \
        >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "the build on $r ranks failed (its output: $log)"
    fi
    # a terminal gets the progress line rewritten after \r, a log plain lines
    line=$(tr '\r' '\n' <"$log" | grep 'tokenizing 100\.0%.*done in' | tail -n 1)
    secs=$(printf '%s\n' "$line" | sed -n 's/.*done in \([0-9.]*\) s.*/\1/p')
    rate=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9.]*k\{0,1\}\) MB\/s .*/\1/p')
    [ -n "$secs" ] && [ -n "$rate" ] || die "no 'tokenizing 100.0% ... done in X s' line in $log"
    spread=$(printf '%s\n' "$line" | sed -n 's/.* | ranks \([0-9.]*-[0-9.]*\) s.*/\1/p')
    echo "tokenizer-scaling: -np $r: tokenizing done in $secs s, $rate MB/s"
    results="$results$r $secs $rate ${spread:-$secs}
"
    if [ "$r" -ne 1 ]; then
        if cmp -s "$out/ds-1/manifest.h5" "$ds/manifest.h5"; then rm -rf "$ds"; else differ="$differ $r"; fi
    fi
done

echo
printf '%s' "$results" | awk -v total="$total" '
    # a rate of 1000 MB/s or more is printed as "1.2k": then the bytes over the seconds
    { mbs = $3 ~ /k$/ ? ($2 > 0 ? total / 1e6 / $2 : 0) : $3 + 0 }
    NR == 1 { base = mbs
              print "| ranks | tokenizing s | each rank s | MB/s | MB/s per rank | speed-up | efficiency |"
              print "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |" }
    { up = base > 0 ? mbs / base : 0
      printf "| %d | %s | %s | %.1f | %.1f | %.2f | %.0f%% |\n", $1, $2, $4, mbs, mbs / $1, up, 100 * up / $1 }'
echo
if [ -n "$differ" ]; then
    echo "manifest.h5: DIFFERS from 1 rank's on$differ ranks (the datasets are kept: $out/ds-N)"
    exit 1
fi
rm -rf "$out/ds-1"
echo "manifest.h5: identical on ranks $list"
