/* h5util.h: whole-dataset and attribute I/O with shape checks for megatrain's own HDF5 files
   (dumps, checkpoints), on top of the data layer's H5_CHECK_AT (data/h5_check.h): every failure
   names the file and what was expected and goes through data_bad, so it stops the job with exit
   code 2, or, inside data_try, returns there (a checkpoint loader falls back to an older one).
   Serial HDF5 API only. */
#ifndef MEGATRAIN_H5UTIL_H
#define MEGATRAIN_H5UTIL_H

#include "data/h5_check.h"

#include <hdf5.h>
#include <stdint.h>

/* Create (truncate) a file for writing; fail_input naming the path if impossible. */
hid_t h5u_create(const char *path);
/* The same with room for a seal: after H5Fclose, h5u_seal writes a checksum of the whole file into
   HDF5's user block, and every h5u_open checks it before HDF5 reads a byte, so a damaged file is
   refused cleanly (for small files megatrain reads untrusted: a checkpoint's meta.h5). */
hid_t h5u_create_sealed(const char *path);
void h5u_seal(const char *path);
/* Open an existing file read-only (write = 0) or read-write; fail_input if it is not HDF5, data_bad
   if it is sealed and its bytes changed. */
hid_t h5u_open(const char *path, int write);
int h5u_exists(hid_t loc, const char *name); /* a link of that path exists (groups checked on the way) */

/* Write a whole dataset (intermediate groups created) into the file named `file`; mem and file
   types may differ. */
void h5u_write(hid_t loc, const char *file, const char *name, hid_t memtype, hid_t filetype, int ndim,
               const hsize_t *shape, const void *data);
/* Read a whole dataset whose shape must be exactly `shape` (ndim dims); `file` names the file in
   messages. Missing dataset or wrong shape: fail_input. */
void h5u_read(hid_t loc, const char *name, hid_t memtype, int ndim, const hsize_t *shape, void *data,
              const char *file);

/* The shape of dataset `name`, which must have ndim dimensions; missing or other: data_bad. */
void h5u_shape(hid_t loc, const char *name, int ndim, hsize_t *shape, const char *file);
/* Elements [at, at + n) of the 1-D dataset `name`, as float (n > 0); past its end: data_bad. */
void h5u_read_part(hid_t loc, const char *name, int64_t at, int64_t n, float *out, const char *file);
/* Create a 1-D little-endian float32 dataset of n elements (kept open: the caller closes it) and
   write its elements [at, at + n) from host floats. */
hid_t h5u_create_f32(hid_t loc, const char *file, const char *name, int64_t n);
void h5u_write_part(hid_t d, const char *file, int64_t at, int64_t n, const float *data);

void h5u_attr_write(hid_t loc, const char *file, const char *name, hid_t memtype, hid_t filetype,
                    const void *value);
void h5u_attr_write_string(hid_t loc, const char *file, const char *name, const char *value);
void h5u_attr_write_i64s(hid_t loc, const char *file, const char *name, int n, const int64_t *values);
/* Attributes back; missing or of the wrong kind: data_bad. */
int64_t h5u_attr_i64(hid_t loc, const char *file, const char *name);
double h5u_attr_f64(hid_t loc, const char *file, const char *name);
char *h5u_attr_string(hid_t loc, const char *file, const char *name); /* heap string */
/* An int64 array attribute of exactly n values. */
void h5u_attr_i64s(hid_t loc, const char *file, const char *name, int n, int64_t *values);

#endif
