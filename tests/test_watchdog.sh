# test_watchdog.sh: a rank that stops answering never hangs the job. One rank of a 4-rank run is
# stopped (SIGSTOP) mid-training; the others' watchdog (parallel.timeout = 3 s) must name the
# wait (operation and axis) and take the job down with a non-zero exit within the timeout plus
# mpirun's clean-up. Every run has an outer timeout, so a regression fails instead of hanging.
. "$top_srcdir/tests/tap.sh"
mt="$top_builddir/megatrain"
cd "$tap_tmp" || exit 1

cat >run.yaml <<'Y'
model: {vocab_size: 64, n_layers: 2, d_model: 32, n_heads: 2, z_dim: 16, v_dim: 32, ffn_dim: 48, chunk: 8, groups: 4}
parallel: {timeout: 3}
data: {seq_len: 32, batch_size: 4}
train: {steps: 1000000, threads: 1}
log: {metrics: "", every: 1}
Y

# stop_one LABEL LAYOUT...: start the run, stop its second rank after step 20, time the end
stop_one() {
    label=$1
    shift
    rm -f out err # the job truncates them only once it runs: the last run's step 20 must not count
    timeout 60 $MPIRUN -np 4 "$mt" "$tap_tmp/run.yaml" "$@" >out 2>err &
    job=$!
    until grep -q '^step  *20/' out 2>/dev/null || ! kill -0 $job 2>/dev/null; do sleep 0.05; done
    # a rank by its command line, which names this test's own run file (pgrep -P on mpirun's
    # children came back empty once on a loaded machine)
    victim=$(pgrep -f "^$mt $tap_tmp/run.yaml" | sed -n 2p)
    t0=$(date +%s.%N)
    [ -n "$victim" ] && kill -STOP "$victim"
    wait $job
    rc=$?
    took=$(printf %.1f "$(echo "$(date +%s.%N) - $t0" | bc)")
    # the stopped rank is ours: make sure it is gone
    [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
    msg=$(grep -m1 'watchdog: ' err)
    ok=1
    [ -n "$victim" ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] &&
        echo "$msg" | grep -q 'on the \(tp\|cp\|pp\|dp x cp\|world\) axis.*no answer after 3\.[0-9] s' &&
        [ "$(echo "$took < 15" | bc)" = 1 ] && ok=0
    tap_ok $ok "$label: a stopped rank ends the job in ${took} s (exit $rc): ${msg:-no watchdog message}"
    [ $ok -eq 0 ] || sed 's/^/#   /' err | head -5
}

stop_one "tp2 x cp2" --set parallel.tp=2 --set parallel.cp=2
stop_one "pp2 x cp2" --set parallel.pp=2 --set parallel.cp=2 --set parallel.micro_batches=2

run "$mt" run.yaml --set parallel.comm=nccl --print-config
expect_fail 2 "parallel.comm: nccl needs train.device: cuda" "parallel.comm=nccl on the CPU: exit 2"
run "$mt" run.yaml --set parallel.timeout=0 --print-config
expect_fail 2 "parallel.timeout" "parallel.timeout=0: exit 2"
tap_done
