# tools/: setup scripts and the command-line tools.
EXTRA_DIST += tools/device-prepare.sh tools/install-deps.sh tools/build.sh tools/check.sh tools/demo.sh .ci/run
include tools/megaplot.mk
include tools/megackpt.mk
