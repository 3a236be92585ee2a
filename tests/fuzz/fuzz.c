/* fuzz.c: scratch files, exit() caught, findings (see fuzz.h). */
#include "tests/fuzz/fuzz.h"

#include <fcntl.h>
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_FD_MAX 256 /* descriptors checked for leftovers after an exit */

static char dir[4096];
static char path[4096];
static jmp_buf *exit_jump; /* armed inside fuzz_call */
static int exit_status;

noreturn void __real_exit(int status);

/* Every exit() of the program lands here (-Wl,--wrap=exit): back into fuzz_call when inside one,
   else (libFuzzer itself finishing) the real exit. */
noreturn void __wrap_exit(int status)
{
    if (!exit_jump)
        __real_exit(status);
    exit_status = status;
    longjmp(*exit_jump, 1);
}

void fuzz_found(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void remove_dir(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", dir);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/megatrain-fuzz.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(dir))
            fuzz_found("cannot make a scratch folder %s", dir);
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_write(const char *name, const void *data, size_t size)
{
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        fuzz_found("cannot write %s", path);
    return path;
}

int fuzz_call(void (*fn)(void *), void *arg)
{
    char was_open[FUZZ_FD_MAX];
    for (int fd = 0; fd < FUZZ_FD_MAX; fd++)
        was_open[fd] = fcntl(fd, F_GETFD) != -1;
    jmp_buf jump;
    exit_jump = &jump;
    int status = FUZZ_RETURNED;
    if (setjmp(jump) == 0) {
        fn(arg);
    } else {
        status = exit_status;
        for (int fd = 0; fd < FUZZ_FD_MAX; fd++)
            if (!was_open[fd] && fcntl(fd, F_GETFD) != -1)
                close(fd);
    }
    exit_jump = NULL;
    return status;
}

void fuzz_check_hdf5_closed(const char *what)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (n != 0)
        fuzz_found("%s left %zd HDF5 object(s) open", what, n);
}
