/* fuzz_ckpt_meta.c: libFuzzer target for the checkpoint metadata reader. The input is a
   checkpoint's meta.h5: ckpt_info reads and checks it, returning the reason when it is bad, never
   exiting (resume falls back to an older checkpoint, megackpt goes on with the next). What it
   accepts must describe a layout and model that the readers can build the parameter tables of
   (verify, reshard and export do so next), for the first and the last (stage, tp rank). */
#include "src/ckpt.h"
#include "src/model.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>

typedef struct {
    const char *dir;
    CkptInfo ck;
    char err[1024];
    int rc;
} Info;

static void info(void *arg)
{
    Info *a = arg;
    a->rc = ckpt_info(a->dir, &a->ck, a->err, sizeof a->err);
}

static void tables(void *arg)
{
    const CkptInfo *ck = arg;
    int corners[2][2] = {{0, 0}, {ck->pp - 1, ck->tp - 1}};
    for (int i = 0; i < 2; i++) {
        ModelPart part = model_part(&ck->dims, ck->tp, corners[i][1], ck->pp, corners[i][0]);
        ParamInfo *table;
        model_table(&ck->dims, &part, &table);
        free(table);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("meta.h5", data, size);
    Info a = {.dir = fuzz_dir()};
    int status = fuzz_call(info, &a);
    if (status != FUZZ_RETURNED)
        fuzz_found("ckpt_info exited with %d instead of returning the reason", status);
    fuzz_check_hdf5_closed("ckpt_info");
    if (a.rc == 0) {
        status = fuzz_call(tables, &a.ck);
        if (status != FUZZ_RETURNED)
            fuzz_found("ckpt_info accepts the metadata, but building its parameter tables exits with %d", status);
    }
    ckpt_info_free(&a.ck);
    return 0;
}
