/* h5_check.c: HDF5 error reporting for the data layer (see h5_check.h). */
#include "data/h5_check.h"

#include "src/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int h5_ready;
static jmp_buf *try_jump; /* armed inside data_try */
static char try_msg[1024];

void h5_init(void)
{
    if (h5_ready)
        return;
    if (H5open() < 0 || H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0)
        fail("cannot initialise the HDF5 library");
    h5_ready = 1;
}

/* The first frame of an upward walk is where HDF5 found the problem: its text says the most. */
static herr_t h5_innermost(unsigned n, const H5E_error2_t *err, void *reason)
{
    if (n == 0)
        snprintf(reason, 512, "%s", err->desc ? err->desc : "");
    return 0;
}

void h5_fail(const char *path, const char *call)
{
    char reason[512] = "";
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_innermost, reason) < 0 || !reason[0])
        snprintf(reason, sizeof reason, "no reason given");
    int fn_len = (int)strcspn(call, "(");
    data_bad(path, "HDF5 error in %.*s: %s", fn_len, call, reason);
}

void data_bad(const char *path, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (try_jump) {
        snprintf(try_msg, sizeof try_msg, "%s: %s", path, what);
        longjmp(*try_jump, 1);
    }
    fail_input("%s: %s", path, what);
}

/* The HDF5 objects open now (files, datasets, groups, named types, attributes): a handful. */
static size_t open_objects(hid_t **ids)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    *ids = xmalloc(((size_t)(n > 0 ? n : 0) + 1) * sizeof **ids);
    n = n > 0 ? H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, (size_t)n, *ids) : 0;
    if (n < 0)
        fail("HDF5: cannot list the open objects");
    return (size_t)n;
}

/* Close what fn left open when data_bad stopped it: objects first, then their files. */
static void close_since(const hid_t *before, size_t nbefore)
{
    hid_t *now;
    size_t n = open_objects(&now);
    for (int files = 0; files < 2; files++)
        for (size_t i = 0; i < n; i++) {
            H5I_type_t type = H5Iget_type(now[i]);
            size_t b = 0;
            while (b < nbefore && before[b] != now[i])
                b++;
            if ((type == H5I_FILE) != files || b < nbefore)
                continue;
            if (type == H5I_FILE)
                H5Fclose(now[i]);
            else if (type == H5I_ATTR)
                H5Aclose(now[i]);
            else
                H5Oclose(now[i]);
        }
    free(now);
}

int data_try(void (*fn)(void *), void *arg, char *msg, size_t msg_len)
{
    jmp_buf jump;
    if (try_jump)
        fail("data_try: nested call");
    hid_t *before;
    size_t nbefore = open_objects(&before);
    if (setjmp(jump) == 0) {
        try_jump = &jump;
        fn(arg);
        try_jump = NULL;
        free(before);
        return 1;
    }
    try_jump = NULL;
    snprintf(msg, msg_len, "%s", try_msg);
    close_since(before, nbefore);
    free(before);
    return 0;
}

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)                     ? "a folder"
           : S_ISFIFO(mode)                  ? "a FIFO"
           : S_ISSOCK(mode)                  ? "a socket"
           : S_ISLNK(mode)                   ? "a symbolic link"
           : S_ISCHR(mode) || S_ISBLK(mode) ? "a device"
                                             : "not a regular file";
}

void h5_check_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        data_bad(path, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        data_bad(path, "is %s, expected a regular HDF5 file", file_kind(st.st_mode));
}
