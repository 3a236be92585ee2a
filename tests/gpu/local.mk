# tests/gpu/: the CUDA backend against the CPU reference, op by op and as a whole model
# (`make check-gpu`, on a GPU machine; plain `make check` only builds them), and the benchmark
# tool tools/megabench.c (any backend; CUDA events when built with CUDA).
bin_PROGRAMS += megabench
megabench_SOURCES = tools/megabench.c
megabench_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
EXTRA_DIST += tests/gpu/bench.sh tests/gpu/bench.yaml

if HAVE_CUDA
GPU_TESTS = tests/gpu/test_ops_gpu tests/gpu/test_model_gpu tests/gpu/test_comm_gpu
check_PROGRAMS += $(GPU_TESTS)
tests_gpu_test_ops_gpu_SOURCES = tests/gpu/test_ops_gpu.c
tests_gpu_test_model_gpu_SOURCES = tests/gpu/test_model_gpu.c
tests_gpu_test_comm_gpu_SOURCES = tests/gpu/test_comm_gpu.c

CLEANFILES += $(GPU_TESTS:=.log) $(GPU_TESTS:=.trs)

# Each test through the TAP driver (logs beside the programs), then the summary; the CPU
# reference runs on every core (the test environment defaults to one thread).
check-gpu: $(GPU_TESTS)
	@export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-`nproc`}; $(AM_TESTS_ENVIRONMENT) \
	for t in $(GPU_TESTS); do \
	  $(TAP) --test-name $$t --log-file $$t.log --trs-file $$t.trs -- ./$$t; \
	done; \
	echo "check-gpu summary:"; grep -h '^:test-result:' $(GPU_TESTS:=.trs) | sort | uniq -c; \
	! grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' $(GPU_TESTS:=.trs)
else
check-gpu:
	@echo "check-gpu: configure with --with-cuda to build the GPU tests" >&2; exit 1
endif
.PHONY: check-gpu
