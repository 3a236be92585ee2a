/* test_ops_ref.c: the CPU ops' forward results against independent formulas written here in plain
   double loops (TimestepNorm's closed form, CEMA's convolution form, naive chunked softmax
   attention, RoPE's restart at chunk boundaries, ...), and AdamW against a double-precision
   step written out. Then the backward ops' two modes against each other: overwriting gradient
   buffers that hold NaN must give bit for bit what accumulating onto zeros gives.

   Tolerances: outputs in the act dtype come from the fp64 build and differ from the formulas
   only by rounding order, so they must agree to 1e-12 (CEMA's recurrence against powers by
   cpow over a handful of steps: 1e-11). Values the interface stores in fp32 (saved statistics,
   states) carry fp32 rounding, ~6e-8: 1e-6. */
#include "tests/tap.h"
#include "tests/ops_harness.h"

#include <omp.h>

#define TOL_F64 1e-12
#define TOL_F32 1e-6

/* compares output `name` of a case run forward on cpu64 with `ref` */
static void check_out(OpCase *c, const char *name, const double *ref, double tol, const char *what)
{
    Arg *a = case_arg(c, 0, name);
    double err = tap_relerr(a->val, ref, a->n);
    tap_check(err < tol, "%s: %s %s (rel err %.1e)", c->name, name, what, err);
}

static double *zeros(size_t n) { return xcalloc(n, sizeof(double)); }

static void test_elementwise(void)
{
    const char *ops[] = {"silu", "swiglu"};
    for (int w = 0; w < 2; w++) {
        OpCase *c = elementwise_case(ops[w], 50);
        case_run(ops_cpu64(), c, 0);
        double *ref = zeros(c->T);
        for (int i = 0; i < c->T; i++) {
            double a = w == 0 ? VAL("x")[i] : VAL("a")[i];
            ref[i] = w == 0 ? a / (1 + exp(-a)) : a / (1 + exp(-a)) * VAL("b")[i];
        }
        check_out(c, "y", ref, TOL_F64, "matches the formula");
        free(ref);
        case_free(c);
    }
}

static void test_embedding(int v0, int rows)
{
    OpCase *c = embedding_case(11, 6, 9, v0, rows);
    case_run(ops_cpu64(), c, 0);
    double *ref = zeros((size_t)c->T * c->D);
    for (int t = 0; t < c->T; t++)
        for (int i = 0; c->ids[t] >= v0 && c->ids[t] < v0 + rows && i < c->D; i++)
            ref[t * c->D + i] = VAL("table")[(c->ids[t] - v0) * c->D + i] * c->scale;
    check_out(c, "y", ref, TOL_F64, "is the scaled table row (0 for ids outside the table's slice)");
    free(ref);
    case_free(c);
}

static void test_matmul(int bias, int accumulate)
{
    OpCase *c = matmul_case(13, 9, 11, bias, accumulate, 1);
    case_run(ops_cpu64(), c, 0);
    double *ref = zeros((size_t)c->T * c->OC);
    for (int t = 0; t < c->T; t++)
        for (int j = 0; j < c->OC; j++) {
            double s = (accumulate ? c->prior[t * c->OC + j] : 0) + (bias ? VAL("bias")[j] : 0);
            for (int i = 0; i < c->IC; i++)
                s += VAL("inp")[t * c->IC + i] * VAL("w")[j * c->IC + i];
            ref[t * c->OC + j] = s;
        }
    check_out(c, "y", ref, TOL_F64, "= inp w^T (+ bias, + prior out or residual)");
    free(ref);
    case_free(c);
}

static void test_norms(void)
{
    for (int layer = 0; layer < 2; layer++) {
        OpCase *c = norm_case(layer, 7, 10);
        case_run(ops_cpu64(), c, 0);
        const int T = c->T, D = c->D;
        double *y = zeros((size_t)T * D), *m = zeros(T), *r = zeros(T);
        for (int t = 0; t < T; t++) {
            const double *x = VAL("x") + t * D;
            double mean = 0, sq = 0;
            for (int i = 0; i < D; i++)
                mean += x[i] / D;
            for (int i = 0; i < D; i++)
                sq += (x[i] - (layer ? mean : 0)) * (x[i] - (layer ? mean : 0)) / D;
            m[t] = mean;
            r[t] = 1 / sqrt(sq + c->eps);
            for (int i = 0; i < D; i++)
                y[t * D + i] = (x[i] - (layer ? mean : 0)) * r[t] * (1 + VAL("w")[i]) + (layer ? VAL("b")[i] : 0);
        }
        check_out(c, "y", y, TOL_F64, "matches the formula");
        if (layer) {
            check_out(c, "mean", m, TOL_F32, "saved");
            check_out(c, "rstd", r, TOL_F32, "saved");
        } else {
            check_out(c, "rrms", r, TOL_F32, "saved");
        }
        free(y);
        free(m);
        free(r);
        case_free(c);
    }
}

static void test_tsnorm(int64_t n0)
{
    OpCase *c = tsnorm_case(3, 9, 12, 3, n0, 1);
    case_run(ops_cpu64(), c, 0);
    double *y = zeros((size_t)c->B * c->L * c->D), *m = zeros((size_t)c->B * c->L * c->G);
    double *r = zeros((size_t)c->B * c->L * c->G), *st = zeros((size_t)c->B * c->G * 2);
    ref_tsnorm(c, y, m, r, st);
    check_out(c, "y", y, TOL_F64, "matches the closed form (population stats of all steps so far)");
    check_out(c, "mean", m, TOL_F32, "saved = closed form");
    check_out(c, "rstd", r, TOL_F32, "saved = closed form");
    check_out(c, "state_out", st, TOL_F32, "= closed form at the last step");
    free(y);
    free(m);
    free(r);
    free(st);
    case_free(c);
}

/* The CUDA TimestepNorm takes 1 / count in float below 2^24 (kernels/cuda/tsnorm.cu, tsn_c2) on the
   grounds that it is then the same float as the double reciprocal rounded; both are correctly
   rounded, so this holds on any IEEE machine if it holds here. */
static void test_tsnorm_reciprocal(void)
{
    long differ = 0, first = 0;
    for (long n = 1; n <= 1L << 24; n++) {
        volatile float fn = (float)n; /* no folding into a double division */
        if (1.0f / fn != (float)(1.0 / (double)n) && !differ++)
            first = n;
    }
    tap_check(differ == 0, "1 / n in float = (float)(1 / (double) n) for every n up to 2^24 (%ld differ, first %ld)",
              differ, first);
}

static void test_cema(int with_h0)
{
    OpCase *c = cema_case(2, 17, 5, 6, with_h0, 1);
    case_run(ops_cpu64(), c, 0);
    double *y = zeros((size_t)c->B * c->L * c->D), *h = zeros((size_t)c->B * c->D * c->N * 2);
    ref_cema(c, y, h);
    check_out(c, "y", y, 1e-11, "matches the convolution form");
    check_out(c, "h_out", h, TOL_F32, "matches p sum q^(L-1-j) u_j + q^L h0");
    free(y);
    free(h);
    case_free(c);
}

/* per-head RMS norm, affine and rotation written out; then the chunk restart: with the input of
   the first chunk copied into the second, q and k of the two chunks agree */
static void test_qk(void)
{
    OpCase *c = qk_case(2, 12, 3, 8, 4, 100);
    const int B = c->B, L = c->L, H = c->H, dz = c->dz, C = c->C, Z = H * dz;
    double *zs = VAL("zs");
    for (int b = 0; b < B; b++)
        for (int l = 0; l < C; l++)
            memcpy(zs + ((size_t)b * L + l + C) * Z, zs + ((size_t)b * L + l) * Z, Z * sizeof(double));
    case_run(ops_cpu64(), c, 0);
    double *ref[2] = {zeros((size_t)B * L * Z), zeros((size_t)B * L * Z)};
    for (int tok = 0; tok < B * L; tok++)
        for (int h = 0; h < H; h++) {
            const double *z = zs + (size_t)tok * Z + h * dz;
            double ms = 0;
            for (int j = 0; j < dz; j++)
                ms += z[j] * z[j] / dz;
            for (int row = 0; row < 2; row++) {
                const double *g = VAL("gamma") + row * Z + h * dz, *be = VAL("beta") + row * Z + h * dz;
                double *out = ref[row] + (size_t)tok * Z + h * dz;
                for (int i = 0; i < dz / 2; i++) {
                    double a = z[2 * i] / sqrt(ms + c->eps) * (1 + g[2 * i]) / sqrt(dz) + be[2 * i];
                    double b = z[2 * i + 1] / sqrt(ms + c->eps) * (1 + g[2 * i + 1]) / sqrt(dz) + be[2 * i + 1];
                    double ang = (tok % L % C) * pow(c->base, -2.0 * i / dz);
                    out[2 * i] = a * cos(ang) - b * sin(ang);
                    out[2 * i + 1] = a * sin(ang) + b * cos(ang);
                }
            }
        }
    check_out(c, "q", ref[0], TOL_F64, "= rope(rmsnorm(z) (1+gamma0)/sqrt(dz) + beta0)");
    check_out(c, "k", ref[1], TOL_F64, "= rope(rmsnorm(z) (1+gamma1)/sqrt(dz) + beta1)");
    double diff = 0;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < C; l++)
            for (int j = 0; j < Z; j++) {
                size_t a = ((size_t)b * L + l) * Z + j, e = a + (size_t)C * Z;
                diff = fmax(diff, fabs(VAL("q")[a] - VAL("q")[e]) + fabs(VAL("k")[a] - VAL("k")[e]));
            }
    tap_check(diff == 0, "%s: RoPE restarts at each chunk (q, k at l and l + C agree)", c->name);
    free(ref[0]);
    free(ref[1]);
    case_free(c);
}

static void test_attention(int B, int L, int H, int dz, int dv, int C)
{
    OpCase *c = attention_case(B, L, H, dz, dv, C);
    case_run(ops_cpu64(), c, 0);
    const double *q = VAL("q"), *k = VAL("k"), *v = VAL("v");
    double *o = zeros((size_t)B * L * H * dv), *lse = zeros((size_t)B * H * L), *s = zeros(C);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++) {
                int l0 = l / C * C; /* the chunk's first row; attend to l0..l */
                double m = -INFINITY, sum = 0;
                for (int j = l0; j <= l; j++) {
                    s[j - l0] = 0;
                    for (int e = 0; e < dz; e++)
                        s[j - l0] +=
                            q[(((size_t)b * L + l) * H + h) * dz + e] * k[(((size_t)b * L + j) * H + h) * dz + e];
                    m = fmax(m, s[j - l0]);
                }
                for (int j = l0; j <= l; j++)
                    sum += exp(s[j - l0] - m);
                lse[((size_t)b * H + h) * L + l] = m + log(sum);
                for (int j = l0; j <= l; j++)
                    for (int e = 0; e < dv; e++)
                        o[(((size_t)b * L + l) * H + h) * dv + e] +=
                            exp(s[j - l0] - m) / sum * v[(((size_t)b * L + j) * H + h) * dv + e];
            }
    check_out(c, "o", o, TOL_F64, "matches naive chunked causal softmax attention");
    check_out(c, "lse", lse, TOL_F32, "= log-sum-exp of each score row");
    free(o);
    free(lse);
    free(s);
    case_free(c);
}

static void test_crossentropy(int V, int slices)
{
    OpCase *c = crossentropy_case(10, V, slices);
    case_run(ops_cpu64(), c, 0);
    const int T = c->T;
    double loss = 0, *grad = zeros((size_t)T * V), r = case_arg(c, 0, "loss")->grad[0];
    for (int t = 0; t < T; t++) {
        if (c->ids[t] < 0)
            continue;
        const double *x = VAL("logits") + t * V;
        double sum = 0;
        for (int i = 0; i < V; i++)
            sum += exp(x[i]);
        loss += log(sum) - x[c->ids[t]];
        for (int i = 0; i < V; i++)
            grad[t * V + i] = r * (exp(x[i]) / sum - (i == c->ids[t]));
    }
    check_out(c, "loss", &loss, TOL_F64, "= sum of -log softmax[target], ignored targets skipped");
    double err = tap_relerr(case_arg(c, 1, "logits")->grad, grad, (size_t)T * V);
    tap_check(err < TOL_F64, "%s: gradient = scale (softmax - onehot), 0 where ignored (rel err %.1e)", c->name, err);
    free(grad);
    case_free(c);
}

/* crossentropy adds to loss[0] (a second call doubles it) and flags a target outside the
   vocabulary in loss[1] as 1 + its token, leaving it out of the sum, instead of stopping there:
   the flag is read with the loss, after a step that may run as a graph. */
static void test_crossentropy_acc(void)
{
    const Ops *o = ops_cpu64();
    enum { T = 5, V = 7 };
    const int32_t y[T] = {1, 6, V + 13, 0, -1};
    double *lg = o->alloc(T * V * sizeof(double)), *stats = o->alloc(T * 3 * sizeof(double));
    double acc[2] = {0, 0}, want = 0;
    for (int i = 0; i < T * V; i++)
        lg[i] = 4 * rng_uniform(31, i) - 2;
    for (int t = 0; t < T; t++) {
        if (y[t] < 0 || y[t] >= V)
            continue;
        double sum = 0;
        for (int i = 0; i < V; i++)
            sum += exp(lg[t * V + i]);
        want += log(sum) - lg[t * V + y[t]];
    }
    o->crossentropy_stats(stats, lg, y, T, V, 0);
    o->crossentropy(acc, lg, y, stats, 1, T, V, 0, 0);
    const double once = acc[0];
    tap_check(fabs(once - want) < 1e-12 * want && acc[1] == 3,
              "crossentropy: adds the valid tokens' loss (%.17g, want %.17g) and flags token 2's target (%g)", once,
              want, acc[1]);
    o->crossentropy(acc, lg, y, stats, 1, T, V, 0, 0);
    tap_check(acc[0] == 2 * once && acc[1] == 3, "crossentropy: a second call adds to the loss (%.17g = 2 x %.17g)",
              acc[0], once);
    o->release(lg);
    o->release(stats);
}

/* Two AdamW steps against torch.optim.AdamW's order written out in double, for both builds and
   with param_act separate or (fp32 only) aliasing param. The kernel computes in double and
   rounds to fp32 on store, as the reference does here: they agree to fp32 rounding (1e-6). */
static void test_adamw(const Ops *o, int alias)
{
    enum { n = 37 };
    const float lr = 0.01f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    float p[n], m[n] = {0}, v[n] = {0}, g[n];
    double rp[n], rm[n] = {0}, rv[n] = {0};
    void *act = alias ? (void *)p : o->alloc(n * o->act_size);
    for (int i = 0; i < n; i++)
        rp[i] = p[i] = (float)(2 * rng_uniform(7, i) - 1);
    for (int step = 1; step <= 2; step++) {
        for (int i = 0; i < n; i++) {
            g[i] = (float)(2 * rng_uniform(8 + step, i) - 1);
            double gi = (double)g[i] * scale;
            rp[i] *= 1 - (double)lr * wd;
            rm[i] = b1 * rm[i] + (1 - (double)b1) * gi;
            rv[i] = b2 * rv[i] + (1 - (double)b2) * gi * gi;
            double denom = sqrt(rv[i]) / sqrt(1 - pow(b2, step)) + eps;
            rp[i] -= lr / (1 - pow(b1, step)) * rm[i] / denom;
        }
        o->adamw(p, act, g, m, v, n, lr, b1, b2, eps, wd, step, scale);
    }
    double got[n], gm[n], gv[n], ga[n];
    for (int i = 0; i < n; i++) {
        got[i] = p[i], gm[i] = m[i], gv[i] = v[i];
        ga[i] = o->act_size == sizeof(double) ? ((double *)act)[i] : ((float *)act)[i];
    }
    double err = fmax(tap_relerr(got, rp, n), fmax(tap_relerr(gm, rm, n), tap_relerr(gv, rv, n)));
    tap_check(err < TOL_F32, "adamw (%s%s): two steps match torch's AdamW in double (rel err %.1e)", o->name,
              alias ? ", param_act aliases param" : "", err);
    tap_check(tap_relerr(ga, got, n) == 0, "adamw (%s%s): param_act refreshed", o->name,
              alias ? ", param_act aliases param" : "");
    if (!alias)
        o->release(act);
}

/* Runs c's backward accumulating onto zero-filled gradient buffers (what the model did before the
   ops could overwrite), then overwriting buffers filled with NaN (an op that adds to them, or
   reads them at all, gives NaN), the parameters' gradients too where it has parameters
   (GRAD_NEW): every overwritten gradient must be the same bit for bit, so the modes change no
   number. Frees c. */
static void test_overwrite(const Ops *o, OpCase *c)
{
    case_run(o, c, 0);
    double *ref[CASE_MAXARGS] = {0};
    for (int i = 0; i < c->nin; i++)
        if (!(c->in[i].flags & ARG_NOGRAD)) {
            ref[i] = xmalloc(c->in[i].n * sizeof(double));
            memcpy(ref[i], c->in[i].grad, c->in[i].n * sizeof(double));
        }
    case_pass(c, 1);
    case_pass(c, 2);
    case_run(o, c, 2);
    size_t n = 0, differ = 0;
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        for (size_t j = 0; ref[i] && (a->flags & ARG_OVERWRITE) && j < a->n; j++, n++)
            differ += memcmp(&a->grad[j], &ref[i][j], sizeof(double)) != 0;
        free(ref[i]);
    }
    tap_check(n > 0 && differ == 0,
              "%s%s (%s): overwriting NaN = accumulating onto zeros, bit for bit (%zu of %zu differ)", c->name,
              case_mode(c), o->name, differ, n);
    case_free(c);
}

static void test_memory(const Ops *o)
{
    enum { n = 1000 };
    float *x = o->alloc(n * sizeof(float)), back[n];
    int zero = ((uintptr_t)x % 64) == 0;
    for (int i = 0; i < n; i++)
        zero = zero && x[i] == 0;
    tap_check(zero, "%s: alloc is 64-byte aligned and zero-filled", o->name);
    double ss = 0;
    for (int i = 0; i < n; i++) {
        x[i] = (float)rng_normal(5, i);
        ss += (double)x[i] * x[i];
    }
    void *act = o->alloc(n * o->act_size);
    o->f32_to_act(act, x, n);
    o->act_to_f32(back, act, n);
    tap_check(!memcmp(back, x, sizeof back), "%s: fp32 -> act -> fp32 round trip is exact", o->name);
    tap_check(fabs(o->sumsq(x, n) - ss) < 1e-12 * ss, "%s: sumsq", o->name);
    o->release(act);
    o->release(x);
}

/* 1 + k 2^-9, k = 0..7, is a quarter-ulp grid of bf16 (8 significant bits) near 1: round to
   nearest, ties (k = 2, 6) to even; an infinity and a NaN stay what they are */
static void test_bf16(const Ops *o)
{
    float x[10], back[10], want[10] = {1, 1, 1, 1 + 0x1p-7f, 1 + 0x1p-7f, 1 + 0x1p-7f, 1 + 0x1p-6f, 1 + 0x1p-6f,
                                       -INFINITY};
    for (int k = 0; k < 8; k++)
        x[k] = 1 + k * 0x1p-9f;
    x[8] = -INFINITY;
    x[9] = NAN;
    uint16_t wire[10];
    o->f32_to_bf16(wire, x, 10);
    o->bf16_to_f32(back, wire, 10);
    tap_check(!memcmp(back, want, 9 * sizeof(float)) && isnan(back[9]),
              "%s: f32_to_bf16 rounds to nearest even, bf16_to_f32 is exact", o->name);
}

/* The loss and the sum of squares are the same bits on 1, 3 and 4 threads: the tensor-parallel
   ranks each compute the loss and must agree exactly (tests/ops_harness.h fails a slice whose
   loss differs), and a run's gradient norm must not depend on the thread count. With OpenMP's
   reduction they differed in the last bits from one thread count to another. */
static void test_thread_invariance(void)
{
    enum { T = 4099, V = 50, N = 100003 };
    const Ops *o = ops_cpu();
    float *x = xmalloc(N * sizeof(float)), *lg = o->alloc((size_t)T * V * o->act_size);
    int32_t *y = xmalloc(T * sizeof(int32_t));
    double *stats = o->alloc((size_t)T * 3 * sizeof(double)), loss[3], sq[3];
    for (int i = 0; i < N; i++)
        x[i] = (float)(2 * rng_uniform(21, i) - 1);
    for (int t = 0; t < T; t++)
        y[t] = (int32_t)(rng_u64(22, t) % V);
    const int threads[3] = {1, 3, 4}, was = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        for (size_t i = 0; i < (size_t)T * V; i++)
            ((float *)lg)[i] = (float)(6 * rng_uniform(23, i) - 3);
        o->crossentropy_stats(stats, lg, y, T, V, 0);
        double acc[2] = {0, 0};
        o->crossentropy(acc, lg, y, stats, 1, T, V, 0, 0);
        loss[k] = acc[0];
        sq[k] = o->sumsq(x, N);
    }
    omp_set_num_threads(was);
    tap_check(!memcmp(&loss[0], &loss[1], 8) && !memcmp(&loss[0], &loss[2], 8),
              "crossentropy: the same loss on 1, 3 and 4 threads (%.17g %.17g %.17g)", loss[0], loss[1], loss[2]);
    tap_check(!memcmp(&sq[0], &sq[1], 8) && !memcmp(&sq[0], &sq[2], 8),
              "sumsq: the same sum on 1, 3 and 4 threads (%.17g %.17g %.17g)", sq[0], sq[1], sq[2]);
    free(x);
    free(y);
    o->release(lg);
    o->release(stats);
}

int main(void)
{
    test_thread_invariance();
    test_elementwise();
    test_embedding(0, 9);
    test_embedding(3, 4);
    test_matmul(1, 1);
    test_matmul(0, 0);
    test_matmul(1, 2);
    test_matmul(0, 2);
    test_norms();
    test_tsnorm(0);
    test_tsnorm(5);
    test_tsnorm_reciprocal();
    test_cema(0);
    test_cema(1);
    test_qk();
    test_attention(2, 12, 2, 5, 3, 4);
    test_attention(2, 6, 3, 4, 4, 8);
    test_crossentropy(7, 1);
    test_crossentropy(9, 3);
    test_crossentropy_acc();
    test_adamw(ops_cpu(), 0);
    test_adamw(ops_cpu(), 1);
    test_adamw(ops_cpu64(), 0);
    test_memory(ops_cpu());
    test_memory(ops_cpu64());
    test_bf16(ops_cpu());
    /* every op with an accumulate argument or parameters, at sizes where OpenMP and BLAS split the
       work */
    for (int b = 0; b < 2; b++) {
        const Ops *o = b ? ops_cpu64() : ops_cpu();
        test_overwrite(o, elementwise_case("silu", 3000));
        test_overwrite(o, elementwise_case("swiglu", 3000));
        test_overwrite(o, case_recompute(elementwise_case("silu", 3000))); /* and y written again */
        test_overwrite(o, case_recompute(elementwise_case("swiglu", 3000)));
        test_overwrite(o, matmul_case(150, 96, 80, 1, 0, 1));
        test_overwrite(o, norm_case(0, 100, 96));
        test_overwrite(o, norm_case(1, 100, 96));
        test_overwrite(o, tsnorm_case(2, 64, 32, 2, 64, 1));
        test_overwrite(o, cema_case(3, 100, 24, 8, 1, 1));
        test_overwrite(o, qk_case(2, 96, 2, 16, 32, 10000));
        test_overwrite(o, attention_case(2, 96, 2, 16, 24, 32));
        test_overwrite(o, attention_case(1, 10, 1, 4, 3, 4));
        test_overwrite(o, embedding_case(20, 64, 50, 0, 50)); /* rows no token uses */
    }
    return tap_done();
}
