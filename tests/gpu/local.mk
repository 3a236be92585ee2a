# tests/gpu/: the CUDA backend against the CPU reference, op by op and as a whole model
# (`make check-gpu`, on a GPU machine; plain `make check` only builds them), and the benchmark
# tool tools/megabench.c (any backend; CUDA events when built with CUDA).
bin_PROGRAMS += megabench
megabench_SOURCES = tools/megabench.c
megabench_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
EXTRA_DIST += tests/gpu/test_plan_gpu.sh tests/gpu/bench.sh tests/gpu/bench.yaml tests/gpu/kernels.sh tests/gpu/scaling.sh tests/gpu/cema_fft.sh tests/gpu/cema_fft.cu

if HAVE_CUDA
GPU_TESTS = tests/gpu/test_ops_gpu tests/gpu/test_model_gpu tests/gpu/test_comm_gpu
check_PROGRAMS += $(GPU_TESTS)
tests_gpu_test_comm_gpu_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CFLAGS)
tests_gpu_test_ops_gpu_SOURCES = tests/gpu/test_ops_gpu.c
tests_gpu_test_model_gpu_SOURCES = tests/gpu/test_model_gpu.c
tests_gpu_test_comm_gpu_SOURCES = tests/gpu/test_comm_gpu.c tests/comm_checks.h tests/subjob.h

CLEANFILES += $(GPU_CHECKS:=.log) $(GPU_CHECKS:=.trs) tests/test_parallel_mpi.log tests/test_parallel_mpi.trs \
  tests/test_parallel_nccl.log tests/test_parallel_nccl.trs

# Each test through the TAP driver (logs beside the programs), then the summary; the CPU
# reference runs on every core (the test environment defaults to one thread). test_comm_gpu
# talks between two ranks (on one GPU, or on two); test_plan_gpu.sh (the memory plan against the
# measured peak) runs megatrain itself; test_graph_gpu is tests/test_parallel's train.graph
# comparison (a captured and replayed step against the same step run op by op).
GPU_CHECKS = $(GPU_TESTS) tests/gpu/test_plan_gpu tests/gpu/test_graph_gpu
check-gpu: $(GPU_TESTS) megatrain tests/test_parallel
	@export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-`nproc`}; $(AM_TESTS_ENVIRONMENT) \
	for t in $(GPU_CHECKS); do \
	  case $$t in *comm_gpu) run="$(MPIRUN) -np 2 ./$$t";; *plan_gpu) run="sh $(srcdir)/$$t.sh";; \
	    *graph_gpu) run="$(MPIRUN) -np 1 ./tests/test_parallel --device cuda --models 6";; *) run=./$$t;; esac; \
	  $(TAP) --test-name $$t --log-file $$t.log --trs-file $$t.trs -- $$run; \
	done; \
	echo "check-gpu summary:"; grep -h '^:test-result:' $(GPU_CHECKS:=.trs) | sort | uniq -c; \
	! grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' $(GPU_CHECKS:=.trs)

# The layout equivalence matrix of tests/test_parallel on CUDA (every layout of up to 4 ranks:
# dp2 tp2 cp2 pp2 cp4 pp4 dp2xtp2 tp2xcp2 pp2xcp2 tp2xpp2), against one GPU, with evaluation:
# 1. 4 ranks over MPI through host staging (parallel.comm=mpi), spread over the GPUs, all on one
#    when there is one: always.
# 2. One rank per GPU over NCCL on min(GPUs, 4) ranks: a layout that needs more ranks than that
#    fails as "not run", naming itself; with one GPU no NCCL layout can run and all fail. GPUS=N
#    says how many GPUs to use (default: all); GPUS=1 runs part 1 alone and says that NCCL was
#    not tested: `make check-multigpu GPUS=1` is the honest one-GPU run.
# MODELS=34 (say) runs only those of test_parallel's four models (--models): the whole matrix
# takes over five minutes on one GPU.
# NVLink multicast stays off.
check-multigpu: tests/test_parallel
	@n=$(GPUS); n=$${n:-`nvidia-smi -L 2>/dev/null | grep -c '^GPU'`}; m='$(MODELS)'; m=$${m:+--models $$m}; \
	export NCCL_NVLS_ENABLE=0; $(AM_TESTS_ENVIRONMENT) \
	if [ "$$n" -lt 1 ]; then echo "check-multigpu: FAIL: no GPU found" >&2; exit 1; fi; \
	runs=tests/test_parallel_mpi; np=$$n; [ $$np -le 4 ] || np=4; \
	$(TAP) --test-name test_parallel_mpi --log-file tests/test_parallel_mpi.log \
	  --trs-file tests/test_parallel_mpi.trs -- $(MPIRUN) -np 4 ./tests/test_parallel --device cuda --comm mpi $$m; \
	if [ "$(GPUS)" != 1 ]; then \
	  runs="$$runs tests/test_parallel_nccl"; \
	  $(TAP) --test-name test_parallel_nccl --log-file tests/test_parallel_nccl.log \
	    --trs-file tests/test_parallel_nccl.trs -- $(MPIRUN) -np $$np ./tests/test_parallel --device cuda --comm nccl $$m; \
	fi; \
	echo "check-multigpu summary ($$n GPUs):"; for r in $$runs; do cat $$r.trs; done | grep '^:test-result:' | sort | uniq -c; \
	for r in $$runs; do grep '^FAIL:.*not run' $$r.log; done; \
	if [ "$(GPUS)" = 1 ]; then echo "check-multigpu: GPUS=1: the layouts ran on one GPU over MPI; NCCL between GPUs was NOT tested"; fi; \
	for r in $$runs; do ! grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' $$r.trs || exit 1; done
else
check-multigpu: check-gpu
check-gpu:
	@echo "check-gpu: configure with --with-cuda to build the GPU tests" >&2; exit 1
endif
.PHONY: check-gpu check-multigpu
