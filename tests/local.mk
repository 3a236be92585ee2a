# tests/: the C harness (tap.h) and each area's tests.
EXTRA_DIST += tests/tap.h
include tests/ops.mk
