# tests/fuzz/run.sh TARGET SECONDS SEEDS [FLAG...]: fuzz TARGET (a libFuzzer program) for
# SECONDS from the seed corpus SEEDS (read only) and the corpus its earlier runs grew
# (TARGET.corpus/, never committed), one process at a time, going on past each problem; then
# print every distinct problem with one input that shows it (TARGET.found/). Exit 1 if any.
set -u
target=$1 seconds=$2 seeds=$3
shift 3
name=$(basename "$target")
work=$(cd "$(dirname "$target")" && pwd)/$name
rm -rf "$work.found" "$work.tmp"
mkdir -p "$work.corpus" "$work.found" "$work.tmp"
# What HDF5 loses on a corrupted file is not ours to report (tests/lsan.supp); the suppressions
# match only full stacks, through libraries built without frame pointers. An absurd allocation
# (a size read from a damaged file) returns NULL as it would outside ASan: HDF5 then fails
# cleanly, and megatrain's xmalloc exits 1, which the targets report.
LSAN_OPTIONS=suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan.supp
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0:allocator_may_return_null=1
UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1
# libFuzzer times its inputs with SIGALRM: the data layer's guard on HDF5's reads
# (data/h5_check.h) stays off, and a hang inside HDF5 shows as a timeout.
MEGATRAIN_TEST_H5_GUARD_SECONDS=0
export LSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS MEGATRAIN_TEST_H5_GUARD_SECONDS
echo "$name: fuzzing for $seconds s (log $work.log)"
# The parsers' own messages about each bad input are closed off (-close_fd_mask=2); sanitizer
# reports still reach the log.
TMPDIR=$work.tmp "$target" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -close_fd_mask=2 \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work.found/" "$@" \
    "$work.corpus" "$seeds" >"$work.log" 2>&1
echo "$name: $(ls "$work.corpus" | wc -l) inputs in the corpus;" \
    "$(grep -o 'cov: [0-9]* ft: [0-9]*' "$work.log" | tail -1)"
# One line per distinct problem: the target's own "fuzz: " finding, else the sanitizer's summary
# and the innermost frame in megatrain's code (past its allocation helpers).
for input in "$work.found"/*; do
    [ -e "$input" ] || continue
    what=$(TMPDIR=$work.tmp "$target" -runs=1 -timeout=10 -rss_limit_mb=2048 "$@" "$input" 2>&1 | awk '
        /^fuzz: / { print; found = 1; exit }
        /^SUMMARY: / { summary = $0; sub(/ \(BuildId: [0-9a-f]+\)/, "", summary); sub(/ \([^ ]*\+0x[0-9a-f]+\)/, "", summary) }
        / in [^ ]+ [^ ]*\/(src|data|tools|parallel|kernels)\/[^ ]*$/ && $4 !~ /^x(malloc|calloc|strdup|asprintf)$/ && !where { where = $4 " " $5; sub(/ .*\//, " ", where) }
        END { if (!found) print (summary ? summary : "(does not reproduce alone)") (where ? " at " where : "") }')
    printf '%s\t%s\n' "$what" "$input"
done | sort -t "$(printf '\t')" -k1,1 -u | sed "s/^/$name: found: /; s/\t/ -- e.g. /"
rm -rf "$work.tmp"
n=$(ls "$work.found" | wc -l)
echo "$name: $n input(s) showing a problem"
[ "$n" -eq 0 ]
