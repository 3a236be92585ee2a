/* ops_harness.h: the harness shared by the tests of the ops interface (tests/test_ops_*.c).

   An OpCase is one op at one size: named inputs and outputs, held on the host as double, and
   forward/backward functions that call an Ops table on backend buffers. case_forward() uploads
   the inputs in the backend's dtypes (act dtype or fp32) and brings the outputs back as double;
   case_backward() feeds the outputs' upstream gradients and brings the input gradients back.
   So one description of each op serves the finite-difference checks (cpu64), the fp32/fp64
   comparison and the checks against reference formulas. A case of an op whose backward takes
   `accumulate` runs it accumulating, or overwriting after case_overwrite(); one of an op with
   parameters adds to their gradients, or writes them afresh (GRAD_NEW) after case_fresh(). An op
   that may keep a buffer of its own from forward to backward (CEMA's saved states) keeps it,
   unless case_recompute() says the backward is to compute it again.

   Every value is drawn uniformly from a stated range by a counter-based RNG keyed by (case,
   argument) and rounded to fp32, so the fp32 and fp64 backends see identical inputs. Include this
   file once per program, after tests/tap.h. */
#ifndef MEGATRAIN_OPS_HARNESS_H
#define MEGATRAIN_OPS_HARNESS_H

#include "kernels/ops.h"
#include "base/util.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Storage of a value or gradient: the backend's act dtype, fp32, or a host double (a loss). */
enum { ARG_ACT, ARG_F32, ARG_HOST };
/* ARG_SAVED: an output that is a saved statistic (no upstream gradient, not in the loss);
   ARG_OVERWRITE: the op overwrites this input's gradient instead of adding to it;
   ARG_NOGRAD: the input's gradient is not asked for (NULL is passed). */
enum { ARG_SAVED = 1, ARG_OVERWRITE = 2, ARG_NOGRAD = 4 };

typedef struct {
    const char *name;
    size_t n;
    int kind, gkind, flags;
    double *val;      /* (n) inputs: set by the test; outputs: filled by forward */
    double *grad;     /* (n) inputs: filled by backward; outputs: the upstream gradient R */
    void *buf, *gbuf; /* backend buffers of val and grad while a case runs */
} Arg;

#define CASE_MAXARGS 8

typedef struct OpCase {
    char name[96];
    int nin, nout;
    Arg in[CASE_MAXARGS], out[CASE_MAXARGS];
    void (*forward)(const Ops *o, struct OpCase *c);
    void (*backward)(const Ops *o, struct OpCase *c);
    /* exact fp64 value of a differentiable fp32 output (the states), from the inputs */
    void (*exact)(struct OpCase *c, const char *out, double *dst);
    int B, L, D, G, N, H, dz, dv, C, T, IC, OC, V, accumulate;
    int v0, slices; /* embedding: the table's first row of the vocabulary V; cross-entropy: the
                       vocabulary in slices, as tensor-parallel ranks hold it */
    int grad_acc;  /* backward's accumulate argument; -1: the op takes none */
    int pnew;      /* GRAD_NEW after case_fresh, else 0 */
    int recompute; /* keep nothing from forward to backward (case_recompute) */
    Arg *refwd;    /* the output backward wrote again (case_refwd), until checked */
    void *saved;   /* what the forward kept for the backward, in the backend's layout (or NULL) */
    int64_t n0;
    double eps, base, scale;
    int32_t *ids;  /* (T) tokens or targets */
    double *prior; /* matmul with accumulate: what out holds before forward */
} OpCase;

/* ---------------------------------------------------------------- values and buffers */

static inline void fill_uniform(double *v, size_t n, uint64_t key, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(key, i));
}

static inline uint64_t case_key(const OpCase *c, const char *what)
{
    return rng_mix(rng_key(1234, c->name) ^ rng_key(99, what));
}

static inline size_t kind_size(const Ops *o, int kind)
{
    return kind == ARG_ACT ? o->act_size : kind == ARG_F32 ? sizeof(float) : sizeof(double);
}

static inline void *buf_alloc(const Ops *o, int kind, size_t n)
{
    return kind == ARG_HOST ? xcalloc(n, sizeof(double)) : o->alloc(n * kind_size(o, kind));
}

static inline void buf_free(const Ops *o, int kind, void *p)
{
    if (kind == ARG_HOST)
        free(p);
    else
        o->release(p);
}

/* host double -> backend buffer of the given kind */
static inline void buf_put(const Ops *o, int kind, void *dst, const double *src, size_t n)
{
    if (kind == ARG_HOST) {
        memcpy(dst, src, n * sizeof(double));
        return;
    }
    size_t es = kind_size(o, kind);
    char *tmp = xmalloc(n * es);
    for (size_t i = 0; i < n; i++)
        if (es == sizeof(double))
            ((double *)tmp)[i] = src[i];
        else
            ((float *)tmp)[i] = (float)src[i];
    o->upload(dst, tmp, n * es);
    free(tmp);
}

static inline void buf_get(const Ops *o, int kind, double *dst, const void *src, size_t n)
{
    if (kind == ARG_HOST) {
        memcpy(dst, src, n * sizeof(double));
        return;
    }
    size_t es = kind_size(o, kind);
    char *tmp = xmalloc(n * es);
    o->download(tmp, src, n * es);
    for (size_t i = 0; i < n; i++)
        dst[i] = es == sizeof(double) ? ((double *)tmp)[i] : ((float *)tmp)[i];
    free(tmp);
}

/* ---------------------------------------------------------------- describing a case */

static inline Arg *case_arg(OpCase *c, int input, const char *name)
{
    Arg *list = input ? c->in : c->out;
    int n = input ? c->nin : c->nout;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name))
            return &list[i];
    return NULL;
}

/* Buffers by name for the forward/backward functions; NULL when the case has no such argument
   (so optional arguments pass NULL). */
#define IN(name) (case_arg(c, 1, name) ? case_arg(c, 1, name)->buf : NULL)
#define DIN(name) (case_arg(c, 1, name) ? case_arg(c, 1, name)->gbuf : NULL)
#define OUT(name) (case_arg(c, 0, name) ? case_arg(c, 0, name)->buf : NULL)
#define DOUT(name) (case_arg(c, 0, name) ? case_arg(c, 0, name)->gbuf : NULL)
/* host values by name */
#define VAL(name) (case_arg(c, 1, name) ? case_arg(c, 1, name)->val : case_arg(c, 0, name)->val)

static inline Arg *case_add(OpCase *c, int input, const char *name, size_t n, int kind, int gkind, int flags)
{
    Arg *a = input ? &c->in[c->nin++] : &c->out[c->nout++];
    *a = (Arg){name, n, kind, gkind, flags, xcalloc(n, sizeof(double)), xcalloc(n, sizeof(double)), NULL, NULL};
    return a;
}

/* An input with values uniform in [lo, hi): an activation (gradient in the act dtype), a
   parameter (compute copy in the act dtype, fp32 gradient) or a state (fp32, gradient
   overwritten). */
static inline Arg *act_in(OpCase *c, const char *name, size_t n, double lo, double hi)
{
    Arg *a = case_add(c, 1, name, n, ARG_ACT, ARG_ACT, 0);
    fill_uniform(a->val, n, case_key(c, name), lo, hi);
    return a;
}

static inline Arg *param_in(OpCase *c, const char *name, size_t n, double lo, double hi)
{
    Arg *a = case_add(c, 1, name, n, ARG_ACT, ARG_F32, 0);
    fill_uniform(a->val, n, case_key(c, name), lo, hi);
    return a;
}

static inline Arg *state_in(OpCase *c, const char *name, size_t n, double lo, double hi)
{
    Arg *a = case_add(c, 1, name, n, ARG_F32, ARG_F32, ARG_OVERWRITE);
    fill_uniform(a->val, n, case_key(c, name), lo, hi);
    return a;
}

/* An output; unless saved, its upstream gradient R is uniform in [-1, 1). */
static inline Arg *case_out(OpCase *c, const char *name, size_t n, int kind, int flags)
{
    Arg *a = case_add(c, 0, name, n, kind, kind, flags);
    if (!(flags & ARG_SAVED))
        fill_uniform(a->grad, n, case_key(c, a->name) ^ 0x5eed, -1, 1);
    return a;
}

static inline OpCase *case_new(const char *name, void (*fwd)(const Ops *, OpCase *), void (*bwd)(const Ops *, OpCase *))
{
    OpCase *c = xcalloc(1, sizeof(OpCase));
    snprintf(c->name, sizeof c->name, "%s", name);
    c->forward = fwd;
    c->backward = bwd;
    c->grad_acc = -1;
    return c;
}

/* A case whose backward computes again what its forward could keep. */
static inline OpCase *case_recompute(OpCase *c)
{
    c->recompute = 1;
    snprintf(c->name + strlen(c->name), sizeof c->name - strlen(c->name), " recomputed");
    return c;
}

/* A case whose op takes `accumulate`, accumulating until case_overwrite. */
static inline OpCase *case_new_acc(const char *name, void (*fwd)(const Ops *, OpCase *),
                                   void (*bwd)(const Ops *, OpCase *))
{
    OpCase *c = case_new(name, fwd, bwd);
    c->grad_acc = 1;
    return c;
}

/* Backward overwrites the activation inputs' gradients from now on (accumulate = 0). */
static inline OpCase *case_overwrite(OpCase *c)
{
    if (c->grad_acc < 0)
        fail("%s: the op's backward has no accumulate argument", c->name);
    c->grad_acc = 0;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].gkind == ARG_ACT)
            c->in[i].flags |= ARG_OVERWRITE;
    return c;
}

/* Backward writes the parameters' gradients afresh from now on (GRAD_NEW): every fp32 input
   gradient that is not an incoming state's (those are always overwritten). 0 for an op without
   parameters. */
static inline int case_fresh(OpCase *c)
{
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].gkind == ARG_F32 && !(c->in[i].flags & (ARG_OVERWRITE | ARG_NOGRAD))) {
            c->in[i].flags |= ARG_OVERWRITE;
            c->pnew = GRAD_NEW;
        }
    return c->pnew != 0;
}

/* Moves c to its backward's mode `pass`, cumulatively: 0 as built, 1 overwriting the activation
   inputs' gradients, 2 also writing the parameters' afresh; 0 for a mode the op does not have. */
static inline int case_pass(OpCase *c, int pass)
{
    if (pass == 1 && c->grad_acc < 0)
        return 0;
    if (pass == 1)
        case_overwrite(c);
    return pass < 2 || case_fresh(c);
}

/* The mode argument of an op with parameters, as the case stands */
static inline int case_grad_mode(const OpCase *c) { return (c->grad_acc > 0 ? GRAD_ADD : 0) | c->pnew; }

/* " (overwrite)", " (new params)", both or "": for test messages */
static inline const char *case_mode(const OpCase *c)
{
    return c->pnew ? (c->grad_acc == 0 ? " (overwrite, new params)" : " (new params)")
                   : c->grad_acc == 0 ? " (overwrite)" : "";
}

static inline void case_free(OpCase *c)
{
    for (int i = 0; i < c->nin + c->nout; i++) {
        Arg *a = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        free(a->val);
        free(a->grad);
    }
    free(c->ids);
    free(c->prior);
    free(c);
}

/* ---------------------------------------------------------------- running a case */

static inline void case_release(const Ops *o, OpCase *c)
{
    for (int i = 0; i < c->nin + c->nout; i++) {
        Arg *a = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        if (a->buf)
            buf_free(o, a->kind, a->buf);
        if (a->gbuf)
            buf_free(o, a->gkind, a->gbuf);
        a->buf = a->gbuf = NULL;
    }
    if (c->saved)
        o->release(c->saved);
    c->saved = NULL;
}

/* The buffer an op keeps from forward to backward: a fresh one of `bytes` (none for 0) each
   forward, all NaN (0xff bytes in fp32 and bf16), so a backward that reads what the forward did
   not write fails. */
static inline void case_keep(const Ops *o, OpCase *c, size_t bytes)
{
    if (c->saved)
        o->release(c->saved);
    c->saved = NULL;
    if (!bytes)
        return;
    c->saved = o->alloc(bytes);
    unsigned char *nan = xmalloc(bytes);
    memset(nan, 0xff, bytes);
    o->upload(c->saved, nan, bytes);
    free(nan);
}

/* The buffer of output `name` for a backward that writes the forward's output again (an op's
   refwd argument): under case_recompute that output's buffer, first all NaN (case_check_refwd
   then wants the forward's bits back), else NULL. */
static inline void *case_refwd(const Ops *o, OpCase *c, const char *name)
{
    if (!c->recompute)
        return NULL;
    Arg *a = case_arg(c, 0, name);
    size_t bytes = a->n * kind_size(o, a->kind);
    unsigned char *nan = xmalloc(bytes);
    memset(nan, 0xff, bytes);
    o->upload(a->buf, nan, bytes);
    free(nan);
    c->refwd = a;
    return a->buf;
}

/* After such a backward: the output holds what the forward wrote, bit for bit (one TAP line); get
   downloads as buf_get does */
static inline void case_check_refwd(const Ops *o, OpCase *c,
                                    void (*get)(const Ops *, int, double *, const void *, size_t))
{
    Arg *a = c->refwd;
    if (!a)
        return;
    double *v = xmalloc(a->n * sizeof(double));
    get(o, a->kind, v, a->buf, a->n);
    size_t differ = 0;
    for (size_t j = 0; j < a->n; j++)
        differ += memcmp(&v[j], &a->val[j], sizeof(double)) != 0;
    tap_check(differ == 0, "%s%s (%s): backward wrote %s again, the forward's bits (%zu of %zu differ)", c->name,
              case_mode(c), o->name, a->name, differ, a->n);
    free(v);
    c->refwd = NULL;
}

/* Uploads the inputs, runs forward and downloads the outputs; the buffers stay for backward
   until case_release. */
static inline void case_forward(const Ops *o, OpCase *c)
{
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        a->buf = buf_alloc(o, a->kind, a->n);
        buf_put(o, a->kind, a->buf, a->val, a->n);
    }
    for (int i = 0; i < c->nout; i++)
        c->out[i].buf = buf_alloc(o, c->out[i].kind, c->out[i].n);
    c->forward(o, c);
    for (int i = 0; i < c->nout; i++)
        buf_get(o, c->out[i].kind, c->out[i].val, c->out[i].buf, c->out[i].n);
}

/* Runs backward after case_forward and downloads the input gradients. With prefill, every input
   gradient buffer first holds random values, subtracted afterwards unless the op overwrites
   that gradient: an op that overwrites where it must add (or the reverse) fails the checks.
   prefill = 2 puts NaN where the op overwrites, so reading the old value at all (0 * old) shows. */
static inline void case_backward(const Ops *o, OpCase *c, int prefill)
{
    for (int i = 0; i < c->nout; i++) {
        Arg *a = &c->out[i];
        if (!(a->flags & ARG_SAVED)) {
            a->gbuf = buf_alloc(o, a->gkind, a->n);
            buf_put(o, a->gkind, a->gbuf, a->grad, a->n);
        }
    }
    double *pre[CASE_MAXARGS] = {0};
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        a->gbuf = buf_alloc(o, a->gkind, a->n);
        if (prefill) {
            pre[i] = xmalloc(a->n * sizeof(double));
            fill_uniform(pre[i], a->n, case_key(c, a->name) ^ 0xf111, -1, 1);
            for (size_t j = 0; prefill == 2 && (a->flags & ARG_OVERWRITE) && j < a->n; j++)
                pre[i][j] = NAN;
            buf_put(o, a->gkind, a->gbuf, pre[i], a->n);
        }
    }
    c->backward(o, c);
    case_check_refwd(o, c, buf_get);
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        buf_get(o, a->gkind, a->grad, a->gbuf, a->n);
        if (pre[i] && !(a->flags & ARG_OVERWRITE))
            for (size_t j = 0; j < a->n; j++)
                a->grad[j] -= pre[i][j];
        free(pre[i]);
    }
}

/* Forward and backward in one go, buffers released. */
static inline void case_run(const Ops *o, OpCase *c, int prefill)
{
    case_forward(o, c);
    case_backward(o, c, prefill);
    case_release(o, c);
}

/* The scalar the gradients are of: f = sum over differentiable outputs of R * output, with fp32
   outputs (the states) taken from c->exact so that fp32 rounding does not swamp the finite
   differences. */
static inline double case_loss(const Ops *o, OpCase *c)
{
    case_forward(o, c);
    case_release(o, c);
    double f = 0;
    for (int i = 0; i < c->nout; i++) {
        Arg *a = &c->out[i];
        if (a->flags & ARG_SAVED)
            continue;
        double *v = a->val;
        if (a->kind == ARG_F32) {
            v = xmalloc(a->n * sizeof(double));
            c->exact(c, a->name, v);
        }
        for (size_t j = 0; j < a->n; j++)
            f += a->grad[j] * v[j];
        if (v != a->val)
            free(v);
    }
    return f;
}

/* ---------------------------------------------------------------- reference formulas (fp64) */

static inline double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* TimestepNorm in closed form: the mean and population variance of every element of the group
   at timesteps 0..t plus a prior of n0 timesteps (Dg elements each) with mean mu0, variance v0.
   y, mean, rstd as the op's outputs; state (B, G, 2) the final [mean, var]. Any may be NULL. */
static inline void ref_tsnorm(OpCase *c, double *y, double *mean, double *rstd, double *state)
{
    const int B = c->B, L = c->L, D = c->D, G = c->G, Dg = D / G;
    const double *x = VAL("x"), *w = VAL("w"), *b = VAL("b");
    const Arg *st = case_arg(c, 1, "state_in");
    const double n0 = st ? c->n0 : 0;
    for (int bi = 0; bi < B; bi++)
        for (int g = 0; g < G; g++) {
            double mu0 = st ? st->val[2 * (bi * G + g)] : 0, v0 = st ? st->val[2 * (bi * G + g) + 1] : 0;
            double sum = n0 * Dg * mu0, sumsq = n0 * Dg * (v0 + mu0 * mu0), m = 0, v = 0;
            for (int t = 0; t < L; t++) {
                const double *xt = x + ((size_t)bi * L + t) * D + g * Dg;
                for (int i = 0; i < Dg; i++) {
                    sum += xt[i];
                    sumsq += xt[i] * xt[i];
                }
                double cnt = (n0 + t + 1) * Dg;
                m = sum / cnt;
                v = sumsq / cnt - m * m;
                double rs = 1 / sqrt(v + c->eps);
                size_t s = ((size_t)bi * L + t) * G + g;
                if (mean)
                    mean[s] = m;
                if (rstd)
                    rstd[s] = rs;
                for (int i = 0; y && i < Dg; i++)
                    y[((size_t)bi * L + t) * D + g * Dg + i] = (xt[i] - m) * rs * (1 + w[g * Dg + i]) + b[g * Dg + i];
            }
            if (state) {
                state[2 * (bi * G + g)] = m;
                state[2 * (bi * G + g) + 1] = v;
            }
        }
}

/* CEMA in the convolution form of spec section 3: K[l] = Re(sum_k g p q^l), bias[l] =
   Re(sum_k g q^(l+1) h0), y = K * u + bias + omega u; h_L = p sum_j q^(L-1-j) u_j + q^L h0.
   Powers by cpow. y (B, L, D) and hL (B, D, N, 2) may be NULL. */
static inline void ref_cema(OpCase *c, double *y, double *hL)
{
    const int B = c->B, L = c->L, D = c->D, N = c->N;
    const double *u = VAL("u"), *al = VAL("alpha"), *de = VAL("delta"), *th = VAL("theta"), *ga = VAL("gamma"),
                 *om = VAL("omega");
    const Arg *h0a = case_arg(c, 1, "h0");
    if (N > 64)
        fail("ref_cema: N = %d > 64", N);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            double complex p[64], q[64], g[64], h0[64];
            for (int k = 0; k < N; k++) {
                size_t i = (size_t)d * N + k;
                p[k] = ref_sigmoid(al[i]);
                q[k] = (1 - creal(p[k]) * ref_sigmoid(de[i])) * cexp(I * (k + 1) * ref_sigmoid(th[d]) * 2 * M_PI / N);
                g[k] = (ga[2 * i] + I * ga[2 * i + 1]) / sqrt(N);
                size_t hk = (((size_t)b * D + d) * N + k) * 2;
                h0[k] = h0a ? h0a->val[hk] + I * h0a->val[hk + 1] : 0;
            }
            for (int l = 0; y && l < L; l++) {
                double acc = om[d] * u[((size_t)b * L + l) * D + d];
                for (int k = 0; k < N; k++) {
                    double complex s = g[k] * cpow(q[k], l + 1) * h0[k];
                    for (int j = 0; j <= l; j++)
                        s += g[k] * p[k] * cpow(q[k], l - j) * u[((size_t)b * L + j) * D + d];
                    acc += creal(s);
                }
                y[((size_t)b * L + l) * D + d] = acc;
            }
            for (int k = 0; hL && k < N; k++) {
                double complex h = cpow(q[k], L) * h0[k];
                for (int j = 0; j < L; j++)
                    h += p[k] * cpow(q[k], L - 1 - j) * u[((size_t)b * L + j) * D + d];
                size_t hk = (((size_t)b * D + d) * N + k) * 2;
                hL[hk] = creal(h);
                hL[hk + 1] = cimag(h);
            }
        }
}

/* ---------------------------------------------------------------- the cases */

static inline void silu_fwd(const Ops *o, OpCase *c) { o->silu_forward(OUT("y"), IN("x"), c->T); }
static inline void silu_bwd(const Ops *o, OpCase *c)
{
    o->silu_backward(DIN("x"), DOUT("y"), IN("x"), c->T, c->grad_acc, case_refwd(o, c, "y"));
}
static inline void swiglu_fwd(const Ops *o, OpCase *c) { o->swiglu_forward(OUT("y"), IN("a"), IN("b"), c->T); }
static inline void swiglu_bwd(const Ops *o, OpCase *c)
{
    o->swiglu_backward(DIN("a"), DIN("b"), DOUT("y"), IN("a"), IN("b"), c->T, c->grad_acc, case_refwd(o, c, "y"));
}

/* which: "silu" (input x) or "swiglu" (inputs a, b), on n elements; recomputed (case_recompute),
   the backward writes y again */
static inline OpCase *elementwise_case(const char *which, int n)
{
    static const struct {
        const char *name;
        void (*fwd)(const Ops *, OpCase *), (*bwd)(const Ops *, OpCase *);
    } ops[] = {{"silu", silu_fwd, silu_bwd}, {"swiglu", swiglu_fwd, swiglu_bwd}};
    int w = 0;
    while (strcmp(ops[w].name, which))
        w++;
    OpCase *c = case_new_acc(which, ops[w].fwd, ops[w].bwd);
    c->T = n;
    act_in(c, w == 0 ? "x" : "a", n, -3, 3);
    if (w > 0)
        act_in(c, "b", n, -2, 2);
    case_out(c, "y", n, ARG_ACT, 0);
    return c;
}

static inline void embedding_fwd(const Ops *o, OpCase *c)
{
    o->embedding_forward(OUT("y"), c->ids, IN("table"), c->T, c->D, c->v0, (int)(case_arg(c, 1, "table")->n / c->D),
                         c->scale);
}
static inline void embedding_bwd(const Ops *o, OpCase *c)
{
    o->embedding_backward(DIN("table"), DOUT("y"), c->ids, c->T, c->D, c->v0,
                          (int)(case_arg(c, 1, "table")->n / c->D), c->scale, c->pnew);
}

/* tokens drawn from a vocabulary V smaller than T, so rows repeat; the table holds `rows` rows
   from id v0 (the whole vocabulary, or a tensor-parallel rank's slice) */
static inline OpCase *embedding_case(int T, int D, int V, int v0, int rows)
{
    char name[64] = "embedding";
    if (rows < V)
        snprintf(name, sizeof name, "embedding, ids %d-%d of %d", v0, v0 + rows - 1, V);
    OpCase *c = case_new(name, embedding_fwd, embedding_bwd);
    c->T = T, c->D = D, c->V = V, c->v0 = v0, c->scale = 1.75;
    c->ids = xmalloc(T * sizeof(int32_t));
    for (int t = 0; t < T; t++)
        c->ids[t] = rng_u64(case_key(c, "tok"), t) % V;
    param_in(c, "table", (size_t)rows * D, -1, 1);
    case_out(c, "y", (size_t)T * D, ARG_ACT, 0);
    return c;
}

/* y = prior + inp w^T + bias, the prior seeded into y (accumulate 1) or held in a residual buffer
   of its own (2), put there by `put`; without the prior (0) */
typedef void PutFn(const Ops *o, int kind, void *dst, const double *src, size_t n);
static inline void matmul_fwd_put(const Ops *o, OpCase *c, PutFn *put)
{
    const size_t n = (size_t)c->T * c->OC;
    void *res = c->accumulate == 1 ? OUT("y") : c->accumulate == 2 ? buf_alloc(o, ARG_ACT, n) : NULL;
    if (res)
        put(o, ARG_ACT, res, c->prior, n);
    o->matmul_forward(OUT("y"), IN("inp"), IN("w"), IN("bias"), res, c->T, c->IC, c->OC);
    if (c->accumulate == 2)
        buf_free(o, ARG_ACT, res);
}
static inline void matmul_fwd(const Ops *o, OpCase *c) { matmul_fwd_put(o, c, buf_put); }
static inline void matmul_bwd(const Ops *o, OpCase *c)
{
    o->matmul_backward(DIN("inp"), DIN("w"), DIN("bias"), DOUT("y"), IN("inp"), IN("w"), c->T, c->IC, c->OC,
                       case_grad_mode(c));
}

/* accumulate: 0, 1 (forward adds to y's prior content) or 2 (adds a residual buffer of that
   content); dinp: whether the input gradient is asked for (matmul_backward takes NULL) */
static inline OpCase *matmul_case(int T, int IC, int OC, int bias, int accumulate, int dinp)
{
    char name[64];
    snprintf(name, sizeof name, "matmul%s%s%s", bias ? " +bias" : "",
             accumulate == 1 ? " +accumulate" : accumulate == 2 ? " +residual" : "", dinp ? "" : " (no dinp)");
    OpCase *c = case_new_acc(name, matmul_fwd, matmul_bwd);
    c->T = T, c->IC = IC, c->OC = OC, c->accumulate = accumulate;
    act_in(c, "inp", (size_t)T * IC, -1, 1)->flags |= dinp ? 0 : ARG_NOGRAD;
    param_in(c, "w", (size_t)OC * IC, -1, 1);
    if (bias)
        param_in(c, "bias", OC, -1, 1);
    case_out(c, "y", (size_t)T * OC, ARG_ACT, 0);
    c->prior = xmalloc((size_t)T * OC * sizeof(double));
    fill_uniform(c->prior, (size_t)T * OC, case_key(c, "prior"), -1, 1);
    return c;
}

static inline void rmsnorm_fwd(const Ops *o, OpCase *c)
{
    o->rmsnorm_forward(OUT("y"), OUT("rrms"), IN("x"), IN("w"), c->T, c->D, c->eps);
}
static inline void rmsnorm_bwd(const Ops *o, OpCase *c)
{
    o->rmsnorm_backward(DIN("x"), DIN("w"), DOUT("y"), IN("x"), OUT("rrms"), IN("w"), c->T, c->D, case_grad_mode(c));
}
static inline void layernorm_fwd(const Ops *o, OpCase *c)
{
    o->layernorm_forward(OUT("y"), OUT("mean"), OUT("rstd"), IN("x"), IN("w"), IN("b"), c->T, c->D, c->eps);
}
static inline void layernorm_bwd(const Ops *o, OpCase *c)
{
    o->layernorm_backward(DIN("x"), DIN("w"), DIN("b"), DOUT("y"), IN("x"), OUT("mean"), OUT("rstd"), IN("w"), c->T,
                          c->D, case_grad_mode(c));
}

/* x is offset from zero so the LayerNorm mean matters */
static inline OpCase *norm_case(int layer, int T, int D)
{
    OpCase *c = case_new_acc(layer ? "layernorm" : "rmsnorm", layer ? layernorm_fwd : rmsnorm_fwd,
                             layer ? layernorm_bwd : rmsnorm_bwd);
    c->T = T, c->D = D, c->eps = (float)1e-5; /* the value the op receives */
    act_in(c, "x", (size_t)T * D, -0.5, 1.5);
    param_in(c, "w", D, -0.5, 0.5);
    if (layer)
        param_in(c, "b", D, -0.5, 0.5);
    case_out(c, "y", (size_t)T * D, ARG_ACT, 0);
    if (layer) {
        case_out(c, "mean", T, ARG_F32, ARG_SAVED);
        case_out(c, "rstd", T, ARG_F32, ARG_SAVED);
    } else {
        case_out(c, "rrms", T, ARG_F32, ARG_SAVED);
    }
    return c;
}

/* the op's chunk boundary: the case's incoming state, final state and their gradients */
static inline ChunkState tsnorm_chunk(OpCase *c)
{
    return (ChunkState){.n0 = c->n0, .tsn_in = IN("state_in"), .tsn_out = OUT("state_out"),
                        .dtsn_in = DIN("state_in"), .dtsn_out = DOUT("state_out")};
}
static inline void tsnorm_fwd(const Ops *o, OpCase *c)
{
    o->tsnorm_forward(OUT("y"), OUT("mean"), OUT("rstd"), IN("x"), IN("w"), IN("b"), tsnorm_chunk(c), c->B, c->L, c->D,
                      c->G, c->eps);
}
static inline void tsnorm_bwd(const Ops *o, OpCase *c)
{
    o->tsnorm_backward(DIN("x"), DIN("w"), DIN("b"), DOUT("y"), IN("x"), OUT("mean"), OUT("rstd"), IN("w"),
                       tsnorm_chunk(c), c->B, c->L, c->D, c->G, case_grad_mode(c));
}
static inline void tsnorm_exact(OpCase *c, const char *out, double *dst) { ref_tsnorm(c, NULL, NULL, NULL, dst); }

/* n0 > 0 gives a prior state_in (means in [-1, 1), variances in [0.5, 1.5)); with_out asks for
   state_out. x is offset so the running mean is not near zero. */
static inline OpCase *tsnorm_case(int B, int L, int D, int G, int64_t n0, int with_out)
{
    char name[64];
    snprintf(name, sizeof name, "tsnorm B%d L%d D%d G%d n0=%lld%s", B, L, D, G, (long long)n0,
             with_out ? " +state_out" : "");
    OpCase *c = case_new_acc(name, tsnorm_fwd, tsnorm_bwd);
    c->B = B, c->L = L, c->D = D, c->G = G, c->n0 = n0, c->eps = (float)1e-5; /* the value the op receives */
    c->exact = tsnorm_exact;
    act_in(c, "x", (size_t)B * L * D, -0.5, 1.5);
    param_in(c, "w", D, -0.5, 0.5);
    param_in(c, "b", D, -0.5, 0.5);
    if (n0 > 0) {
        Arg *s = state_in(c, "state_in", (size_t)B * G * 2, -1, 1);
        for (int i = 0; i < B * G; i++)
            s->val[2 * i + 1] = (float)(1 + 0.5 * s->val[2 * i + 1]);
    }
    case_out(c, "y", (size_t)B * L * D, ARG_ACT, 0);
    case_out(c, "mean", (size_t)B * L * G, ARG_F32, ARG_SAVED);
    case_out(c, "rstd", (size_t)B * L * G, ARG_F32, ARG_SAVED);
    if (with_out)
        case_out(c, "state_out", (size_t)B * G * 2, ARG_F32, 0);
    return c;
}

static inline CemaParams cema_params(OpCase *c)
{
    return (CemaParams){IN("alpha"), IN("delta"), IN("theta"), IN("gamma"), IN("omega")};
}
static inline ChunkState cema_chunk(OpCase *c)
{
    return (ChunkState){.h_in = IN("h0"), .h_out = OUT("h_out"), .dh_in = DIN("h0"), .dh_out = DOUT("h_out")};
}
static inline void cema_fwd(const Ops *o, OpCase *c)
{
    case_keep(o, c, c->recompute ? 0 : o->cema_saved_size(c->B, c->L, c->D));
    o->cema_forward(OUT("y"), c->saved, IN("u"), cema_params(c), cema_chunk(c), c->B, c->L, c->D, c->N);
}
static inline void cema_bwd(const Ops *o, OpCase *c)
{
    CemaGrads g = {DIN("alpha"), DIN("delta"), DIN("theta"), DIN("gamma"), DIN("omega")};
    o->cema_backward(DIN("u"), g, DOUT("y"), c->saved, IN("u"), cema_params(c), cema_chunk(c), c->B, c->L, c->D,
                     c->N, case_grad_mode(c));
}
static inline void cema_exact(OpCase *c, const char *out, double *dst) { ref_cema(c, NULL, dst); }

static inline OpCase *cema_case(int B, int L, int D, int N, int with_h0, int with_hout)
{
    char name[64];
    snprintf(name, sizeof name, "cema B%d L%d D%d N%d%s%s", B, L, D, N, with_h0 ? " +h0" : "",
             with_hout ? " +h_out" : "");
    OpCase *c = case_new_acc(name, cema_fwd, cema_bwd);
    c->B = B, c->L = L, c->D = D, c->N = N;
    c->exact = cema_exact;
    act_in(c, "u", (size_t)B * L * D, -1, 1);
    param_in(c, "alpha", (size_t)D * N, -1, 1);
    param_in(c, "delta", (size_t)D * N, -1, 1);
    param_in(c, "theta", D, -2, 2);
    param_in(c, "gamma", (size_t)D * N * 2, -1, 1);
    param_in(c, "omega", D, -1, 1);
    if (with_h0)
        state_in(c, "h0", (size_t)B * D * N * 2, -1, 1);
    case_out(c, "y", (size_t)B * L * D, ARG_ACT, 0);
    if (with_hout)
        case_out(c, "h_out", (size_t)B * D * N * 2, ARG_F32, 0);
    return c;
}

static inline void qk_fwd(const Ops *o, OpCase *c)
{
    o->qk_forward(OUT("q"), OUT("k"), OUT("rstd"), IN("zs"), IN("gamma"), IN("beta"), c->B, c->L, c->H, c->dz, c->C,
                  c->base, c->eps);
}
static inline void qk_bwd(const Ops *o, OpCase *c)
{
    o->qk_backward(DIN("zs"), DIN("gamma"), DIN("beta"), DOUT("q"), DOUT("k"), IN("zs"), OUT("rstd"), IN("gamma"), c->B,
                   c->L, c->H, c->dz, c->C, c->base, case_grad_mode(c));
}

static inline OpCase *qk_case(int B, int L, int H, int dz, int C, double base)
{
    char name[64];
    snprintf(name, sizeof name, "qk B%d L%d H%d dz%d C%d", B, L, H, dz, C);
    OpCase *c = case_new_acc(name, qk_fwd, qk_bwd);
    size_t Z = (size_t)H * dz, T = (size_t)B * L;
    c->B = B, c->L = L, c->H = H, c->dz = dz, c->C = C, c->base = base,
    c->eps = (float)1e-5; /* the value the op receives */
    act_in(c, "zs", T * Z, -1, 1);
    param_in(c, "gamma", 2 * Z, -0.5, 0.5);
    param_in(c, "beta", 2 * Z, -0.5, 0.5);
    case_out(c, "q", T * Z, ARG_ACT, 0);
    case_out(c, "k", T * Z, ARG_ACT, 0);
    case_out(c, "rstd", T * H, ARG_F32, ARG_SAVED);
    return c;
}

static inline void attention_fwd(const Ops *o, OpCase *c)
{
    case_keep(o, c, c->recompute ? 0 : o->attention_saved_size(c->B, c->L, c->H, c->C));
    o->attention_forward(OUT("o"), OUT("lse"), c->saved, IN("q"), IN("k"), IN("v"), c->B, c->L, c->H, c->dz, c->dv,
                         c->C);
}
static inline void attention_bwd(const Ops *o, OpCase *c)
{
    o->attention_backward(DIN("q"), DIN("k"), DIN("v"), DOUT("o"), c->saved, IN("q"), IN("k"), IN("v"), OUT("o"),
                          OUT("lse"), c->B, c->L, c->H, c->dz, c->dv, c->C, c->grad_acc);
}

static inline OpCase *attention_case(int B, int L, int H, int dz, int dv, int C)
{
    char name[64];
    snprintf(name, sizeof name, "attention B%d L%d H%d dz%d dv%d C%d", B, L, H, dz, dv, C);
    OpCase *c = case_new_acc(name, attention_fwd, attention_bwd);
    size_t T = (size_t)B * L;
    c->B = B, c->L = L, c->H = H, c->dz = dz, c->dv = dv, c->C = C;
    act_in(c, "q", T * H * dz, -1, 1);
    act_in(c, "k", T * H * dz, -1, 1);
    act_in(c, "v", T * H * dv, -1, 1);
    case_out(c, "o", T * H * dv, ARG_ACT, 0);
    case_out(c, "lse", (size_t)B * H * L, ARG_F32, ARG_SAVED);
    return c;
}

/* The op on logits (T, V) as c->slices tensor-parallel ranks run it: the columns cut into slices,
   each slice's statistics, then each slice's loss (the same from every slice) and, with
   grad_scale != 0, its gradient, joined back over the logits. */
#define MAX_SLICES 8
static inline double crossentropy_slices(const Ops *o, OpCase *c, void *logits, float grad_scale)
{
    const int n = c->slices, T = c->T, w = c->V / n;
    const size_t piece = (size_t)T * w * o->act_size;
    char *parts = o->alloc((size_t)n * piece);
    double *all = o->alloc((size_t)n * T * 3 * sizeof(double));
    double *acc = o->alloc((size_t)n * 2 * sizeof(double)), loss[2 * MAX_SLICES]; /* zero-filled */
    if (n > MAX_SLICES)
        fail("%s: at most %d slices", c->name, MAX_SLICES);
    o->split_columns(parts, logits, n, T, w);
    for (int j = 0; j < n; j++)
        o->crossentropy_stats(all + (size_t)j * T * 3, parts + j * piece, c->ids, T, w, j * w);
    for (int j = 0; j < n; j++)
        o->crossentropy(acc + 2 * j, parts + j * piece, c->ids, all, n, T, w, j * w, grad_scale);
    o->download(loss, acc, (size_t)n * 2 * sizeof(double));
    for (int j = 0; j < n; j++) {
        if (loss[2 * j + 1] != 0)
            fail("%s: slice %d flags a target outside the vocabulary (token %.0f)", c->name, j, loss[2 * j + 1] - 1);
        if (loss[2 * j] != loss[0])
            fail("%s: slice %d's loss %.17g is not slice 0's %.17g", c->name, j, loss[2 * j], loss[0]);
    }
    o->join_columns(logits, parts, n, T, w);
    o->release(parts);
    o->release(all);
    o->release(acc);
    return loss[0];
}

static inline void crossentropy_fwd(const Ops *o, OpCase *c)
{
    double loss = crossentropy_slices(o, c, IN("logits"), 0);
    buf_put(o, ARG_HOST, OUT("loss"), &loss, 1);
}
/* the gradient is written over a copy of the logits, scaled by the upstream gradient of the loss */
static inline void crossentropy_bwd(const Ops *o, OpCase *c)
{
    size_t n = (size_t)c->T * c->V;
    void *g = o->alloc(n * o->act_size);
    o->copy(g, IN("logits"), n);
    crossentropy_slices(o, c, g, (float)case_arg(c, 0, "loss")->grad[0]);
    o->accumulate(DIN("logits"), g, n);
    o->release(g);
}

/* every fourth target (from the second) is -1, ignored; the vocabulary V in `slices` slices */
static inline OpCase *crossentropy_case(int T, int V, int slices)
{
    char name[64] = "crossentropy";
    if (slices > 1)
        snprintf(name, sizeof name, "crossentropy, %d vocabulary slices", slices);
    OpCase *c = case_new(name, crossentropy_fwd, crossentropy_bwd);
    c->T = T, c->V = V, c->slices = slices;
    c->ids = xmalloc(T * sizeof(int32_t));
    for (int t = 0; t < T; t++)
        c->ids[t] = t % 4 == 1 ? -1 : (int32_t)(rng_u64(case_key(c, "targets"), t) % V);
    act_in(c, "logits", (size_t)T * V, -3, 3);
    case_out(c, "loss", 1, ARG_HOST, 0);
    return c;
}

#endif
