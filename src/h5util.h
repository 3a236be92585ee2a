/* h5util.h: the HDF5 helpers of megatrain (serial API only): one check macro and whole-dataset
   and attribute I/O with shape checks. HDF5's own error printing is silenced so bad files get
   our message (file, dataset, what was expected). */
#ifndef MEGATRAIN_H5UTIL_H
#define MEGATRAIN_H5UTIL_H

#include "src/util.h"

#include <hdf5.h>

/* Every HDF5 call that returns a negative value on failure goes through H5_CHECK. */
#define H5_CHECK(call)                                                                               \
    ({                                                                                               \
        __typeof__(call) h5_check_rc_ = (call);                                                      \
        if (h5_check_rc_ < 0)                                                                        \
            fail("%s:%d: HDF5 call failed: %s", __FILE__, __LINE__, #call);                          \
        h5_check_rc_;                                                                                \
    })

void h5u_quiet(void); /* turn off HDF5's automatic error stack printing */
/* Create (truncate) a file for writing; fail_input naming the path if impossible. */
hid_t h5u_create(const char *path);
/* Open an existing file read-only (write = 0) or read-write; fail_input if it is not HDF5. */
hid_t h5u_open(const char *path, int write);
int h5u_exists(hid_t loc, const char *name); /* a link of that path exists (groups checked on the way) */

/* Write a whole dataset (intermediate groups created); mem and file types may differ. */
void h5u_write(hid_t loc, const char *name, hid_t memtype, hid_t filetype, int ndim, const hsize_t *shape,
               const void *data);
/* Read a whole dataset whose shape must be exactly `shape` (ndim dims); `file` names the file in
   messages. Missing dataset or wrong shape: fail_input. */
void h5u_read(hid_t loc, const char *name, hid_t memtype, int ndim, const hsize_t *shape, void *data,
              const char *file);

void h5u_attr_write(hid_t loc, const char *name, hid_t memtype, hid_t filetype, const void *value);
void h5u_attr_write_string(hid_t loc, const char *name, const char *value);

#endif
