# tests/: the C harness (tap.h), shell helpers (tap.sh) and each area's tests.
EXTRA_DIST += tests/tap.h tests/tap.sh tests/lsan.supp
include tests/ops.mk
include tests/ref/local.mk
include tests/gpu/local.mk
include tests/fuzz/local.mk

check_PROGRAMS += tests/test_model tests/test_parallel
tests_test_model_SOURCES = tests/test_model.c
tests_test_parallel_SOURCES = tests/test_parallel.c
TESTS += tests/test_model tests/test_cli.sh tests/test_demo.sh tests/test_parallel.sh
EXTRA_DIST += tests/test_cli.sh tests/test_demo.sh tests/test_parallel.sh
