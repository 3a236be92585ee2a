#!/bin/sh
# build.sh: configure and build megatrain in the source tree (CPU backend).
# Extra arguments go to ./configure (e.g. --with-cuda).
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure "$@"
make -j"$(nproc)"
