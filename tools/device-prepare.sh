#!/bin/sh
# device-prepare.sh: get the GPU (device) machine's missing pieces ready in the ignored folder
# .device/: libyaml (../shared/device/prepare.sh) and OpenBLAS's static library for the CPU
# reference, which the GPU tests compare against (the GPU machines have no BLAS). Run once per
# checkout, here; then device commands carry .device and start with '. .device/env.sh &&'.
set -eu
cd "$(dirname "$0")/.."
../shared/device/prepare.sh
b=.device/blas
mkdir -p "$b/include"
src=/usr/lib/x86_64-linux-gnu/openblas-openmp
[ -f "$src/libopenblas.a" ] || { echo "install libopenblas-openmp-dev here first" >&2; exit 1; }
[ -f "$b/libopenblas.a.gz" ] || gzip -9 -c "$src/libopenblas.a" >"$b/libopenblas.a.gz"
cp /usr/include/x86_64-linux-gnu/openblas-openmp/*.h "$b/include/"
grep -q BLAS_LIBS .device/env.sh || cat >>.device/env.sh <<'ENV'
# the GPU machines preset CC to a plain gcc; megatrain builds with MPI's compiler
export CC=mpicc
# OpenBLAS for the CPU reference, linked statically (tools/device-prepare.sh)
B=$(cd "$(dirname "${BASH_SOURCE:-.device/env.sh}")" && pwd)/blas
[ -f "$B/libopenblas.a" ] || gzip -dc "$B/libopenblas.a.gz" >"$B/libopenblas.a"
export BLAS_CFLAGS="-I$B/include" BLAS_LIBS="$B/libopenblas.a"
ENV
echo "prepared .device/ (libyaml and OpenBLAS for the GPU machine)"
