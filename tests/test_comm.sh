# test_comm.sh: the communication interface over MPI, host and staged device buffers (tests/test_comm.c).
exec $MPIRUN -np 4 "$top_builddir/tests/test_comm"
