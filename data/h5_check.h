/* h5_check.h: every HDF5 call of the data layer goes through H5_CHECK_AT, and every bad-data report
   through data_bad, so a corrupted, truncated or malformed file gives one clear message naming the
   file and what is wrong (exit 2), never HDF5's own error stack, a crash or a hang. data_try lets a checker
   (megadata verify) catch such a report and go on with the next file. */
#ifndef MEGATRAIN_H5_CHECK_H
#define MEGATRAIN_H5_CHECK_H

#include <hdf5.h>
#include <stddef.h>
#include <stdnoreturn.h>

/* Evaluates to the call's value (an hid_t or herr_t); a negative one is reported against path. */
#define H5_CHECK_AT(path, call)                                                                      \
    ({                                                                                               \
        __typeof__(call) h5_check_at_rc_ = (call);                                                   \
        if (h5_check_at_rc_ < 0)                                                                     \
            h5_fail(path, #call);                                                                    \
        h5_check_at_rc_;                                                                             \
    })

/* Call before the first HDF5 call (idempotent): turns off HDF5's printing of its error stack. */
void h5_init(void);
/* Report a failed HDF5 call with HDF5's innermost reason, as data_bad does. */
noreturn void h5_fail(const char *path, const char *call);

/* "path: what is wrong": stops the job through fail_input(), or inside data_try returns there. */
noreturn void data_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run fn(arg); returns 1 when it finished, or 0 with the message of the data_bad that stopped it,
   having closed the HDF5 files and objects fn left open (its memory is not freed). Not nestable. */
int data_try(void (*fn)(void *), void *arg, char *msg, size_t msg_len);

/* Stops with data_bad unless path is a regular file or a symbolic link to one: HDF5 would wait
   forever opening a FIFO. */
void h5_check_regular(const char *path);

#endif
