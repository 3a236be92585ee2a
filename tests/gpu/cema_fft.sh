#!/bin/sh
# cema_fft.sh: build tests/gpu/cema_fft.cu (cuFFT's lower bound for CEMA's forward) and run it on
# the shapes of doc/perf.md's table, to set against the chunked scan's cema_forward times there.
#     tests/gpu/cema_fft.sh [SRCDIR]      (on the GPU machine; nvcc and cuFFT from the CUDA Toolkit)
src=${1:-.}
nvcc=${NVCC:-nvcc}
$nvcc -O3 -std=c++17 '-gencode=arch=compute_90,code=sm_90' -o cema_fft "$src/tests/gpu/cema_fft.cu" -lcufft || exit 1
./cema_fft 8 4096 1024 && ./cema_fft 1 32768 1024 && ./cema_fft 8 4096 2048 && ./cema_fft 1 32768 2048
