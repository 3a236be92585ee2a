/* test_ckpt_split.c: a checkpoint reader takes each tensor's split from its file. A tp 2
   checkpoint is written whole (ckpt_write), then its embedding and head are rewritten cut along
   dimension 1, as checkpoints were before the vocabulary was split, with their attributes and
   checksums; every shard of every tensor read back under tp 1, 2 and 4 must hold exactly the
   values written, which depend on (tensor, global index) only. */
#include "base/util.h"
#include "src/ckpt.h"
#include "src/h5util.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

static float value(const char *name, int64_t g) { return (float)rng_uniform(rng_key(7, name), (uint64_t)g); }

static void fetch(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out)
{
    for (size_t e = 0; e < p->numel; e++)
        out[e] = value(p->name, param_global_index(p, tp_rank, (int64_t)e)) + (float)group;
}

/* Rewrite /params/<name> of the tp files of stage 0 cut along dimension 1 (a (rows, cols) tensor). */
static void cut_columns(const char *ckpt, const char *name, int64_t rows, int64_t cols, int tp)
{
    const int64_t w = cols / tp;
    float *buf = xmalloc((size_t)(rows * w) * sizeof(float));
    for (int r = 0; r < tp; r++) {
        char *file = xasprintf("%s/shard-pp000-tp%03d.h5", ckpt, r), *path = xasprintf("params/%s", name);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < w; j++)
                buf[i * w + j] = value(name, i * cols + r * w + j);
        hid_t f = h5u_open(file, 1);
        H5_CHECK_AT(file, H5Ldelete(f, path, H5P_DEFAULT));
        h5u_write(f, file, path, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, (hsize_t[]){(hsize_t)rows, (hsize_t)w}, buf);
        hid_t d = H5_CHECK_AT(file, H5Dopen2(f, path, H5P_DEFAULT));
        const int64_t shape[2] = {rows, cols}, split[3] = {1, tp, r};
        const int64_t sum = (int64_t)util_fnv1a(buf, (size_t)(rows * w) * sizeof(float), UTIL_FNV_INIT);
        h5u_attr_write_i64s(d, file, "global_shape", 2, shape);
        h5u_attr_write_i64s(d, file, "split_tp_rank", 3, split);
        h5u_attr_write_i64s(d, file, "fnv1a64", 1, &sum);
        H5_CHECK_AT(file, H5Dclose(d));
        H5_CHECK_AT(file, H5Fclose(f));
        free(file);
        free(path);
    }
    free(buf);
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
    cut_columns(ckpt, "embed.weight", dims.vocab, dims.D, 2);
    cut_columns(ckpt, "output.output.weight", dims.vocab, dims.D, 2);
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
                float *out = xmalloc(p->numel * sizeof(float));
                if (ckpt_read(&ck, "params", p, r, out, err, sizeof err)) {
                    fails++;
                    tap_diag("%s", err);
                }
                for (size_t e = 0; e < p->numel; e++, n++)
                    bad += out[e] != value(p->name, param_global_index(p, r, (int64_t)e));
                free(out);
            }
            free(table);
        }
        tap_check(fails == 0 && bad == 0,
                  "read under tp %d: every shard holds the values written (%d values, %d differ), the embedding and "
                  "head from files cut along their features",
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
