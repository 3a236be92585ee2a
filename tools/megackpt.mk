# tools/megackpt.mk: megackpt (list, verify, reshard, export and import checkpoints) and the
# checkpoint tests (resume, resharding, signals, damaged files, kill -9, what a save deletes, export
# to the reference).

bin_PROGRAMS += megackpt
megackpt_SOURCES = tools/megackpt.c tools/convert.h tools/convert.c tools/safetensors.h tools/safetensors.c

CKPT_TESTS = tests/test_megackpt.sh tests/test_ckpt_resume.sh tests/test_ckpt_reshard.sh \
  tests/test_ckpt_damage.sh tests/test_ckpt_kill.sh tests/test_ckpt_files.sh tests/test_ckpt_export.py
TESTS += $(CKPT_TESTS)
EXTRA_DIST += $(CKPT_TESTS) tests/ckpt.sh
