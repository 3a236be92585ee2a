# tools/: setup scripts and the command-line tools.
EXTRA_DIST += tools/device-prepare.sh tools/install-deps.sh tools/build.sh tools/check.sh tools/demo.sh .ci/run \
  tools/ckpt-bench.sh
# the setup scripts and make install
TESTS += tests/test_setup.sh
EXTRA_DIST += tests/test_setup.sh
include tools/megaplot.mk
include tools/megackpt.mk
