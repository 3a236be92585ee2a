/* elementwise.c: copy, accumulate, the tensor-parallel column layouts, SiLU and the SwiGLU gate,
   forward and backward (n elements; backward overwrites or adds to the input gradients and may
   write the forward's output again, for a model that recomputes it). */
#include "kernels/cpu/cpu.h"

#include <string.h>

void CPU(copy)(void *dst, const void *src, size_t n) { memcpy(dst, src, n * sizeof(real)); }

void CPU(accumulate)(void *dst, const void *src, size_t n)
{
    real *d = dst;
    const real *s = src;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        d[i] += s[i];
}

/* Copy between n blocks (n, T, w) and rows (T, n w); to_rows picks the direction. */
static void move_columns(real *rows, real *blocks, int n, int T, int w, int to_rows)
{
#pragma omp parallel for collapse(2)
    for (int j = 0; j < n; j++)
        for (int t = 0; t < T; t++) {
            real *r = rows + ((size_t)t * n + j) * w, *b = blocks + ((size_t)j * T + t) * w;
            if (to_rows)
                memcpy(r, b, (size_t)w * sizeof(real));
            else
                memcpy(b, r, (size_t)w * sizeof(real));
        }
}

void CPU(join_columns)(void *dst, const void *src, int n, int T, int w) { move_columns(dst, (real *)src, n, T, w, 1); }
void CPU(split_columns)(void *dst, const void *src, int n, int T, int w) { move_columns((real *)src, dst, n, T, w, 0); }

/* d silu(x) / dx with s = sigmoid(x) */
static inline real silu_grad(real x, real s) { return s * (1 + x * (1 - s)); }

/* the forward outputs from s = sigmoid(x): one expression for the forward and a backward's refwd */
static inline real silu_f(real x, real s) { return x * s; }
static inline real swiglu_f(real a, real s, real b) { return a * s * b; }

void CPU(silu_forward)(void *out, const void *in, size_t n)
{
    real *o = out;
    const real *x = in;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        o[i] = silu_f(x[i], real_sigmoid(x[i]));
}

void CPU(silu_backward)(void *din, const void *dout, const void *in, size_t n, int accumulate, void *refwd)
{
    real *dx = din, *y = refwd;
    const real *dy = dout, *x = in;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        real s = real_sigmoid(x[i]);
        grad_put(&dx[i], dy[i] * silu_grad(x[i], s), accumulate);
        if (y)
            y[i] = silu_f(x[i], s);
    }
}

void CPU(swiglu_forward)(void *out, const void *a, const void *b, size_t n)
{
    real *o = out;
    const real *x = a, *y = b;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        o[i] = swiglu_f(x[i], real_sigmoid(x[i]), y[i]);
}

void CPU(swiglu_backward)(void *da, void *db, const void *dout, const void *a, const void *b, size_t n, int accumulate,
                          void *refwd)
{
    real *dx = da, *dy = db, *o = refwd;
    const real *g = dout, *x = a, *y = b;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        real s = real_sigmoid(x[i]);
        grad_put(&dx[i], g[i] * y[i] * silu_grad(x[i], s), accumulate);
        grad_put(&dy[i], g[i] * x[i] * s, accumulate);
        if (o)
            o[i] = swiglu_f(x[i], s, y[i]);
    }
}
