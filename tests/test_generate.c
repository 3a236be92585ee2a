/* test_generate.c: recurrent decoding (src/decode.h) and sampling (src/sample.h) on the CPU.
   1. attention_step, fed a sequence of several chunks token by token, gives attention_forward's
      rows on qk_forward's queries and keys, and caches the rotated keys (fp32 and fp64 builds).
   2. Teacher forcing: the whole model fed token by token through decode_step gives the logits of
      the training forward on the whole sequence (5 chunks, so the TimestepNorm and CEMA states and
      the attention cache cross chunk boundaries), both FFN kinds, fp32 and fp64.
   3. Memory: the bytes the process holds (malloc's count, the backend's buffers included) after
      100K generated tokens are those after 1K.
   4. Sampling: greedy is the argmax, top-k 1 and a tiny top-p too, a draw repeats for its seed,
      and draws follow softmax(logits / temperature).

   Tolerances, relative in norm (over everything, and per position for the logits). fp32: both
   paths compute the same functions in another order (the step's scores and weighted sums in
   double, the whole sequence's in fp32 GEMMs), and the step rounds q and k once more (before
   RoPE); seen: 1.3e-7 for attention_step, 2.2e-7 for the logits (4.2e-7 at the worst position):
   tolerance 1e-5. fp64: attention_step agrees to 1.2e-16 (tolerance 1e-12), but the model's
   TimestepNorm and CEMA states cross from token to token in fp32 (ops.h, as between chunk-parallel
   ranks), which bounds the logits: seen 4.3e-8 (1.1e-7 at the worst position), tolerance 1e-6. */
#include "kernels/ops.h"
#include "src/decode.h"
#include "src/model.h"
#include "src/sample.h"
#include "base/util.h"
#include "tests/tap.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* host doubles <-> a backend's act array (the CPU backends: fp32 or fp64 on the host) */
static void put_act(const Ops *o, void *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (o->act == DTYPE_F64)
            ((double *)dst)[i] = src[i];
        else
            ((float *)dst)[i] = (float)src[i];
}

static void get_act(const Ops *o, double *dst, const void *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = o->act == DTYPE_F64 ? ((const double *)src)[i] : ((const float *)src)[i];
}

static double *uniform(size_t n, uint64_t key, double scale)
{
    double *v = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(scale * (2 * rng_uniform(key, i) - 1));
    return v;
}

static void test_attention_step(const Ops *o, double tol)
{
    const int B = 2, L = 21, H = 2, dz = 8, dv = 6, C = 8, Z = H * dz, V = H * dv, T = B * L;
    const float base = 100.0f, eps = 1e-5f;
    const size_t a = o->act_size;
    double *zs = uniform((size_t)T * Z, 1, 1), *gb = uniform(4 * (size_t)Z, 2, 0.3), *v = uniform((size_t)T * V, 3, 1);
    void *zs_d = o->alloc(T * Z * a), *gb_d = o->alloc(4 * Z * a), *v_d = o->alloc(T * V * a);
    put_act(o, zs_d, zs, (size_t)T * Z);
    put_act(o, gb_d, gb, 4 * (size_t)Z);
    put_act(o, v_d, v, (size_t)T * V);
    const void *gamma = gb_d, *beta = (const char *)gb_d + 2 * Z * a;
    void *q = o->alloc(T * Z * a), *k = o->alloc(T * Z * a), *out = o->alloc(T * V * a);
    float *rstd = o->alloc(T * H * sizeof(float)), *lse = o->alloc(T * H * sizeof(float));
    o->qk_forward(q, k, rstd, zs_d, gamma, beta, B, L, H, dz, C, base, eps);
    o->attention_forward(out, lse, NULL, q, k, v_d, B, L, H, dz, dv, C);
    double *want_o = xmalloc(T * V * sizeof(double)), *want_k = xmalloc(T * Z * sizeof(double));
    get_act(o, want_o, out, (size_t)T * V);
    get_act(o, want_k, k, (size_t)T * Z);

    /* token by token: (B, 1, .) rows */
    void *zs1 = o->alloc(B * Z * a), *v1 = o->alloc(B * V * a), *q1 = o->alloc(B * Z * a), *k1 = o->alloc(B * Z * a);
    void *o1 = o->alloc(B * V * a), *kc = o->alloc((size_t)B * C * Z * a), *vc = o->alloc((size_t)B * C * V * a);
    double *row = xmalloc((size_t)B * V * sizeof(double)), *want = xmalloc((size_t)B * V * sizeof(double));
    double *kr = xmalloc((size_t)B * C * Z * sizeof(double));
    double err_o = 0, err_k = 0;
    for (int l = 0; l < L; l++) {
        for (int b = 0; b < B; b++) {
            put_act(o, (char *)zs1 + (size_t)b * Z * a, zs + (size_t)(b * L + l) * Z, Z);
            put_act(o, (char *)v1 + (size_t)b * V * a, v + (size_t)(b * L + l) * V, V);
        }
        o->qk_forward(q1, k1, rstd, zs1, gamma, beta, B, 1, H, dz, C, base, eps);
        o->attention_step(o1, q1, k1, v1, kc, vc, l % C, B, H, dz, dv, C, base);
        get_act(o, row, o1, (size_t)B * V);
        get_act(o, kr, kc, (size_t)B * C * Z);
        for (int b = 0; b < B; b++) {
            memcpy(want + (size_t)b * V, want_o + (size_t)(b * L + l) * V, V * sizeof(double));
            double e = tap_relerr(kr + ((size_t)b * C + l % C) * Z, want_k + (size_t)(b * L + l) * Z, Z);
            err_k = e > err_k ? e : err_k;
        }
        double e = tap_relerr(row, want, (size_t)B * V);
        err_o = e > err_o ? e : err_o;
    }
    tap_check(err_o < tol, "%s attention_step: %d tokens in chunks of %d give attention_forward's rows (rel err %.1e)",
              o->name, L, C, err_o);
    tap_check(err_k < tol, "%s attention_step: the cache holds qk_forward's rotated keys (rel err %.1e)", o->name,
              err_k);
    void *bufs[] = {zs_d, gb_d, v_d, q, k, out, rstd, lse, zs1, v1, q1, k1, o1, kc, vc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        o->release(bufs[i]);
    free(zs);
    free(gb);
    free(v);
    free(want_o);
    free(want_k);
    free(row);
    free(want);
    free(kr);
}

static ModelDims dims(int swiglu)
{
    return (ModelDims){.vocab = 37, .n_layers = 2, .D = 16, .H = 2, .Z = 8, .V = 12, .F = 20, .C = 8, .G = 4,
                       .N = 3, .swiglu = swiglu, .scale_emb = swiglu, .share_emb = swiglu,
                       .rope_base = 10000.0f, .eps = 1e-5f};
}

/* the init plus noise, so that zero-initialised tensors (biases, norms) count too */
static float *params(Model *m, uint64_t seed)
{
    model_init_params(m, seed);
    float *h = xmalloc(m->n_elems * sizeof(float));
    model_params_to_host(m, h);
    for (size_t i = 0; i < m->n_elems; i++)
        h[i] += (float)(0.1 * rng_normal(seed + 1, i));
    model_params_from_host(m, h);
    return h;
}

static void test_teacher_forcing(const Ops *o, int swiglu, double tol)
{
    const ModelDims d = dims(swiglu);
    const int B = 2, L = 40, V = d.vocab;
    ModelPart part = model_part(&d, 1, 0, 1, 0);
    Model full;
    model_create(&full, &d, &part, o, B, L, 0, 1, 1);
    float *h = params(&full, 11);
    int32_t *tok = xmalloc((size_t)B * (L + 1) * sizeof(int32_t));
    for (int i = 0; i < B * (L + 1); i++)
        tok[i] = (int32_t)(rng_u64(5, (uint64_t)i) % (uint64_t)V);
    model_set_batch(&full, 0, tok);
    model_forward(&full, 0, 0.0f);
    double *want = xmalloc((size_t)B * L * V * sizeof(double)), *got = xmalloc((size_t)B * L * V * sizeof(double));
    get_act(o, want, full.slots[0].logits, (size_t)B * L * V);

    Decoder dec;
    decode_create(&dec, &d, o, B);
    model_params_from_host(&dec.m, h);
    float *lg = xmalloc((size_t)B * V * sizeof(float));
    int32_t *in = xmalloc((size_t)B * sizeof(int32_t));
    double *step = xmalloc((size_t)B * V * sizeof(double));
    int exact = 1; /* the fp32 logits decode_step hands out are its own, rounded */
    for (int l = 0; l < L; l++) {
        for (int b = 0; b < B; b++)
            in[b] = tok[b * (L + 1) + l];
        decode_step(&dec, in, lg);
        get_act(o, step, dec.m.slots[0].logits, (size_t)B * V); /* in the act dtype: fp64 stays fp64 */
        for (int i = 0; i < B * V; i++) {
            exact &= lg[i] == (float)step[i];
            got[((size_t)(i / V) * L + l) * V + i % V] = step[i];
        }
    }
    double all = tap_relerr(got, want, (size_t)B * L * V), worst = 0;
    for (int r = 0; r < B * L; r++) {
        double e = tap_relerr(got + (size_t)r * V, want + (size_t)r * V, V);
        worst = e > worst ? e : worst;
    }
    tap_check(all < tol && worst < tol && exact,
              "%s %s: %d tokens fed one at a time (chunks of %d) give the whole sequence's logits (rel err %.1e, "
              "worst position %.1e)",
              o->name, swiglu ? "swiglu" : "silu", L, d.C, all, worst);
    decode_free(&dec);
    model_free(&full);
    free(h);
    free(tok);
    free(want);
    free(got);
    free(lg);
    free(in);
    free(step);
}

static size_t bytes_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* heap blocks in use plus mmap'd ones */
}

static void test_memory(void)
{
    const ModelDims d = dims(1);
    Decoder dec;
    decode_create(&dec, &d, ops_cpu(), 1);
    free(params(&dec.m, 3));
    Sampling s;
    sampling_init(&s, &(SampleOpts){.temperature = 1, .top_k = 10, .top_p = 0.95, .seed = 7}, d.vocab);
    float *lg = xmalloc((size_t)d.vocab * sizeof(float));
    int32_t t = 0;
    size_t after[2];
    int64_t n = 0;
    for (int phase = 0; phase < 2; phase++) {
        for (int64_t end = phase ? 100000 : 1000; n < end; n++) {
            decode_step(&dec, &t, lg);
            t = sampling_draw(&s, lg, (uint64_t)n);
        }
        after[phase] = bytes_in_use();
    }
    tap_check(after[1] == after[0] && dec.m.pos0 == 100000,
              "memory after 100000 generated tokens (%zu bytes in use) equals memory after 1000 (%zu bytes)",
              after[1], after[0]);
    free(lg);
    sampling_free(&s);
    decode_free(&dec);
}

static void test_sampling(void)
{
    const int V = 6;
    const float lg[6] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f};
    Sampling s;
    int ok = 1;
    SampleOpts greedy[3] = {{0, 0, 1, 1}, {1, 1, 1, 1}, {1, 0, 1e-6, 1}};
    for (int g = 0; g < 3; g++) {
        sampling_init(&s, &greedy[g], V);
        for (uint64_t i = 0; i < 50; i++)
            ok &= sampling_draw(&s, lg, i) == 1;
        sampling_free(&s);
    }
    tap_check(ok, "temperature 0, top-k 1 and top-p 1e-6 all take the most likely token");
    /* temperature 2, top-k 3: tokens 1, 3, 5 with weights e^(l/2) */
    sampling_init(&s, &(SampleOpts){2, 3, 1, 42}, V);
    const int n = 40000;
    int count[6] = {0}, again = 1;
    for (int i = 0; i < n; i++)
        count[sampling_draw(&s, lg, (uint64_t)i)]++;
    for (int i = 0; i < 100; i++)
        again &= sampling_draw(&s, lg, (uint64_t)i) == sampling_draw(&s, lg, (uint64_t)i);
    sampling_free(&s);
    double z = exp(1.0) + exp(0.95) + exp(0.5), worst = 0;
    const int keep[3] = {1, 3, 5};
    const double w[3] = {exp(1.0), exp(0.95), exp(0.5)};
    for (int j = 0; j < 3; j++) {
        double e = fabs((double)count[keep[j]] / n - w[j] / z);
        worst = e > worst ? e : worst;
    }
    tap_check(count[0] + count[2] + count[4] == 0 && worst < 0.01,
              "temperature 2, top-k 3: draws only the 3 most likely, at their softmax frequencies (off by %.4f)",
              worst);
    tap_check(again, "a draw depends on (seed, index) alone");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    test_attention_step(ops_cpu(), 1e-5);
    test_attention_step(ops_cpu64(), 1e-12);
    for (int sw = 0; sw < 2; sw++) {
        test_teacher_forcing(ops_cpu(), sw, 1e-5);
        test_teacher_forcing(ops_cpu64(), sw, 1e-6);
    }
    test_sampling();
    test_memory();
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
