#!/bin/sh
# kernels.sh: the time of each of megatrain's own CUDA kernels in a training step, by Nsight
# Compute (doc/perf.md). Run from the build directory after `make megabench`:
#     tests/gpu/kernels.sh OUT.csv [SRCDIR] [megabench options...]
#     tests/gpu/kernels.sh -t OUT.csv      # the table again from a CSV already taken
# e.g. tests/gpu/kernels.sh k200.csv . --set model.preset=mega200M --set data.batch_size=8
# It runs megabench for one timed step after one warm-up under ncu (which serialises the kernels:
# each time is a kernel alone, cuBLASLt's GEMMs included), keeps ncu's CSV in OUT.csv and prints
# ms a step, calls a step and us a call for each kernel, the largest first. megabench runs three
# steps (the warm-up, its op table's and the timed one); a step is counted by AdamW's kernel (one
# call a step). A kernel ncu fails to profile is left out of the table.
usage="usage: kernels.sh OUT.csv [SRCDIR] [megabench options...] | kernels.sh -t OUT.csv"
if [ "${1:-}" = -t ]; then
    csv=${2:?$usage}
else
    csv=${1:?$usage}
    shift
    src=.
    case "${1:-}" in -*|"") ;; *) src=$1; shift ;; esac
    ncu --clock-control none --csv --metrics gpu__time_duration.sum \
        ./megabench "$src/tests/gpu/bench.yaml" --steps 1 --warmup 1 "$@" >"$csv"
    rc=$?
    [ $rc -eq 0 ] || echo "kernels.sh: ncu exited with $rc (its output: $csv); the table of what it took:" >&2
fi
python3 - "$csv" <<'PY'
import collections, csv, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit(f"kernels.sh: {sys.argv[1]}: no kernel rows (ncu's CSV header \"ID\",... not found)")
rows = list(csv.reader(lines[start:]))
head = rows[0]
name, value, unit = (head.index(k) for k in ("Kernel Name", "Metric Value", "Metric Unit"))
scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0}
ms, calls = collections.defaultdict(float), collections.Counter()
for r in rows[1:]:
    if len(r) == len(head) and r[unit] in scale:
        k = r[name].split("(")[0].removeprefix("void ")
        ms[k] += float(r[value].replace(",", "")) * scale[r[unit]]
        calls[k] += 1
steps = next((n for k, n in calls.items() if k.startswith("adamw_kernel")), 0)
if not steps:
    sys.exit("kernels.sh: no AdamW kernel in the CSV, so no step to divide by")
print(f"{'ms/step':>9} {'calls':>6} {'us/call':>9}  kernel ({steps} steps profiled)")
for k, t in sorted(ms.items(), key=lambda kv: -kv[1]):
    print(f"{t / steps:9.3f} {calls[k] / steps:6.1f} {1e3 * t / calls[k]:9.1f}  {k}")
print(f"{sum(ms.values()) / steps:9.3f} {'':6} {'':9}  all of the above")
PY
