# src/: megatrain itself.
noinst_LIBRARIES += src/libsrc.a
src_libsrc_a_SOURCES = \
  src/config.h src/config.c \
  src/model.h src/model.c \
  src/optim.h src/optim.c \
  src/guard.h src/guard.c \
  src/metrics.h src/metrics.c \
  src/train.h src/train.c \
  src/h5util.h src/h5util.c \
  src/ckpt.h src/ckpt.c \
  src/dump.h src/dump.c

bin_PROGRAMS += megatrain
megatrain_SOURCES = src/main.c
