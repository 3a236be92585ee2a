# tests/: the C harness (tap.h), shell helpers (tap.sh) and each area's tests.
EXTRA_DIST += tests/tap.h tests/tap.sh tests/lsan.supp
include tests/ops.mk
include tests/ref/local.mk
include tests/gpu/local.mk
include tests/fuzz/local.mk

check_PROGRAMS += tests/test_model tests/test_parallel tests/test_guard tests/test_comm
tests_test_model_SOURCES = tests/test_model.c
tests_test_parallel_SOURCES = tests/test_parallel.c tests/subjob.h
tests_test_guard_SOURCES = tests/test_guard.c
tests_test_comm_SOURCES = tests/test_comm.c tests/comm_checks.h
TESTS += tests/test_model tests/test_cli.sh tests/test_demo.sh tests/test_parallel.sh tests/test_guard.sh \
  tests/test_skip.sh tests/test_metrics.sh tests/test_comm.sh tests/test_watchdog.sh tests/test_layers.sh
EXTRA_DIST += tests/test_cli.sh tests/test_demo.sh tests/test_parallel.sh tests/test_guard.sh tests/test_skip.sh \
  tests/test_metrics.sh tests/test_comm.sh tests/test_watchdog.sh tests/test_layers.sh
