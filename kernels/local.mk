# kernels/: the ops interface, the CPU reference built twice (fp32 for training, fp64 for
# gradient checks, from the same sources), and the CUDA backend when configured.
CPU_SOURCES = \
  kernels/cpu/cpu.h \
  kernels/cpu/memory.c \
  kernels/cpu/elementwise.c \
  kernels/cpu/embedding.c \
  kernels/cpu/matmul.c \
  kernels/cpu/norms.c \
  kernels/cpu/tsnorm.c \
  kernels/cpu/cema.c \
  kernels/cpu/qk.c \
  kernels/cpu/attention.c \
  kernels/cpu/attention_step.c \
  kernels/cpu/crossentropy.c \
  kernels/cpu/adamw.c \
  kernels/cpu/table.c

noinst_LIBRARIES += kernels/libkernels.a
kernels_libkernels_a_SOURCES = kernels/ops.h kernels/ops.c kernels/scratch.h kernels/scratch.c

# The two CPU builds, each with its own flags and object names.
noinst_LIBRARIES += kernels/libcpu32.a kernels/libcpu64.a
kernels_libcpu32_a_SOURCES = $(CPU_SOURCES)
kernels_libcpu32_a_CPPFLAGS = $(AM_CPPFLAGS) -DCPU_REAL_BITS=32
kernels_libcpu64_a_SOURCES = $(CPU_SOURCES)
kernels_libcpu64_a_CPPFLAGS = $(AM_CPPFLAGS) -DCPU_REAL_BITS=64

if HAVE_CUDA
include kernels/cuda/local.mk
endif
