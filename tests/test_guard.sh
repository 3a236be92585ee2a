# test_guard.sh: skipped updates under several layouts (tests/test_guard.c) on 4 ranks.
exec timeout 600 $MPIRUN -np 4 "$top_builddir/tests/test_guard"
