/* h5_check.c: HDF5 error reporting for the data layer (see h5_check.h). */
#include "data/h5_check.h"

#include "src/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int data_try(void (*fn)(void *), void *arg, char *msg, size_t msg_len)
{
    jmp_buf jump;
    if (try_jump)
        fail("data_try: nested call");
    if (setjmp(jump)) {
        try_jump = NULL;
        snprintf(msg, msg_len, "%s", try_msg);
        return 0;
    }
    try_jump = &jump;
    fn(arg);
    try_jump = NULL;
    return 1;
}
