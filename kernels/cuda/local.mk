# kernels/cuda/: the CUDA backend (built with --with-cuda). Automake knows no .cu files: nvcc
# builds each one for sm_90 (plus PTX) by the pattern rule below, and the objects go into
# libcuda.a, which every program links after libkernels.a.
CUDA_SOURCES = \
  kernels/cuda/context.cu \
  kernels/cuda/memory.cu \
  kernels/cuda/elementwise.cu \
  kernels/cuda/embedding.cu \
  kernels/cuda/matmul.cu \
  kernels/cuda/norms.cu \
  kernels/cuda/tsnorm.cu \
  kernels/cuda/cema.cu \
  kernels/cuda/qk.cu \
  kernels/cuda/attention.cu \
  kernels/cuda/attention_step.cu \
  kernels/cuda/crossentropy.cu \
  kernels/cuda/adamw.cu \
  kernels/cuda/graph.cu \
  kernels/cuda/table.cu
CUDA_OBJECTS = $(CUDA_SOURCES:.cu=.o)
NVCC_FLAGS = -std=c++17 -O3 -lineinfo '-gencode=arch=compute_90,code=[sm_90,compute_90]' \
  -I$(top_srcdir) -I$(top_builddir) $(CUDA_CFLAGS) $(NVCCFLAGS)

noinst_LIBRARIES += kernels/libcuda.a
# (the .cu files are listed as sources only so that every tarball carries them, also one made
# without CUDA: automake compiles nothing it has no rule for)
kernels_libcuda_a_SOURCES = kernels/cuda/cuda.cuh kernels/cuda/check.h $(CUDA_SOURCES)
kernels_libcuda_a_LIBADD = $(CUDA_OBJECTS)
CUDA_KERNEL_LIBS += kernels/libcuda.a
CLEANFILES += $(CUDA_OBJECTS)

kernels/cuda/%.o: $(top_srcdir)/kernels/cuda/%.cu $(top_srcdir)/kernels/cuda/cuda.cuh $(top_srcdir)/kernels/cuda/check.h \
  $(top_srcdir)/kernels/ops.h
	@$(MKDIR_P) kernels/cuda
	$(AM_V_GEN)$(NVCC) $(NVCC_FLAGS) -c -o $@ $<
