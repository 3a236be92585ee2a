/* h5_check.h: every HDF5 call of the data layer goes through H5_CHECK_AT, and every bad-data report
   through data_bad, so a corrupted, truncated or malformed file gives one clear message naming the
   file and what is wrong (exit 2), never HDF5's own error stack, a crash or a hang. data_try lets a
   checker (megadata verify) catch such a report and go on with the next file. Also the checked
   attribute and array reads and writes that shards and manifests share. */
#ifndef MEGATRAIN_H5_CHECK_H
#define MEGATRAIN_H5_CHECK_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

/* Evaluates to the call's value (an hid_t or herr_t); a negative one is reported against path. */
#define H5_CHECK_AT(path, call)                                                                      \
    ({                                                                                               \
        __typeof__(call) h5_check_at_rc_ = (call);                                                   \
        if (h5_check_at_rc_ < 0)                                                                     \
            h5_fail(path, #call, NULL);                                                              \
        h5_check_at_rc_;                                                                             \
    })

/* Call before the first HDF5 call of each thread (idempotent): turns off HDF5's printing of its
   error stack, which a thread-safe HDF5 keeps per thread. */
void h5_init(void);
/* Whether this HDF5 was built thread-safe: then threads may call it (one at a time on any one
   Dataset; data_try and data_bad work per thread). */
int h5_threadsafe(void);
/* Report a failed HDF5 call with HDF5's innermost reason, as data_bad does; where (or NULL) names
   the part of the file, e.g. "chunk 3, tokens 49152..65535". */
noreturn void h5_fail(const char *path, const char *call, const char *where);

/* "path: what is wrong": stops the job through fail_input(), or inside data_try returns there. */
noreturn void data_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Between h5_guard_on(path) and h5_guard_off, a fault signal, or 120 s without h5_guard_off,
   ends the process at once with exit status 2 and one line naming path: HDF5 1.10 can loop
   forever or crash on some damaged files (a variable-length string's global heap with a bad
   object size, found by make fuzz's fuzz_shard), and a job must stop with its reason instead of
   hanging. For reads of a file's metadata and of a window of tokens, which take milliseconds; a
   data_bad report ends them. Nestable, and threads share one guard: it holds until the last is
   off, its time counts from the latest h5_guard_on, whose file it names.
   MEGATRAIN_TEST_H5_GUARD_SECONDS
   sets the time (testing aid; 0: off, as the fuzz targets run, where libFuzzer owns SIGALRM). */
void h5_guard_on(const char *path);
void h5_guard_off(void);

/* Run fn(arg); returns 1 when it finished, or 0 with the message of the data_bad that stopped it,
   having closed the HDF5 files and objects fn left open (its memory is not freed: fn keeps what
   it allocates where its caller can free it). Not nestable; each thread may have its own (the
   files it closes are those opened since it began, by any thread: no other thread may open HDF5
   objects meanwhile). */
int data_try(void (*fn)(void *), void *arg, char *msg, size_t msg_len);

/* p grown (realloc) to hold at least n elements of size bytes; *cap is how many it holds. */
void *data_grow(void *p, int64_t *cap, int64_t n, size_t size);

/* Stops with data_bad unless path is a regular file or a symbolic link to one: HDF5 would wait
   forever opening a FIFO. */
void h5_check_regular(const char *path);
/* Create path (truncating a regular file there, refusing anything else: no writing through a
   symbolic link or into a FIFO) in the HDF5 1.10 format, whose metadata all carry checksums.
   Objects record no creation or modification times (here and in h5_dcpl), so the same contents
   give the same bytes whenever and wherever they are written. */
hid_t h5_create(const char *path);

/* One integer attribute of obj, as int64_t or uint64_t (memtype H5T_NATIVE_INT64 or _UINT64;
   HDF5 converts any stored integer type). */
void h5_attr_int(const char *path, hid_t obj, const char *name, hid_t memtype, void *out);
/* One fixed- or variable-length (h5py's default) string attribute, into out[cap]. */
void h5_attr_str(const char *path, hid_t obj, const char *name, char *out, size_t cap);
/* Length of the 1-D array `name` of unsigned integers; *width gets its element size in bytes. */
int64_t h5_array_length(const char *path, hid_t dset, const char *name, int *width);

void h5_attr_write(const char *path, hid_t obj, const char *name, hid_t type, const void *value);
void h5_attr_write_i64(const char *path, hid_t obj, const char *name, int64_t value);
/* Fixed-length UTF-8, stored in the checksummed object header. */
void h5_attr_write_str(const char *path, hid_t obj, const char *name, const char *value);
/* Creation properties of a 1-D array stored in chunks of `chunk` elements, each with a
   Fletcher-32 checksum that every read verifies. */
hid_t h5_dcpl(const char *path, int64_t chunk);
/* A new 1-D array of n elements of type ftype from data (memory type mtype), in checksummed chunks. */
void h5_write_array(const char *path, hid_t file, const char *name, hid_t ftype, hid_t mtype, int64_t n,
                    const void *data);

#endif
