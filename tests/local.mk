# tests/: the C harness (tap.h), shell helpers (tap.sh) and each area's tests.
EXTRA_DIST += tests/tap.h tests/tap.sh tests/plan_run.sh tests/lsan.supp
include tests/ops.mk
include tests/ref/local.mk
include tests/gpu/local.mk
include tests/fuzz/local.mk

check_PROGRAMS += tests/test_model tests/test_parallel tests/test_guard tests/test_comm tests/test_generate \
  tests/test_ckpt_split
tests_test_model_SOURCES = tests/test_model.c
tests_test_generate_SOURCES = tests/test_generate.c
tests_test_ckpt_split_SOURCES = tests/test_ckpt_split.c
tests_test_parallel_SOURCES = tests/test_parallel.c tests/subjob.h
tests_test_guard_SOURCES = tests/test_guard.c
tests_test_comm_SOURCES = tests/test_comm.c tests/comm_checks.h
TESTS += tests/test_model tests/test_generate tests/test_ckpt_split tests/test_eval.sh tests/test_cli.sh \
  tests/test_demo.sh tests/test_parallel.sh tests/test_guard.sh \
  tests/test_skip.sh tests/test_metrics.sh tests/test_comm.sh tests/test_watchdog.sh tests/test_layers.sh \
  tests/test_scale.sh tests/test_plan.sh tests/test_prefetch.sh tests/test_eval_tokenizers.py
EXTRA_DIST += tests/test_eval.sh tests/test_cli.sh tests/test_demo.sh tests/test_parallel.sh tests/test_guard.sh \
  tests/test_skip.sh tests/test_metrics.sh tests/test_comm.sh tests/test_watchdog.sh tests/test_layers.sh \
  tests/test_scale.sh tests/test_plan.sh tests/test_prefetch.sh tests/test_eval_tokenizers.py

# The design card's command at full size: 256 oversubscribed ranks (about 4 minutes and 10 GB on
# 2 cores; make check runs the same test with 64).
check-scale: all
	SCALE=256 $(MAKE) $(AM_MAKEFLAGS) check TESTS=tests/test_scale.sh
.PHONY: check-scale
