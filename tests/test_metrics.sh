# test_metrics.sh: a metrics log that cannot be written stops the run with one message naming it
# (exit 2), whether the first record fails (log.metrics: /dev/full, on 1 and on 2 ranks) or one in
# the middle of the run (a file size limit set on the running process after step 5).
. "$top_srcdir/tests/tap.sh"
cd "$tap_tmp" || exit 1
. "$top_srcdir/tests/ckpt.sh"
ckpt_runfile run.yaml

# one_message: stderr says it once, naming the file and the key
one_message() { [ "$(grep -c "$1: cannot write the metrics log (log.metrics)" "$tap_tmp/err")" -eq 1 ]; }

run "$mt" run.yaml --set log.metrics=/dev/full
expect_fail 2 "/dev/full: cannot write the metrics log (log.metrics): No space left on device" \
    "log.metrics /dev/full: exit 2 naming it"
one_message /dev/full
tap_ok $? "... once"
run $MPIRUN -np 2 "$mt" run.yaml --set log.metrics=/dev/full
expect_fail 2 "/dev/full: cannot write the metrics log" "log.metrics /dev/full on 2 ranks: exit 2 naming it"
one_message /dev/full
tap_ok $? "... once"

# a write that fails mid-run: RLIMIT_FSIZE set from outside once step 5 is logged (SIGXFSZ ignored:
# the write fails instead); the old code went on to step 2000 and exit 0
trap '' XFSZ
"$mt" run.yaml --set train.steps=2000 --set train.threads=1 --set log.metrics=m.jsonl >"$tap_tmp/out" 2>"$tap_tmp/err" &
pid=$!
n=0
until grep -q '"type":"step","step":5,' m.jsonl 2>/dev/null || [ $n -ge 600 ]; do
    sleep 0.1
    n=$((n + 1))
done
prlimit --pid $pid --fsize="$(stat -c %s m.jsonl)"
wait $pid
rc=$?
trap - XFSZ
expect_fail 2 "m.jsonl: cannot write the metrics log (log.metrics): File too large; the run stops here" \
    "a metrics write failing after step 5: exit 2 naming the file"
last=$(sed -n 's/.*"type":"step","step":\([0-9]*\),.*/\1/p' m.jsonl | tail -1)
one_message m.jsonl && [ "$last" -lt 2000 ]
tap_ok $? "... once, stopping at once (last step logged: $last)"
tap_done
