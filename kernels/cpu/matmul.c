/* matmul.c: the linear layer through CBLAS, out (T, OC) = inp (T, IC) w^T + bias with w stored
   (OC, IC) as in PyTorch, and its backward. */
#include "kernels/cpu/cpu.h"

void CPU(matmul_forward)(void *out, const void *inp, const void *w, const void *bias, const void *res, int T, int IC,
                         int OC)
{
    real *o = out;
    const real *b = bias, *r = res;
    if (b || (r && r != o)) { /* seed out with the residual and the bias so the product can add onto them */
#pragma omp parallel for
        for (int t = 0; t < T; t++)
            for (int j = 0; j < OC; j++)
                o[(size_t)t * OC + j] = (r ? r[(size_t)t * OC + j] : 0) + (b ? b[j] : 0);
    }
    cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, IC, 1, inp, IC, w, IC, r || b ? 1 : 0, o, OC);
}

/* dw (OC, IC) += dout^T inp, or = with GRAD_NEW. dw is fp32 in both builds: the fp32 build
   accumulates straight into it, the fp64 build forms the product in double and rounds once when
   adding. */
static void matmul_dweight(float *dw, const real *dout, const real *inp, int T, int IC, int OC, int mode)
{
#if CPU_REAL_BITS == 64
    size_t n = (size_t)OC * IC;
    double *prod = xmalloc(n * sizeof(double)); /* (OC, IC) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, T, 1, dout, OC, inp, IC, 0, prod, IC);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        param_put(&dw[i], prod[i], mode);
    free(prod);
#else
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, T, 1, dout, OC, inp, IC, mode & GRAD_NEW ? 0 : 1, dw,
                IC);
#endif
}

void CPU(matmul_backward)(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w, int T,
                          int IC, int OC, int mode)
{
    const real *dy = dout;
    if (dinp)
        cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, IC, OC, 1, dy, OC, w, IC, mode & GRAD_ADD ? 1 : 0,
                   dinp, IC);
    if (!dw)
        return;
    matmul_dweight(dw, dy, inp, T, IC, OC, mode);
    if (dbias) {
#pragma omp parallel for
        for (int j = 0; j < OC; j++) {
            double s = 0;
            for (int t = 0; t < T; t++)
                s += dy[(size_t)t * OC + j];
            param_put(&dbias[j], s, mode);
        }
    }
}
