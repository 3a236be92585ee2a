#!/bin/sh
# install-deps.sh: the Debian 12 / Ubuntu 24.04 packages megatrain builds and tests with.
# Runs apt-get as root, through sudo when not root. Usage: tools/install-deps.sh [--demo]
# (--demo adds npm, which fetches the demo corpus).
set -eu
pkgs="build-essential autoconf automake pkg-config openmpi-bin libopenmpi-dev libhdf5-dev libyaml-dev
      libopenblas-openmp-dev python3-torch python3-numpy python3-h5py python3-yaml gnuplot-nox"
if [ "${1:-}" = --demo ] && ! command -v npm >/dev/null 2>&1; then pkgs="$pkgs npm"; fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing:$missing"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
