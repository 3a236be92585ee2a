# src/: megatrain itself.
noinst_LIBRARIES += src/libsrc.a
src_libsrc_a_SOURCES = \
  src/config.h src/config.c \
  src/model.h src/model.c \
  src/optim.h src/optim.c \
  src/guard.h src/guard.c \
  src/metrics.h src/metrics.c \
  src/batch.h src/batch.c \
  src/train.h src/train.c \
  src/plan.h src/plan.c \
  src/h5util.h src/h5util.c \
  src/ckpt.h src/ckpt.c src/ckpt_meta.h src/ckpt_meta.c src/ckpt_slices.h src/ckpt_slices.c src/ckpt_v2.h src/ckpt_v2.c \
  src/dump.h src/dump.c \
  src/cli.h src/cli.c \
  src/codec.h src/codec.c \
  src/decode.h src/decode.c \
  src/sample.h src/sample.c \
  src/eval.h src/eval.c \
  src/generate.h src/generate.c

bin_PROGRAMS += megatrain
megatrain_SOURCES = src/main.c

# the reading benchmark (doc/data.md): tokens/s with and without data.prefetch
noinst_PROGRAMS += tools/databench
tools_databench_SOURCES = tools/databench.c
