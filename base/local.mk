# base/: what every folder shares (errors and exit codes, allocation, logging, counter-based
# random numbers, timing, command-line option values, a JSON reader); it includes nothing of the
# project's.
noinst_LIBRARIES += base/libbase.a
base_libbase_a_SOURCES = base/util.h base/util.c base/cliopt.h base/cliopt.c base/jsonl.h base/jsonl.c
