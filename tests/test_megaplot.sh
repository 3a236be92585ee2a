# test_megaplot.sh: megaplot on the hand-written logs of tests/data/metrics (README.md there gives
# their numbers): the table's numbers are the logs' numbers, resumed runs and unknown records are
# handled, the plots are valid PNG and SVG images, bad input is named by file:line with exit 2.
. "$top_srcdir/tests/tap.sh"
# in a sanitizer build (ASan + UBSan) a report ends the tool with an error status, so the check
# that looks at the status fails and shows the report; every run's status is checked
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
mp="$top_builddir/megaplot"
data="$top_srcdir/tests/data/metrics"
cd "$tap_tmp" || exit 1
# check DESCRIPTION CONDITION: one TAP check that the shell condition holds, stderr shown if not
check() {
    if eval "$2"; then tap_ok 0 "$1"; else
        tap_ok 1 "$1"
        sed 's/^/#   /' "$tap_tmp/err" | head -5
    fi
}

run "$mp" --help
check "--help prints the usage, exit 0" '[ $rc -eq 0 ] && grep -q "^usage: megaplot" out'

logs="$data/run-1gpu.jsonl $data/run-2gpu.jsonl $data/run-4gpu.jsonl $data/resumed.jsonl"
run "$mp" --table csv $logs
cp out table.csv
check "the sample logs read cleanly (unknown record types and fields tolerated)" '[ $rc -eq 0 ]'

# field RUN COLUMN: the CSV cell of that row and column
field() {
    awk -F, -v run="$1" -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $1 == run { print $(c[col]) }' table.csv
}
# expect RUN COLUMN VALUE: the cell equals VALUE to 1e-9 relative (the logs hold 9 significant
# digits; the means of the samples are exact in decimal, so only binary rounding can differ)
expect() {
    got=$(field "$1" "$2")
    if [ "$3" = "" ]; then [ "$got" = "" ]; st=$?; else
        awk -v a="$got" -v b="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
            exit !(a != "" && d <= 1e-9 * (m > 1 ? m : 1)) }'; st=$?; fi
    tap_ok $st "$1 $2 = ${3:-(empty)} (got ${got:-(empty)})"
}
expect run-1gpu steps 4
expect run-1gpu tokens 2048
expect run-1gpu loss 4.25
expect run-1gpu val_loss 4.375
expect run-1gpu val_ppl 79.4346479
expect run-1gpu step_ms 100
expect run-1gpu tokens_per_s 5120
expect run-1gpu tflops_per_rank 0.03
expect run-1gpu mfu 0.06
expect run-1gpu mem_gb 1.75
expect run-1gpu efficiency 1
expect run-2gpu tokens_per_s 9472
expect run-2gpu tokens_per_s_per_rank 4736
expect run-2gpu efficiency 0.925
expect run-2gpu compute_ms 82
expect run-2gpu comm_dp_ms 13
expect run-2gpu mem_gb ""
expect run-4gpu cp 2
expect run-4gpu dp 2
expect run-4gpu efficiency 0.875
expect run-4gpu batch_tokens 512
expect 'resumed#1' steps 2
expect 'resumed#1' tokens_per_s 9000
expect 'resumed#1' val_loss ""
expect 'resumed#2' ranks 4
expect 'resumed#2' loss 4.3
expect 'resumed#2' val_loss 4.35
expect 'resumed#2' tokens_per_s 18200
check "rows sorted by model size, sequence length, ranks, name" \
    '[ "$(sed 1d table.csv | cut -d, -f1 | tr "\n" " ")" = "run-1gpu resumed#1 run-2gpu resumed#2 run-4gpu " ]'

run "$mp" --table csv --skip 0 "$data/run-1gpu.jsonl"
check "--skip 0 counts the warm-up step too (step_ms (900+100+110+90)/4 = 300)" \
    '[ $rc -eq 0 ] && [ "$(sed -n 2p out | cut -d, -f15)" = 300 ]'

run "$mp" $logs
check "Markdown table: rounded values, '-' for missing ones, timing columns when a log has them" \
    '[ $rc -eq 0 ] && grep -qF "| run-2gpu | 1M | 64 | 512 | 2 | 2 | 1 | 1 | 1 | 3 | 1.54K | 4.5000 | - | - | 54.1 | 9472 | 4736 | 0.0284 | 5.7 | - | 0.93 | 82.0 | 13.0 |" out'
run "$mp" "$data/run-1gpu.jsonl"
check "timing columns left out when no log has them" '[ $rc -eq 0 ] && ! grep -q "compute ms" out'

# plots
run "$mp" -o plots $logs
check "plots drawn (exit $rc)" '[ $rc -eq 0 ]'
png_ok() { # a PNG: signature, IHDR of 1000 x 600, more than a few KB
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(od -An -tx1 -j16 -N8 "$1" | tr -d ' \n')" = 000003e800000258 ] &&
        [ "$(wc -c <"$1")" -gt 5000 ]
}
svg_ok() { # an SVG document: XML declaration, <svg ...> opened and closed, a drawn path, a few KB
    head -1 "$1" | grep -q '^<?xml' && grep -q '<svg' "$1" && tail -2 "$1" | grep -q '</svg>' &&
        grep -q '<path' "$1" && [ "$(wc -c <"$1")" -gt 2000 ]
}
for p in loss throughput mfu; do
    check "$p.png is a 1000x600 PNG" 'png_ok plots/$p.png'
    check "$p.svg is an SVG image" 'svg_ok plots/$p.svg'
done
check "scaling.csv written beside the plots, as printed" 'cmp -s plots/scaling.csv table.csv'
check "scripts name the runs and series" \
    'grep -q "title .resumed (validation)." plots/loss.gp && grep -q "title .1M params, seq 64." plots/throughput.gp'
# the throughput script's data: ranks, tokens/s, linear scaling from the 1-rank point (5120 per rank)
check "throughput points and linear-scaling line are the table's" \
    'grep -q "^4 17920 20480\$" plots/throughput.gp && grep -q "^2 9472 10240\$" plots/throughput.gp'
check "the resumed run's repeated step replaces the earlier one in the loss curve" \
    'grep -q "^1536 4.7\$" plots/loss.gp && ! grep -q "^1536 4.8\$" plots/loss.gp'
rm -rf plots
run "$mp" --table none -o plots "$data/resumed.jsonl"
check "logs without MFU: no MFU plot, a note; --table none prints nothing" \
    '[ $rc -eq 0 ] && [ ! -e plots/mfu.png ] && grep -q "no data for mfu" err && [ -s plots/loss.png ] && [ ! -s out ]'
run env GNUPLOT=/nonexistent/gnuplot "$mp" -o plots2 "$data/run-1gpu.jsonl"
expect_fail 1 "cannot run /nonexistent/gnuplot" "gnuplot missing: exit 1 naming it"

# bad input: file:line, exit 2
run "$mp" "$data/malformed.jsonl"
expect_fail 2 "malformed.jsonl:3:53: malformed record: expected a value" "malformed line named by file:line:column, exit 2"
bad() { # bad LINE EXPECTED DESCRIPTION: run-1gpu.jsonl's first 2 lines, then LINE
    head -2 "$data/run-1gpu.jsonl" >bad.jsonl
    printf '%s\n' "$1" >>bad.jsonl
    run "$mp" bad.jsonl
    expect_fail 2 "$2" "$3"
}
bad '{"type":"step","step":2,"tokens":1024,"loss":"high"}' 'bad.jsonl:3: "loss": expected a number or null, got a string' "wrong type of a field"
bad '{"type":"step","step":2,"tokens":1024' "bad.jsonl:3:38: malformed record: expected ',' or '}'" "truncated line"
bad '{"type":"step","step":2.5,"tokens":1024,"loss":1}' 'bad.jsonl:3: "step": expected an integer' "fractional step"
bad '{"type":"step","tokens":1024,"loss":1}' 'bad.jsonl:3: step record without "step"' "missing field"
bad '{"step":2}' 'bad.jsonl:3: record without a "type"' "record without a type"
bad '["type","step"]' "bad.jsonl:3:1: malformed record: expected a JSON object" "a line that is not an object"
bad '' "bad.jsonl:3:1: malformed record: expected a JSON object" "an empty line"
bad '{"type":"step","step":2,"tokens":1024,"loss":1} x' "bad.jsonl:3:49: malformed record: expected the end of the line" "text after the object"
bad '{"type":"eval","step":2,"tokens":1024,"val_loss":1,"val_ppl":1e}' "bad.jsonl:3:64: malformed record: expected digits in the exponent" "bad number"
bad '{"type":"note","text":"\u12G4"}' "bad.jsonl:3:24: malformed record: expected a valid escape" "bad escape in a string"
sed -n 2p "$data/run-1gpu.jsonl" >nohead.jsonl
run "$mp" nohead.jsonl
expect_fail 2 "nohead.jsonl:1: step record before the first header record" "step before any header"
: >empty.jsonl
run "$mp" empty.jsonl
expect_fail 2 "empty.jsonl: no header record" "empty log"
run "$mp" missing.jsonl
expect_fail 2 "missing.jsonl: cannot open the metrics log" "missing log"
mkdir emptydir
run "$mp" emptydir
expect_fail 2 "emptydir: no \*.jsonl metrics logs" "folder without logs"
run "$mp" --skip many "$data/run-1gpu.jsonl"
expect_fail 2 "--skip 'many': expected an integer" "bad --skip"
run "$mp" --frobnicate
expect_fail 2 "unknown option '--frobnicate'" "unknown option"
run "$mp"
expect_fail 2 "no metrics logs given" "no logs"
tap_done
