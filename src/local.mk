# src/: megatrain itself.
noinst_LIBRARIES += src/libutil.a src/libsrc.a
src_libutil_a_SOURCES = src/util.h src/util.c
src_libsrc_a_SOURCES = src/version.c

bin_PROGRAMS += megatrain
megatrain_SOURCES = src/main.c
