/* test_comm.c: the MPI side of the communication interface under `mpirun -np 4`
   (tests/comm_checks.h), for host buffers and for "device" buffers moved through host staging
   copies (parallel.comm: mpi on CUDA). The device here is the CPU backend behind pointers moved
   2^47 bytes away, where no host access can go (x86-64 addresses must be canonical): any MPI
   call or memcpy on a device buffer would fault, so the staged paths are seen to go through
   upload and download alone: bf16 sums widened to fp32, bf16 moved as raw words, an
   asynchronous reduce's result delivered at comm_wait, receives through a host copy. */
#include "parallel/comm.h"
#include "base/util.h"
#include "tests/tap.h"
#include "tests/comm_checks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FAR ((uintptr_t)1 << 47)
static void *far(void *p) { return (void *)((uintptr_t)p + FAR); }
static void *near(const void *p) { return (void *)((uintptr_t)p - FAR); }

static void *dev_alloc(size_t bytes) { return far(xcalloc(1, bytes)); }
static void dev_release(void *p) { free(near(p)); }
static void dev_upload(void *dst, const void *src, size_t bytes) { memcpy(near(dst), src, bytes); }
static void dev_download(void *dst, const void *src, size_t bytes) { memcpy(dst, near(src), bytes); }

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("test_comm");
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tap_quiet = rank != 0;
    if (size != 4) {
        tap_check(0, "run under mpirun -np 4 (got %d ranks)", size);
        return tap_done();
    }
    Ops dev = *ops_cpu();
    dev.on_device = 1;
    dev.alloc = dev_alloc;
    dev.release = dev_release;
    dev.upload = dev_upload;
    dev.download = dev_download;

    Comm host, staged;
    comm_init(&host, MPI_COMM_WORLD, "world", NULL, COMM_MPI);
    comm_init(&staged, MPI_COMM_WORLD, "world", &dev, COMM_MPI);
    comm_checks(&host, "host");
    comm_checks(&staged, "staged device");
    comm_free(&host);
    comm_free(&staged);
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
