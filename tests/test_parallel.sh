# test_parallel.sh: the layout equivalence matrix (tests/test_parallel.c) on 8 ranks.
exec $MPIRUN -np 8 "$top_builddir/tests/test_parallel"
