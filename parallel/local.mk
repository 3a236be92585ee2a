# parallel/: the process grid, communication over MPI or NCCL, and the patterns built on it: the
# tensor-parallel mappings, the chunk-state exchange, replicated-gradient sums, the pipeline
# schedule with its stage traffic, and the sharded optimizer.
noinst_LIBRARIES += parallel/libparallel.a
parallel_libparallel_a_SOURCES = \
  parallel/mpi_check.h \
  parallel/watchdog.h parallel/watchdog.c \
  parallel/topo.h parallel/topo.c \
  parallel/comm.h parallel/comm.c parallel/comm_nccl.h \
  parallel/tp.h parallel/tp.c \
  parallel/cp.h parallel/cp.c \
  parallel/replicas.h parallel/replicas.c \
  parallel/zero.h parallel/zero.c \
  parallel/pipeline.h parallel/pipeline.c
if HAVE_CUDA
parallel_libparallel_a_SOURCES += parallel/comm_nccl.c
parallel_libparallel_a_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
endif
EXTRA_DIST += parallel/comm_nccl.c
