# doc/: the documentation.
EXTRA_DIST += doc/checkpoint.md doc/config.md doc/data.md doc/metrics.md doc/model.md doc/model-check.md doc/parallel.md \
  doc/scaling.md doc/slurm.md doc/perf.md doc/cuda.md doc/architecture.md doc/eval.md
