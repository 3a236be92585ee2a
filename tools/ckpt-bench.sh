#!/bin/sh
# ckpt-bench.sh: checkpoint save and resume at scale on the CPU (doc/checkpoint.md, "At scale").
#
#   tools/ckpt-bench.sh [WORK] [RANKS...]      (default: a temporary folder, 1 8 32 ranks)
#
# For each rank count, a ~220M-parameter MEGALODON (D 1024, 12 layers, vocabulary 32000, untied
# head) under a layout that fits that many oversubscribed ranks (1: alone; 8: dp 2 tp 2 pp 2;
# 32: dp 4 tp 4 pp 2) trains one step three times: without a checkpoint (the baseline memory),
# with one written at its end (save), and started again from it (resume; no step left to
# train). Every rank runs under /usr/bin/time, whose maximum resident size is its peak host
# memory. Prints one markdown table row per rank count: bytes written, save and resume seconds
# (megatrain's own log lines), save throughput, and the largest peak resident size of any rank in
# each run. MEGATRAIN and MPIRUN choose the programs (default: ./megatrain, mpirun).
set -eu
work=${1:-$(mktemp -d /tmp/ckpt-bench.XXXXXX)}
[ $# -gt 0 ] && shift
ranks=${*:-1 8 32}
mt=$(realpath "${MEGATRAIN:-./megatrain}")
mpirun=${MPIRUN:-mpirun}
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1
mkdir -p "$work"
cd "$work"

layout() { # ranks -> "dp tp pp"
    case $1 in
    1) echo "1 1 1" ;;
    8) echo "2 2 2" ;;
    32) echo "4 4 2" ;;
    *) echo "ckpt-bench.sh: no layout for $1 ranks (1, 8 or 32)" >&2; exit 2 ;;
    esac
}

# run N TAG ARGS...: megatrain on N ranks, each under /usr/bin/time; TAG.log, TAG.rss (KB per rank)
run() {
    n=$1 tag=$2
    shift 2
    rm -f "$tag".rss.*
    "$mpirun" -np "$n" sh -c 'exec /usr/bin/time -f %M -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' "$tag" \
        "$mt" "$@" >"$tag.log" 2>&1 || { echo "ckpt-bench.sh: $tag failed:" >&2; tail -5 "$tag.log" >&2; exit 1; }
    cat "$tag".rss.* | sort -n | tail -1 >"$tag.rss"
}

mib() { awk -v k="$(cat "$1")" 'BEGIN { printf "%.0f", k / 1024 }'; }

echo "| ranks | layout (dp x tp x pp) | written | save | save throughput | resume | peak RSS per rank: no checkpoint | with save | resume |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $ranks; do
    set -- $(layout "$n")
    dp=$1 tp=$2 pp=$3
    cat >"r$n.yaml" <<Y
model: {vocab_size: 32000, n_layers: 12, d_model: 1024, n_heads: 4, z_dim: 256, v_dim: 2048, ffn_dim: 2560,
        ffn: silu, chunk: 128, groups: 32, cema_ndim: 16, share_emb: false}
parallel: {tp: $tp, pp: $pp, micro_batches: $pp}
data: {seq_len: 128, batch_size: $((dp * pp))}
train: {steps: 1, seed: 1}
log: {every: 1, metrics: r$n.jsonl}
checkpoint: {dir: ck$n, keep_last: 1}
Y
    rm -rf "ck$n"
    run "$n" "base$n" "r$n.yaml" --set checkpoint.dir=
    run "$n" "save$n" "r$n.yaml"
    run "$n" "resume$n" "r$n.yaml"
    saved=$(sed -n 's/.*checkpoint .* written (\([0-9.]*\) GB in [0-9]* files, \([0-9.]*\) s).*/\1 \2/p' "save$n.log")
    resumed=$(sed -n 's/.*resumed from .* in \([0-9.]*\) s$/\1/p' "resume$n.log")
    set -- $saved
    printf "| %d | %d x %d x %d | %.2f GB | %.1f s | %.0f MB/s | %.1f s | %s MiB | %s MiB | %s MiB |\n" "$n" "$dp" "$tp" \
        "$pp" "$1" "$2" "$(awk -v b="$1" -v s="$2" 'BEGIN { print 1000 * b / s }')" "$resumed" "$(mib "base$n.rss")" \
        "$(mib "save$n.rss")" "$(mib "resume$n.rss")"
    rm -rf "ck$n"
done
