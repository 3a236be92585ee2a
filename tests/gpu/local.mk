# tests/gpu/: the CUDA backend against the CPU reference, op by op and as a whole model
# (`make check-gpu`, on a GPU machine; plain `make check` only builds them), and the benchmark
# tool tools/megabench.c (any backend; CUDA events when built with CUDA).
bin_PROGRAMS += megabench
megabench_SOURCES = tools/megabench.c
megabench_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
EXTRA_DIST += tests/gpu/bench.sh tests/gpu/bench.yaml tests/gpu/scaling.sh tests/gpu/cema_fft.sh tests/gpu/cema_fft.cu

if HAVE_CUDA
GPU_TESTS = tests/gpu/test_ops_gpu tests/gpu/test_model_gpu tests/gpu/test_comm_gpu
check_PROGRAMS += $(GPU_TESTS)
tests_gpu_test_comm_gpu_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
tests_gpu_test_ops_gpu_SOURCES = tests/gpu/test_ops_gpu.c
tests_gpu_test_model_gpu_SOURCES = tests/gpu/test_model_gpu.c
tests_gpu_test_comm_gpu_SOURCES = tests/gpu/test_comm_gpu.c tests/comm_checks.h tests/subjob.h

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

# The layout equivalence matrix on one rank per GPU (2 GPUs: dp2 tp2 cp2 pp2; 4 GPUs: also
# dp2xtp2 tp2xcp2 pp2xcp2 cp4 ...), against one GPU; NVLink multicast stays off.
check-multigpu: tests/test_parallel
	@n=`nvidia-smi -L | wc -l`; export NCCL_NVLS_ENABLE=0; $(AM_TESTS_ENVIRONMENT) \
	$(TAP) --test-name test_parallel_gpu --log-file tests/test_parallel_gpu.log --trs-file tests/test_parallel_gpu.trs -- \
	  $(MPIRUN) -np $$n ./tests/test_parallel --device cuda; \
	echo "check-multigpu summary ($$n GPUs):"; grep -h '^:test-result:' tests/test_parallel_gpu.trs | sort | uniq -c; \
	! grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' tests/test_parallel_gpu.trs
else
check-multigpu: check-gpu
check-gpu:
	@echo "check-gpu: configure with --with-cuda to build the GPU tests" >&2; exit 1
endif
.PHONY: check-gpu check-multigpu
