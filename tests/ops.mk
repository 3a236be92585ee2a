# tests of kernels/ (owned by the kernels work): the CPU backend's ops against finite
# differences (grad), reference formulas and AdamW (ref), sequence splitting of the stateful
# ops (split), and fp32 against fp64 (prec). The shared harness is tests/ops_harness.h.
EXTRA_DIST += tests/ops_harness.h
OPS_TESTS = tests/test_ops_grad tests/test_ops_ref tests/test_ops_split tests/test_ops_prec
check_PROGRAMS += $(OPS_TESTS)
TESTS += $(OPS_TESTS)
tests_test_ops_grad_SOURCES = tests/test_ops_grad.c
tests_test_ops_ref_SOURCES = tests/test_ops_ref.c
tests_test_ops_split_SOURCES = tests/test_ops_split.c
tests_test_ops_prec_SOURCES = tests/test_ops_prec.c
