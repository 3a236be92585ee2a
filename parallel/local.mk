# parallel/: the process grid and communication.
noinst_LIBRARIES += parallel/libparallel.a
parallel_libparallel_a_SOURCES = \
  parallel/mpi_check.h \
  parallel/topo.h parallel/topo.c
