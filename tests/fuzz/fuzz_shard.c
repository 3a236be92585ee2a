/* fuzz_shard.c: libFuzzer target for the token shard reader. The input is one shard file,
   train-00000.h5 of a dataset folder: `megadata verify` checks it (data_verify) and, when it
   calls it good, training must read every token of it without stopping (dataset_open and
   dataset_read). Neither may crash, exit with anything but 2, or leave HDF5 objects open. */
#include "data/dataset.h"
#include "data/inspect.h"
#include "base/util.h"
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_READ_BLOCK 4096 /* tokens per dataset_read, as a sampler reads windows */

typedef struct {
    const char *dir;
    FILE *out;
    int nbad;
} Verify;

static void verify(void *arg)
{
    Verify *v = arg;
    v->nbad = data_verify(v->dir, v->out, v->out);
}

static void read_all(void *arg)
{
    Dataset *ds = dataset_open(arg, "train");
    int32_t *buf = xmalloc(FUZZ_READ_BLOCK * sizeof *buf); /* (FUZZ_READ_BLOCK) */
    for (int64_t at = 0, n = dataset_ntokens(ds); at < n; at += FUZZ_READ_BLOCK)
        dataset_read(ds, at, n - at < FUZZ_READ_BLOCK ? n - at : FUZZ_READ_BLOCK, buf);
    free(buf);
    dataset_close(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        fuzz_found("cannot open /dev/null");
    fuzz_write("train-00000.h5", data, size);
    Verify v = {fuzz_dir(), devnull, 0};
    int status = fuzz_call(verify, &v);
    if (status != FUZZ_RETURNED)
        fuzz_found("data_verify exited with %d instead of counting the file bad", status);
    fuzz_check_hdf5_closed("data_verify");
    if (v.nbad)
        return 0;
    status = fuzz_call(read_all, (void *)v.dir);
    if (status != FUZZ_RETURNED)
        fuzz_found("megadata verify calls the shard good, but reading it for training exits with %d", status);
    fuzz_check_hdf5_closed("dataset_read");
    return 0;
}
