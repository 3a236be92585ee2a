#!/bin/sh
# install-deps.sh: the Debian 12 / Ubuntu 24.04 packages megatrain builds and tests with.
# Runs apt-get as root, through sudo when not root. Usage: tools/install-deps.sh [--demo]
# (--demo adds npm, which fetches the demo corpus). When another apt or dpkg holds apt's locks (a
# fresh machine's unattended upgrades), it says so and waits for them, up to 10 minutes.
set -eu
pkgs="build-essential autoconf automake pkg-config openmpi-bin libopenmpi-dev libhdf5-dev libyaml-dev
      libopenblas-openmp-dev zlib1g-dev python3-torch python3-numpy python3-h5py python3-yaml gnuplot-nox
      sentencepiece python3-sentencepiece python3-regex"
if [ "${1:-}" = --demo ] && ! command -v npm >/dev/null 2>&1; then pkgs="$pkgs npm"; fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
err=$(mktemp)
trap 'rm -f "$err"' EXIT

# apt_get ARGS...: apt-get, waiting up to 10 minutes for the locks: DPkg::Lock::Timeout
# makes it wait for dpkg's, not for the package lists' (apt-get update), so a failure on a held
# lock is tried again while time is left
apt_get() {
    start=$(date +%s) left=600 told=""
    until $sudo env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -o DPkg::Lock::Timeout=$left "$@" 2>"$err"; do
        held=$(sed -n 's/^E: \(Could not get lock .*\)/\1/p' "$err" | head -1)
        left=$((600 - ($(date +%s) - start)))
        if [ -z "$held" ] || [ "$left" -le 0 ]; then
            cat "$err" >&2
            exit 1
        fi
        [ -n "$told" ] || echo "install-deps: waiting up to 10 minutes for another package manager to finish ($held)"
        told=1
        sleep 5
    done
    cat "$err" >&2
}
echo "installing:$missing"
apt_get update -q
apt_get install -y -q --no-install-recommends $missing
