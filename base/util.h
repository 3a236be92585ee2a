/* util.h: what every part of megatrain shares: fatal errors with the right exit code under MPI,
   checked allocation, counter-based random numbers, timing and string helpers. */
#ifndef MEGATRAIN_UTIL_H
#define MEGATRAIN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>

#define UTIL_EXIT_INPUT 2 /* bad input: config, flags, data, checkpoint */
#define UTIL_EXIT_FAIL 1  /* anything else */

/* Name printed before every message ("megatrain", "megadata", ...). */
void util_set_progname(const char *name);
const char *util_progname(void);

/* Bad input found by this rank alone: print "prog: error: ..." and take the whole job down with
   exit code 2 (MPI_Abort when other ranks exist, so none is left hanging). */
noreturn void fail_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Bad input that every rank finds the same way (config, flags): rank 0 prints, all exit 2. */
noreturn void fail_input_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Internal or system failure on this rank: print and take the job down with exit code 1. */
noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* fn runs (on the thread that stops) before fail, fail_input or fail_input_all end the process:
   e.g. to let a reading thread leave a library that exit's clean-up tears down. One at a time. */
void util_before_fatal(void (*fn)(void));
/* Rank 0 of the world prints (others stay quiet); for progress, warnings, and an error that every
   rank meets and stops on cleanly. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int util_world_rank(void);

void *xmalloc(size_t bytes);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
/* p (holding *cap items of size bytes) with room for at least need items: grown by doubling,
   *cap updated. */
void *xgrow(void *p, size_t *cap, size_t need, size_t size);
/* The whole file, NUL-terminated (len excludes the NUL), in a fresh heap buffer; a file that cannot
   be read stops through fail_input. */
char *util_read_file(const char *path, size_t *len);
/* printf into a fresh heap string */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Counter-based random numbers: the value at (key, index) never depends on what else was drawn,
   so parameter init and data sampling are identical under any parallel layout. */
uint64_t rng_mix(uint64_t x);
uint64_t rng_key(uint64_t seed, const char *name);
uint64_t rng_u64(uint64_t key, uint64_t index);
double rng_uniform(uint64_t key, uint64_t index); /* in (0, 1) */
double rng_normal(uint64_t key, uint64_t index);  /* standard normal */

double util_now(void); /* monotonic seconds */
/* s as a double-quoted string that JSON and YAML both read back (\", \\, \u00XX escapes) */
void util_write_quoted(FILE *f, const char *s);
uint64_t util_fnv1a(const void *data, size_t bytes, uint64_t h); /* h = UTIL_FNV_INIT to start */
#define UTIL_FNV_INIT 0xcbf29ce484222325ULL
/* fp32 <-> bf16 (the upper 16 bits) on the host, n values: rounding to nearest even, as the GPU
   rounds; a NaN stays a NaN */
void util_f32_to_bf16(uint16_t *out, const float *in, size_t n);
void util_bf16_to_f32(float *out, const uint16_t *in, size_t n);

#endif
