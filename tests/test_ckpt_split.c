/* test_ckpt_split.c: a checkpoint reader assembles any range of any shard from the slices that
   hold it. A tp 2 checkpoint is written (ckpt_write, format 4); every shard of every tensor read
   back under tp 1, 2 and 4, whole and in three ranges cut at arbitrary elements, must hold
   exactly the values written, which depend on (tensor, global index) only. */
#include "base/util.h"
#include "src/ckpt.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

static float value(const char *name, int64_t g) { return (float)rng_uniform(rng_key(7, name), (uint64_t)g); }

static void fetch(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out)
{
    for (size_t e = 0; e < p->numel; e++)
        out[e] = value(p->name, param_global_index(p, tp_rank, (int64_t)e)) + (float)group;
}

int main(void)
{
    const ModelDims dims = {.vocab = 24, .n_layers = 2, .D = 16, .H = 2, .Z = 8, .V = 12, .F = 20, .C = 4,
                            .G = 4, .N = 3, .swiglu = 1, .rope_base = 10000.0f, .eps = 1e-5f};
    char tmpl[] = "/tmp/test_ckpt_split.XXXXXX";
    if (!mkdtemp(tmpl))
        fail("mkdtemp failed");
    char *ckpt = xasprintf("%s/step-00000001", tmpl);
    CkptInfo meta = {.step = 1, .tp = 2, .pp = 1, .dp = 1, .cp = 1, .dims = dims};
    ckpt_write(ckpt, &meta, fetch, NULL);
    CkptInfo ck;
    char err[1024] = "";
    tap_check(ckpt_info(ckpt, &ck, err, sizeof err) == 0, "the checkpoint's meta.h5 reads%s", err);
    for (int tp = 1; tp <= 4; tp *= 2) {
        int bad = 0, n = 0, fails = 0;
        for (int r = 0; r < tp; r++) {
            ModelPart part = model_part(&dims, tp, r, 1, 0);
            ParamInfo *table;
            const int np = model_table(&dims, &part, &table);
            for (int i = 0; i < np; i++) {
                const ParamInfo *p = &table[i];
                const int64_t numel = (int64_t)p->numel, cuts[5] = {0, numel / 3, numel / 3 + 1, 2 * numel / 3, numel};
                float *out = xmalloc(p->numel * sizeof(float));
                for (int whole = 0; whole < 2; whole++) {
                    fails += whole ? ckpt_read(&ck, "params", p, r, out, err, sizeof err) != 0 : 0;
                    for (int c = 0; !whole && c < 4; c++)
                        if (cuts[c] < cuts[c + 1])
                            fails += ckpt_read_range(&ck, "params", p, r, cuts[c], cuts[c + 1], out + cuts[c], err,
                                                     sizeof err) != 0;
                    for (size_t e = 0; e < p->numel; e++, n++)
                        bad += out[e] != value(p->name, param_global_index(p, r, (int64_t)e));
                }
                if (fails)
                    tap_diag("%s", err);
                free(out);
            }
            free(table);
        }
        tap_check(fails == 0 && bad == 0,
                  "read under tp %d: every shard, whole and in ranges, holds the values written (%d values, %d "
                  "differ)",
                  tp, n, bad);
    }
    ckpt_info_free(&ck);
    tap_check(ckpt_verify(ckpt) == 0, "megackpt verify's check finds every checksum good");
    char *rm = xasprintf("rm -rf %s", tmpl);
    if (system(rm) != 0)
        tap_diag("could not remove %s", tmpl);
    free(rm);
    free(ckpt);
    return tap_done();
}
