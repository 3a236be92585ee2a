# tests/: the C harness (tap.h), shell helpers (tap.sh) and each area's tests.
EXTRA_DIST += tests/tap.h tests/tap.sh
include tests/ops.mk
include tests/ref/local.mk
include tests/gpu/local.mk

check_PROGRAMS += tests/test_model
tests_test_model_SOURCES = tests/test_model.c
TESTS += tests/test_model tests/test_cli.sh tests/test_demo.sh
EXTRA_DIST += tests/test_cli.sh tests/test_demo.sh
