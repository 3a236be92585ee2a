/* test_ops_gpu.c: every op of the CUDA backend (bf16 activations, fp32 statistics, states and
   parameter gradients) against the fp32 CPU reference (ops_cpu) on the same random inputs, forward
   outputs, saved statistics and every input gradient; then the memory ops, AdamW and the sum of
   squares on their own.

   The op cases are tests/ops_harness.h's, at sizes that take the kernels' real paths (vector and
   scalar loads, several blocks and segments, partial chunks and segments, model-sized heads).
   Inputs that the interface holds in the act dtype are rounded to bf16 first, so both backends
   see identical values. The GPU's gradient buffers start out holding random values of the
   gradient's own size (subtracted afterwards unless the op overwrites), so accumulate-versus-
   overwrite slips fail too; an op whose backward takes `accumulate` runs on the GPU twice,
   accumulating (the random values must be added to) and overwriting buffers that hold NaN (an
   op that adds to them or reads them at all, as a GEMM with beta 0 must not, gives NaN), each
   against the one CPU run.

   The decoding step (attention_step) has no backward: its output and both caches are compared.
   Last, the ops that sum in orders of their own run twice at mega200M's sizes and must give the
   same bits both times.

   Tolerances, relative and norm-wise:
   - bf16 results (activations and their gradients), 1e-2: a bf16 rounding is at most 2^-9
     (2e-3) relative, about 1e-3 in norm for random data; an op rounds its output once, and a few
     ops round one intermediate too (attention's P and dS, prefilled gradients re-rounded after
     the add), so correct kernels land at 1e-3 to 4e-3, while a wrong index, term or sign gives
     errors of order 1.
   - fp32 results (saved statistics, states, parameter gradients, the loss), 1e-4: both sides
     compute in fp32 or better from identical inputs, but the GPU sums in other orders and scans
     long sequences in pieces (segments, then a chained pass), with the recurrences of CEMA and
     TimestepNorm carrying fp32 rounding over up to 4096 steps; correct kernels land between
     1e-8 and 2e-5 (the largest: Q/K affine gradients summed over 2148 tokens), a wrong term
     far above. */
#include "tests/tap.h"
#include "tests/ops_harness.h"

#include <mpi.h>
#include <stdint.h>

#define TOL_BF16 1e-2
#define TOL_F32 1e-4

static const Ops *cpu, *gpu;

/* ---- bf16 on the host (round to nearest even) ---- */

static uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static double bf16_value(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void round_bf16(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = bf16_value(bf16_bits((float)v[i]));
}

/* host doubles <-> a backend buffer of the given kind, bf16 activations included */
static void put(const Ops *o, int kind, void *dst, const double *src, size_t n)
{
    if (kind != ARG_ACT || o->act != DTYPE_BF16) {
        buf_put(o, kind, dst, src, n);
        return;
    }
    uint16_t *tmp = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++)
        tmp[i] = bf16_bits((float)src[i]);
    o->upload(dst, tmp, n * sizeof(uint16_t));
    free(tmp);
}

static void get(const Ops *o, int kind, double *dst, const void *src, size_t n)
{
    if (kind != ARG_ACT || o->act != DTYPE_BF16) {
        buf_get(o, kind, dst, src, n);
        return;
    }
    uint16_t *tmp = xmalloc(n * sizeof(uint16_t));
    o->download(tmp, src, n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_value(tmp[i]);
    free(tmp);
}

/* the harness's matmul forward puts its prior through the fp32/fp64-only buf_put */
static void matmul_fwd_any(const Ops *o, OpCase *c) { matmul_fwd_put(o, c, put); }

/* Forward and backward of c on o. pre[i]: what input i's gradient buffer holds before backward
   (NULL: zeros); it is subtracted afterwards unless the op overwrites that gradient. Token ids
   travel to the device for the run. */
static void run(const Ops *o, OpCase *c, double **pre)
{
    int32_t *host_ids = c->ids;
    if (o->on_device && host_ids) {
        c->ids = o->alloc((size_t)c->T * sizeof(int32_t));
        o->upload(c->ids, host_ids, (size_t)c->T * sizeof(int32_t));
    }
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        a->buf = buf_alloc(o, a->kind, a->n);
        put(o, a->kind, a->buf, a->val, a->n);
    }
    for (int i = 0; i < c->nout; i++)
        c->out[i].buf = buf_alloc(o, c->out[i].kind, c->out[i].n);
    c->forward(o, c);
    for (int i = 0; i < c->nout; i++) {
        Arg *a = &c->out[i];
        get(o, a->kind, a->val, a->buf, a->n);
        if (!(a->flags & ARG_SAVED)) {
            a->gbuf = buf_alloc(o, a->gkind, a->n);
            put(o, a->gkind, a->gbuf, a->grad, a->n);
        }
    }
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        a->gbuf = buf_alloc(o, a->gkind, a->n);
        if (pre && pre[i])
            put(o, a->gkind, a->gbuf, pre[i], a->n);
    }
    c->backward(o, c);
    case_check_refwd(o, c, get);
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        get(o, a->gkind, a->grad, a->gbuf, a->n);
        if (pre && pre[i] && !(a->flags & ARG_OVERWRITE))
            for (size_t j = 0; j < a->n; j++)
                a->grad[j] -= pre[i][j];
    }
    case_release(o, c);
    if (c->ids != host_ids) {
        o->release(c->ids);
        c->ids = host_ids;
    }
}

static double *dup(const double *v, size_t n)
{
    double *d = xmalloc(n * sizeof(double));
    memcpy(d, v, n * sizeof(double));
    return d;
}

static double rms(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return n ? sqrt(s / n) : 0;
}

/* Rounds what the interface holds in bf16 (inputs, output gradients, a GEMM's prior output), so
   both backends see identical values. */
static void prepare(OpCase *c)
{
    if (c->forward == matmul_fwd)
        c->forward = matmul_fwd_any;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].kind == ARG_ACT)
            round_bf16(c->in[i].val, c->in[i].n);
    for (int i = 0; i < c->nout; i++)
        if (c->out[i].gkind == ARG_ACT)
            round_bf16(c->out[i].grad, c->out[i].n);
    if (c->prior)
        round_bf16(c->prior, (size_t)c->T * c->OC);
}

/* Runs c on the GPU twice on the same inputs: every output and input gradient must have the same
   bits both times (a kernel whose summation order varies between runs, as an atomic add, fails);
   frees c. */
static void check_repeat(OpCase *c)
{
    prepare(c);
    double *first[2 * CASE_MAXARGS] = {0};
    int same = 1;
    for (int r = 0; r < 2; r++) {
        run(gpu, c, NULL);
        for (int i = 0; i < c->nout + c->nin; i++) {
            const Arg *a = i < c->nout ? &c->out[i] : &c->in[i - c->nout];
            const double *v = i < c->nout ? a->val : a->grad;
            if (i >= c->nout && (a->flags & ARG_NOGRAD))
                continue;
            if (!r)
                first[i] = dup(v, a->n);
            else if (memcmp(first[i], v, a->n * sizeof(double))) {
                tap_diag("%s: %s%s differs between two runs", c->name, i < c->nout ? "" : "d", a->name);
                same = 0;
            }
        }
    }
    tap_check(same, "%s: every output and gradient has the same bits on a second run", c->name);
    for (int i = 0; i < 2 * CASE_MAXARGS; i++)
        free(first[i]);
    case_free(c);
}

/* Runs c on the CPU and the GPU and compares every output and input gradient, then for an op
   with an accumulate argument runs the GPU again overwriting and compares the gradients; frees c. */
static void check(OpCase *c)
{
    prepare(c);
    run(cpu, c, NULL);
    double *ref_out[CASE_MAXARGS], *ref_grad[CASE_MAXARGS] = {0}, *pre[CASE_MAXARGS] = {0};
    for (int i = 0; i < c->nout; i++)
        ref_out[i] = dup(c->out[i].val, c->out[i].n);
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        ref_grad[i] = dup(a->grad, a->n);
        pre[i] = xmalloc(a->n * sizeof(double));
        fill_uniform(pre[i], a->n, case_key(c, a->name) ^ 0x9e3779b9, -1, 1);
        double s = rms(ref_grad[i], a->n);
        for (size_t j = 0; j < a->n; j++)
            pre[i][j] *= s;
        if (a->gkind == ARG_ACT)
            round_bf16(pre[i], a->n);
    }
    for (int pass = 0; pass < 3; pass++) {
        if (!case_pass(c, pass))
            continue;
        if (pass) {
            for (int i = 0; i < c->nin; i++)
                for (size_t j = 0; pre[i] && (c->in[i].flags & ARG_OVERWRITE) && j < c->in[i].n; j++)
                    pre[i][j] = NAN;
        }
        run(gpu, c, pre);
        for (int i = 0; i < c->nout && !pass; i++) {
            Arg *a = &c->out[i];
            double tol = a->kind == ARG_ACT ? TOL_BF16 : TOL_F32, err = tap_relerr(a->val, ref_out[i], a->n);
            tap_check(err < tol, "%s: %s matches the CPU (rel err %.1e, tol %.0e)", c->name, a->name, err, tol);
        }
        for (int i = 0; i < c->nin; i++) {
            Arg *a = &c->in[i];
            if (a->flags & ARG_NOGRAD)
                continue;
            double tol = a->gkind == ARG_ACT ? TOL_BF16 : TOL_F32, err = tap_relerr(a->grad, ref_grad[i], a->n);
            tap_check(err < tol, "%s%s: d%s matches the CPU (rel err %.1e, tol %.0e)", c->name, case_mode(c), a->name,
                      err, tol);
        }
    }
    for (int i = 0; i < c->nout; i++)
        free(ref_out[i]);
    for (int i = 0; i < c->nin; i++) {
        free(ref_grad[i]);
        free(pre[i]);
    }
    case_free(c);
}

/* ---- the memory ops, AdamW and the sum of squares ---- */

static void test_memory(void)
{
    const size_t n = 1000003; /* odd: the vector kernels' tails */
    float *x = xmalloc(n * sizeof(float)), *back = xmalloc(n * sizeof(float));
    double *a = xmalloc(n * sizeof(double)), *b = xmalloc(n * sizeof(double)), *got = xmalloc(n * sizeof(double));
    fill_uniform(a, n, 11, -3, 3);
    fill_uniform(b, n, 12, -3, 3);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)a[i];
    float *dx = gpu->alloc(n * sizeof(float));
    void *act = gpu->alloc(n * gpu->act_size), *act2 = gpu->alloc(n * gpu->act_size);
    gpu->upload(dx, x, n * sizeof(float));
    gpu->f32_to_act(act, dx, n);
    gpu->act_to_f32(dx, act, n);
    gpu->download(back, dx, n * sizeof(float));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += back[i] != (float)bf16_value(bf16_bits(x[i]));
    tap_check(bad == 0, "f32_to_act then act_to_f32 rounds to nearest bf16 (%zu mismatches)", bad);
    gpu->upload(dx, x, n * sizeof(float));
    gpu->f32_to_bf16(act, dx, n);
    gpu->bf16_to_f32(dx, act, n);
    gpu->download(back, dx, n * sizeof(float));
    uint16_t *wire = xmalloc(n * sizeof(uint16_t));
    float *want = xmalloc(n * sizeof(float));
    cpu->f32_to_bf16(wire, x, n);
    cpu->bf16_to_f32(want, wire, n);
    tap_check(!memcmp(back, want, n * sizeof(float)),
              "f32_to_bf16 then bf16_to_f32 (the gradients' bf16 wire) give the CPU's values bit for bit");
    free(wire);
    free(want);

    round_bf16(a, n);
    round_bf16(b, n);
    put(gpu, ARG_ACT, act, a, n);
    put(gpu, ARG_ACT, act2, b, n);
    gpu->accumulate(act, act2, n);
    get(gpu, ARG_ACT, got, act, n);
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
    double err = tap_relerr(got, a, n);
    tap_check(err < TOL_BF16, "accumulate: dst += src (rel err %.1e)", err);
    gpu->copy(act2, act, n);
    get(gpu, ARG_ACT, a, act2, n);
    tap_check(!memcmp(a, got, n * sizeof(double)), "copy copies");
    gpu->zero(act2, n * gpu->act_size);
    get(gpu, ARG_ACT, a, act2, n);
    tap_check(rms(a, n) == 0, "zero zeroes");
    tap_check(gpu->peak_memory && gpu->peak_memory() >= n * (sizeof(float) + 2 * gpu->act_size),
              "peak_memory counts what was allocated (%zu bytes)", gpu->peak_memory ? gpu->peak_memory() : 0);
    gpu->release(dx);
    gpu->release(act);
    gpu->release(act2);
    free(x);
    free(back);
    free(a);
    free(b);
    free(got);
}

/* the tensor-parallel layouts are pure copies: exactly the CPU's, and split undoes join */
static void test_columns(void)
{
    const int n = 3, T = 37, w = 11;
    const size_t N = (size_t)n * T * w;
    double *a = xmalloc(N * sizeof(double)), *want = xmalloc(N * sizeof(double)), *got = xmalloc(N * sizeof(double));
    fill_uniform(a, N, 21, -2, 2);
    round_bf16(a, N);
    float *ca = xmalloc(N * sizeof(float)), *cw = xmalloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++)
        ca[i] = (float)a[i];
    cpu->join_columns(cw, ca, n, T, w);
    for (size_t i = 0; i < N; i++)
        want[i] = cw[i];
    void *src = gpu->alloc(N * gpu->act_size), *dst = gpu->alloc(N * gpu->act_size);
    put(gpu, ARG_ACT, src, a, N);
    gpu->join_columns(dst, src, n, T, w);
    get(gpu, ARG_ACT, got, dst, N);
    tap_check(!memcmp(got, want, N * sizeof(double)), "join_columns: blocks (3, 37, 11) to rows, as the CPU");
    gpu->zero(src, N * gpu->act_size);
    gpu->split_columns(src, dst, n, T, w);
    get(gpu, ARG_ACT, got, src, N);
    tap_check(!memcmp(got, a, N * sizeof(double)), "split_columns undoes join_columns");
    gpu->release(src);
    gpu->release(dst);
    free(a);
    free(want);
    free(got);
    free(ca);
    free(cw);
}

/* three AdamW steps from the same state on both backends: master weights and moments agree to fp32
   rounding (the CPU computes in double), the compute copy is the bf16 rounding of the master.
   off: the buffers start off elements into their allocations (1: not 16-byte aligned, the
   scalar path; 0: the 4-wide path, with n % 4 = 3 left to the tail) */
static void test_adamw(size_t off)
{
    const size_t n = 300007;
    float *h[4], *ref[4], *got[4]; /* param, grad, m, v */
    const double lo[4] = {-1, -1, -0.01, 0}, hi[4] = {1, 1, 0.01, 0.001};
    double *tmp = xmalloc(n * sizeof(double));
    float *dev[4];
    for (int k = 0; k < 4; k++) {
        h[k] = xmalloc(n * sizeof(float));
        ref[k] = xmalloc(n * sizeof(float));
        got[k] = xmalloc(n * sizeof(float));
        fill_uniform(tmp, n, 100 + k, lo[k], hi[k]);
        for (size_t i = 0; i < n; i++)
            h[k][i] = ref[k][i] = (float)tmp[i];
        dev[k] = (float *)gpu->alloc((n + off) * sizeof(float)) + off;
        gpu->upload(dev[k], h[k], n * sizeof(float));
    }
    char *act_base = gpu->alloc((n + off) * gpu->act_size), *act = act_base + off * gpu->act_size;
    for (int step = 1; step <= 3; step++) {
        cpu->adamw(ref[0], ref[0], ref[1], ref[2], ref[3], n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, 0.5f);
        gpu->adamw(dev[0], act, dev[1], dev[2], dev[3], n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, 0.5f);
    }
    const char *names[4] = {"parameters", "", "first moments", "second moments"};
    for (int k = 0; k < 4; k += k == 0 ? 2 : 1) {
        gpu->download(got[k], dev[k], n * sizeof(float));
        double *r = xmalloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            tmp[i] = got[k][i];
            r[i] = ref[k][i];
        }
        double err = tap_relerr(tmp, r, n);
        tap_check(err < 1e-6, "adamw (offset %zu): %s match the CPU after 3 steps (rel err %.1e)", off, names[k], err);
        free(r);
    }
    get(gpu, ARG_ACT, tmp, act, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += tmp[i] != bf16_value(bf16_bits(got[0][i]));
    tap_check(bad == 0, "adamw (offset %zu): the bf16 compute copy is the rounded master weight (%zu mismatches)", off,
              bad);
    for (int k = 0; k < 4; k++) {
        gpu->release(dev[k] - off);
        free(h[k]);
        free(ref[k]);
        free(got[k]);
    }
    gpu->release(act_base);
    free(tmp);
}

/* off as for test_adamw */
static void test_sumsq(size_t off)
{
    const size_t n = 3000017;
    double *v = xmalloc(n * sizeof(double)), want = 0;
    float *f = xmalloc(n * sizeof(float));
    fill_uniform(v, n, 7, -2, 2);
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)v[i];
        want += (double)f[i] * f[i];
    }
    float *d = (float *)gpu->alloc((n + off) * sizeof(float)) + off;
    gpu->upload(d, f, n * sizeof(float));
    double got = gpu->sumsq(d, n);
    /* fp64 sums of exact fp64 squares: only the order differs */
    tap_check(fabs(got - want) <= 1e-12 * want, "sumsq (offset %zu): %.17g = %.17g", off, got, want);
    gpu->release(d - off);
    free(v);
    free(f);
}

/* one token of decoding: the output row and both caches after the step, from the same inputs and
   the same (bf16) earlier cache rows, at the chunk's first, a middle and its last position */
static void test_attention_step(int B, int H, int dz, int dv, int C)
{
    const int Z = H * dz, V = H * dv, pos[3] = {0, C / 2 + 1, C - 1};
    const size_t nq = (size_t)B * Z, nv = (size_t)B * V, nkc = (size_t)C * nq, nvc = (size_t)C * nv;
    double *in[5], *want[3], *got[3];
    const size_t n[5] = {nq, nq, nv, nkc, nvc}; /* q, k, v, kcache, vcache */
    for (int i = 0; i < 5; i++) {
        in[i] = xmalloc(n[i] * sizeof(double));
        fill_uniform(in[i], n[i], 300 + i, -1, 1);
        round_bf16(in[i], n[i]);
    }
    for (int p = 0; p < 3; p++) {
        const size_t nout[3] = {nv, nkc, nvc};
        for (int side = 0; side < 2; side++) {
            const Ops *o = side ? gpu : cpu;
            void *buf[6];
            for (int i = 0; i < 5; i++) {
                buf[i] = o->alloc(n[i] * o->act_size);
                put(o, ARG_ACT, buf[i], in[i], n[i]);
            }
            buf[5] = o->alloc(nv * o->act_size);
            o->attention_step(buf[5], buf[0], buf[1], buf[2], buf[3], buf[4], pos[p], B, H, dz, dv, C, 10000.0f);
            double **dst = side ? got : want;
            void *res[3] = {buf[5], buf[3], buf[4]};
            for (int r = 0; r < 3; r++) {
                dst[r] = xmalloc(nout[r] * sizeof(double));
                get(o, ARG_ACT, dst[r], res[r], nout[r]);
            }
            for (int i = 0; i < 6; i++)
                o->release(buf[i]);
        }
        const char *names[3] = {"o", "kcache", "vcache"};
        for (int r = 0; r < 3; r++) {
            double err = tap_relerr(got[r], want[r], nout[r]);
            tap_check(err < TOL_BF16, "attention_step B%d H%d dz%d dv%d C%d pos %d: %s matches the CPU (rel err %.1e)",
                      B, H, dz, dv, C, pos[p], names[r], err);
            free(got[r]);
            free(want[r]);
        }
    }
    for (int i = 0; i < 5; i++)
        free(in[i]);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    cpu = ops_cpu();
    gpu = ops_cuda();
    if (!gpu)
        tap_bail_out("no CUDA device: the GPU tests must run on a machine with a GPU");
    test_memory();
    test_columns();
    test_adamw(0);
    test_adamw(1);
    test_sumsq(0);
    test_sumsq(1);

    const char *ew[] = {"silu", "swiglu"};
    for (int i = 0; i < 2; i++) {
        check(elementwise_case(ew[i], (1 << 20) + 3));
        check(elementwise_case(ew[i], 37));
        check(case_recompute(elementwise_case(ew[i], (1 << 20) + 3))); /* the backward writes y again */
        check(case_recompute(elementwise_case(ew[i], 37)));
    }
    check(embedding_case(4096, 512, 1000, 0, 1000));
    check(embedding_case(4096, 512, 1000, 250, 250)); /* a tensor-parallel rank's slice */
    check(embedding_case(300, 100, 40, 0, 40)); /* D not a multiple of 8: scalar path */
    check(embedding_case(4096, 64, 3, 0, 3));   /* runs of about 1365 positions per id */

    check(matmul_case(512, 256, 384, 1, 0, 1));
    check(matmul_case(512, 256, 384, 0, 1, 1));
    check(matmul_case(1024, 512, 256, 1, 1, 0));
    check(matmul_case(37, 9, 11, 1, 1, 1)); /* odd sizes and leading dims */
    check(matmul_case(512, 256, 384, 1, 2, 1)); /* a residual buffer as cuBLASLt's C */
    check(matmul_case(37, 9, 11, 0, 2, 1));

    for (int layer = 0; layer < 2; layer++) {
        check(norm_case(layer, 1024, 1024));
        check(norm_case(layer, 300, 2048));
        check(norm_case(layer, 65, 6144)); /* several column groups per thread */
        check(norm_case(layer, 33, 36));   /* scalar path */
    }

    /* groups of 32 (the presets), 48 and 4 channels; fresh and with a prior; several segments, a
       partial last one, and fewer steps than one segment. The backward's per-cell pass's lanes: 4
       (groups of 32), 2 (48), 4 scalar (4), 32 (256) and 1 (40) */
    check(tsnorm_case(2, 300, 256, 8, 0, 0));
    check(tsnorm_case(2, 150, 512, 2, 40, 1));
    check(tsnorm_case(1, 130, 80, 2, 0, 1));
    check(tsnorm_case(2, 1000, 128, 4, 700, 1));
    check(tsnorm_case(1, 77, 96, 2, 5, 1));
    check(tsnorm_case(3, 5, 12, 3, 0, 1));
    check(tsnorm_case(1, 4096, 64, 2, 0, 1));
    check(tsnorm_case(2, 2500, 64, 4, 3000, 1)); /* 79 segments: the chains scan 32, 32, then 15 */

    /* N = 16 (the presets) and fewer; with and without incoming and outgoing states; ragged last
       chunks; a long sequence; parts of one segment and of several */
    check(cema_case(2, 1000, 64, 16, 1, 1));
    check(cema_case(1, 77, 5, 5, 1, 1));
    check(cema_case(2, 300, 33, 16, 0, 0));
    check(cema_case(1, 4096, 32, 16, 1, 1));
    check(cema_case(2, 1000, 4096, 16, 1, 1)); /* wide: one part of several segments */
    check(cema_case(4, 200, 4096, 16, 0, 1));  /* and a ragged last chunk in each */
    check(cema_case(2, 96, 40, 16, 1, 1));     /* the end in a segment after whole chunks */
    check(cema_case(1, 4160, 32, 16, 1, 1));   /* 17 parts, the last of 4 whole chunks */
    check(cema_case(2, 600, 2048, 7, 1, 1));   /* one part (the output pass keeps the states), N < 16 */
    check(case_recompute(cema_case(2, 600, 2048, 7, 1, 1)));
    /* the backward without the forward's saved states (it computes them again) */
    check(case_recompute(cema_case(2, 1000, 64, 16, 1, 1)));
    check(case_recompute(cema_case(4, 200, 4096, 16, 0, 1)));
    check(case_recompute(cema_case(1, 4160, 32, 16, 1, 1)));

    check(qk_case(2, 300, 2, 64, 128, 10000));
    check(qk_case(1, 2148, 1, 256, 2048, 10000)); /* the presets' head and chunk, positions to 2047 */
    check(qk_case(2, 50, 3, 8, 16, 100));
    check(qk_case(3, 4000, 2, 32, 512, 10000)); /* more tokens than the backward's 1024 warps */

    /* several chunks and heads; one chunk shorter than C; a ragged last chunk; the presets' head
       shapes scaled down */
    check(attention_case(2, 512, 2, 32, 64, 128));
    check(attention_case(1, 100, 1, 16, 24, 128));
    check(attention_case(2, 300, 2, 16, 32, 128));
    check(attention_case(1, 1024, 2, 256, 512, 512)); /* 2 chunks: too few to cut in causal blocks */
    check(attention_case(1, 4096, 1, 64, 64, 2048));  /* the presets' chunk, 2 of them: 2 causal blocks */
    check(attention_case(8, 1024, 1, 16, 16, 1024));  /* 8 chunks of 1024: 2 causal blocks */
    check(attention_case(8, 2048, 1, 16, 16, 2048));  /* 8 chunks of 2048: 4 causal blocks */
    /* dS's load widths: dv not a multiple of 8 (scalar row sums) with rows of 4k; chunks of an odd
       length (scalar rows) with dv of 8k; both scalar */
    check(attention_case(2, 256, 2, 16, 12, 128));
    check(attention_case(2, 133, 2, 8, 16, 64));
    check(attention_case(1, 99, 1, 16, 21, 128));
    /* score rows longer than the piece a warp holds in registers (2048 wide, 512 scalar): the
       paper's chunk of 4096 (2 pieces) and one chunk of an odd 1025 (3 scalar pieces) */
    check(attention_case(1, 4100, 1, 16, 16, 4096));
    check(attention_case(1, 1025, 1, 16, 16, 2048));
    /* the backward computing P again instead of reading the forward's: causal blocks, several
       heads with ragged chunks, rows of several pieces */
    check(case_recompute(attention_case(8, 2048, 1, 16, 16, 2048)));
    check(case_recompute(attention_case(2, 300, 2, 16, 32, 128)));
    check(case_recompute(attention_case(1, 1025, 1, 16, 16, 2048)));

    /* decoding: one token at a time (L = 1) through the stateful ops, and the attention step with
       the presets' head and chunk, and a small odd one */
    check(tsnorm_case(2, 1, 256, 8, 37, 1));
    check(cema_case(2, 1, 64, 16, 1, 1));
    check(case_recompute(cema_case(2, 1, 64, 16, 1, 1)));
    test_attention_step(2, 2, 256, 2048, 2048);
    test_attention_step(1, 3, 8, 24, 16);

    check(crossentropy_case(257, 1000, 1));
    check(crossentropy_case(64, 32000, 1));
    check(crossentropy_case(64, 32000, 4)); /* tensor-parallel slices */
    check(crossentropy_case(31, 37, 1)); /* vocabulary not a multiple of 8 */
    check(crossentropy_case(31, 111, 3)); /* slices of 37 */

    /* the same bits on every run, at mega200M's sizes (one sequence of 4K; the loss on 256 tokens),
       for the ops that sum in orders of their own */
    check_repeat(matmul_case(4096, 1024, 2048, 1, 1, 1));
    check_repeat(norm_case(0, 4096, 1024));
    check_repeat(norm_case(1, 4096, 1024));
    check_repeat(tsnorm_case(1, 4096, 1024, 32, 0, 1));
    check_repeat(cema_case(1, 4096, 1024, 16, 1, 1));
    check_repeat(qk_case(1, 4096, 1, 256, 2048, 10000));
    check_repeat(attention_case(1, 4096, 1, 256, 2048, 2048));
    check_repeat(crossentropy_case(256, 32000, 1));
    check_repeat(embedding_case(4096, 1024, 32000, 0, 32000));
    check_repeat(embedding_case(4096, 64, 3, 0, 3));

    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
