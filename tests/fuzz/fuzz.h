/* fuzz.h: what the libFuzzer targets of tests/fuzz/ share. megatrain's parsers read files and
   stop a process with exit(2) on bad input; a target writes its input to a file and runs the
   parser through fuzz_call, which turns that exit back into a return (the targets link with
   -Wl,--wrap=exit) so one process can try millions of inputs. */
#ifndef MEGATRAIN_FUZZ_H
#define MEGATRAIN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_RETURNED (-1)

/* This process's scratch folder (made on first use, removed at exit). */
const char *fuzz_dir(void);
/* Write data to the file name of fuzz_dir(), replacing it; returns its path, valid until the next
   call. */
const char *fuzz_write(const char *name, const void *data, size_t size);
/* Run fn(arg): FUZZ_RETURNED, or the status it passed to exit(). After an exit, closes the file
   descriptors fn left open (a real process would have ended and released them). */
int fuzz_call(void (*fn)(void *), void *arg);
/* A finding: print "fuzz: " and the message to stderr and abort, so libFuzzer saves the input. */
void fuzz_found(const char *fmt, ...) __attribute__((format(printf, 1, 2), __noreturn__));
/* Abort unless every HDF5 object the parser opened was closed again. */
void fuzz_check_hdf5_closed(const char *what);

#endif
