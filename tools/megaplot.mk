# tools/megaplot.mk: the scaling-study tools (megaplot, megasweep), their tests and sample logs.

# megaplot needs only util; megasweep also megatrain's config code (the default LDADD).
bin_PROGRAMS += megaplot megasweep
megaplot_SOURCES = tools/megaplot.c \
  tools/runlog.h tools/runlog.c tools/scaling.h tools/scaling.c tools/plots.h tools/plots.c
megaplot_LDADD = base/libbase.a -lm
megasweep_SOURCES = tools/megasweep.c

TESTS += tests/test_megaplot.sh tests/test_sweep.sh tests/test_slurm.sh
EXTRA_DIST += tests/test_megaplot.sh tests/test_sweep.sh tests/test_slurm.sh \
  tests/fake-slurm/sbatch tests/fake-slurm/srun tests/fake-slurm/scontrol tests/fake-slurm/mpirun \
  tests/fake-slurm/fake-megatrain \
  tests/data/metrics/README.md tests/data/metrics/run-1gpu.jsonl tests/data/metrics/run-2gpu.jsonl \
  tests/data/metrics/run-4gpu.jsonl tests/data/metrics/resumed.jsonl tests/data/metrics/malformed.jsonl
