/* cpu.h: the CPU backend, compiled twice from the same sources: CPU_REAL_BITS=32 gives the fp32
   reference that trains (ops_cpu), CPU_REAL_BITS=64 its float64 twin for gradient checks
   (ops_cpu64). `real` is the activation type; CPU(name) gives each build its own symbols. */
#ifndef MEGATRAIN_CPU_H
#define MEGATRAIN_CPU_H

#include "kernels/ops.h"

#include "base/util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if CPU_REAL_BITS == 64
typedef double real;
#define CPU(name) cpu64_##name
#define CPU_DTYPE DTYPE_F64
#define cblas_gemm cblas_dgemm
#define real_exp exp
#else
typedef float real;
#define CPU(name) cpu32_##name
#define CPU_DTYPE DTYPE_F32
#define cblas_gemm cblas_sgemm
#define real_exp expf /* the hot elementwise and softmax loops run in the act precision */
#endif

const Ops *CPU(ops)(void);

/* Numerics shared by both builds: activations are stored as `real`, and elementwise functions
   are computed in it, but statistics, softmax sums, recurrences, coefficients and
   parameter-gradient sums run in double. */
static inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline real real_sigmoid(real x) { return 1 / (1 + real_exp(-x)); }
/* RoPE: cos and sin of the angle of pair i (of dz/2) at position pos, pos * base^(-2i/dz) */
static inline void rope_cs(double cs[2], int pos, int i, int dz, double base)
{
    double a = pos * pow(base, -2.0 * i / dz);
    cs[0] = cos(a);
    cs[1] = sin(a);
}

/* Sums over [0, n) that give the same bits for any number of threads (an OpenMP reduction adds
   the threads' parts in the order they finish, so a loss or a norm would change in its last bits
   from run to run): SUM_BLOCKS fixed blocks, each summed in order into part[b] by whichever
   thread, then the blocks in order. */
#define SUM_BLOCKS 64
static inline size_t sum_block_start(size_t n, int b) { return n * (size_t)b / SUM_BLOCKS; }
static inline double sum_blocks(const double part[SUM_BLOCKS])
{
    double s = 0;
    for (int b = 0; b < SUM_BLOCKS; b++)
        s += part[b];
    return s;
}

/* Parameter gradients summed over tokens in parallel, race-free and deterministic: inside a
   parallel region each thread adds into its own fp64 row of a (threads, n) scratch
   (partials_row); partials_sum then adds the rows into row 0 in thread order and returns it, to
   be added into the fp32 gradients (grad_add) before the scratch is freed. Allocate outside the
   parallel region. */
static inline double *partials_alloc(size_t n) { return xcalloc((size_t)omp_get_max_threads() * n, sizeof(double)); }
static inline double *partials_row(double *p, size_t n) { return p + (size_t)omp_get_thread_num() * n; }
static inline double *partials_sum(double *p, size_t n)
{
    for (int t = 1; t < omp_get_max_threads(); t++)
        for (size_t i = 0; i < n; i++)
            p[i] += p[(size_t)t * n + i];
    return p;
}
/* Stores v into a gradient: an activation input's (grad_put: added to what it holds with
   GRAD_ADD) or a parameter's (param_put: overwriting it with GRAD_NEW), by a backward op's mode
   (ops.h). The sum is rounded once, so overwriting gives bit for bit what adding onto zeros
   gave. */
static inline void grad_put(real *g, double v, int mode) { *g = (mode & GRAD_ADD ? *g : 0) + v; }
static inline void param_put(float *g, double v, int mode) { *g = (mode & GRAD_NEW ? 0 : *g) + v; }
static inline void grad_add(float *grad, const double *g, size_t n, int mode)
{
    for (size_t i = 0; i < n; i++)
        param_put(&grad[i], g[i], mode);
}

void *CPU(alloc)(size_t bytes);
void CPU(release)(void *p);
size_t CPU(peak_memory)(void);
void CPU(upload)(void *dst, const void *src, size_t bytes);
void CPU(download)(void *dst, const void *src, size_t bytes);
void CPU(zero)(void *p, size_t bytes);
void CPU(sync)(void);
void CPU(graph_run)(void **graph, void (*fn)(void *ctx), void *ctx);
void CPU(f32_to_act)(void *dst, const float *src, size_t n);
void CPU(act_to_f32)(float *dst, const void *src, size_t n);
void CPU(f32_to_bf16)(void *dst, const float *src, size_t n);
void CPU(bf16_to_f32)(float *dst, const void *src, size_t n);

void CPU(copy)(void *dst, const void *src, size_t n);
void CPU(accumulate)(void *dst, const void *src, size_t n);
void CPU(silu_forward)(void *out, const void *in, size_t n);
void CPU(silu_backward)(void *din, const void *dout, const void *in, size_t n, int accumulate, void *refwd);
void CPU(swiglu_forward)(void *out, const void *a, const void *b, size_t n);
void CPU(swiglu_backward)(void *da, void *db, const void *dout, const void *a, const void *b, size_t n, int accumulate,
                          void *refwd);

void CPU(join_columns)(void *dst, const void *src, int n, int T, int w);
void CPU(split_columns)(void *dst, const void *src, int n, int T, int w);

void CPU(embedding_forward)(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                            float scale);
void CPU(embedding_backward)(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                             float scale, int mode);

void CPU(matmul_forward)(void *out, const void *inp, const void *w, const void *bias, const void *res, int T, int IC,
                         int OC);
void CPU(matmul_backward)(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w,
                          int T, int IC, int OC, int mode);

void CPU(rmsnorm_forward)(void *y, float *rrms, const void *x, const void *w, int T, int D, float eps);
void CPU(rmsnorm_backward)(void *dx, float *dw, const void *dy, const void *x, const float *rrms, const void *w,
                           int T, int D, int mode);
void CPU(layernorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b, int T,
                            int D, float eps);
void CPU(layernorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                             const float *rstd, const void *w, int T, int D, int mode);

void CPU(tsnorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                         ChunkState chunk, int B, int L, int D, int G, float eps);
void CPU(tsnorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                          const float *rstd, const void *w, ChunkState chunk, int B, int L, int D, int G,
                          int mode);

size_t CPU(cema_saved_size)(int B, int L, int D);
void CPU(cema_forward)(void *y, void *saved, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D,
                       int N);
void CPU(cema_backward)(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                        ChunkState chunk, int B, int L, int D, int N, int mode);

void CPU(qk_forward)(void *q, void *k, float *rstd, const void *zs, const void *gamma, const void *beta, int B,
                     int L, int H, int dz, int C, float rope_base, float eps);
void CPU(qk_backward)(void *dzs, float *dgamma, float *dbeta, void *dq, void *dk, const void *zs,
                      const float *rstd, const void *gamma, int B, int L, int H, int dz, int C, float rope_base,
                      int mode);

size_t CPU(attention_saved_size)(int B, int L, int H, int C);
void CPU(attention_forward)(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B, int L,
                            int H, int dz, int dv, int C);
void CPU(attention_backward)(void *dq, void *dk, void *dvalue, const void *dout, const void *saved, const void *q,
                             const void *k, const void *v, const void *o, const float *lse, int B, int L, int H, int dz,
                             int dv, int C, int accumulate);
void CPU(attention_step)(void *o, const void *q, const void *k, const void *v, void *kcache, void *vcache, int pos,
                         int B, int H, int dz, int dv, int C, float rope_base);

void CPU(crossentropy_stats)(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0);
void CPU(crossentropy)(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                       int v0, float grad_scale);

double CPU(sumsq)(const float *x, size_t n);
void CPU(adamw)(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale);

#endif
