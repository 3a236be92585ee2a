/* attention.c: chunk-local causal softmax attention (spec section 5), scale 1. Each task is one
   (b, chunk, head): its Q, K, V are strided views (row stride H*dz or H*dv) into the
   activations, multiplied with CBLAS into a per-thread C x C scratch (OpenBLAS runs
   single-threaded inside our parallel region). Backward recomputes P from the saved
   log-sum-exp, flash-style. Chunks are C long; the last is shorter when C does not divide L. */
#include "kernels/cpu/cpu.h"

/* One (b, chunk, head): rows [l0, l0 + n) of batch b, head h. */
typedef struct {
    size_t q, v; /* offsets of the first row in q/k and in v/o */
    size_t lse;  /* offset of the first row in lse */
    int n;       /* chunk length */
} AttnTask;

static int attn_tasks(int B, int L, int H, int C) { return B * ((L + C - 1) / C) * H; }

static AttnTask attn_task(int task, int L, int H, int dz, int dv, int C)
{
    int nc = (L + C - 1) / C, h = task % H, c = task / H % nc, b = task / H / nc, l0 = c * C;
    size_t row = (size_t)b * L + l0;
    return (AttnTask){row * H * dz + (size_t)h * dz, row * H * dv + (size_t)h * dv, ((size_t)b * H + h) * L + l0,
                      L - l0 < C ? L - l0 : C};
}

/* P (n, n) = causal softmax of the scores S = Q K^T, one row at a time. With lse == NULL the
   softmax is computed and its log-sum-exp stored in lse_out; otherwise P = exp(S - lse) is
   recomputed and renormalised, so an fp32 lse does not limit the fp64 build's precision. */
static void attn_probs(real *P, const real *q, const real *k, int n, int ldq, int dz, const float *lse, float *lse_out)
{
    cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dz, 1, q, ldq, k, ldq, 0, P, n);
    for (int i = 0; i < n; i++) {
        real *row = P + (size_t)i * n;
        double m = lse ? lse[i] : row[0], sum = 0;
        if (!lse)
            for (int j = 1; j <= i; j++)
                m = row[j] > m ? row[j] : m;
        for (int j = 0; j <= i; j++) {
            row[j] = exp(row[j] - m);
            sum += row[j];
        }
        for (int j = 0; j <= i; j++)
            row[j] /= sum;
        for (int j = i + 1; j < n; j++)
            row[j] = 0;
        if (lse_out)
            lse_out[i] = m + log(sum);
    }
}

/* the backward computes each chunk's probabilities again in its own task: nothing to keep */
size_t CPU(attention_saved_size)(int B, int L, int H, int C)
{
    (void)B, (void)L, (void)H, (void)C;
    return 0;
}

void CPU(attention_forward)(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B, int L,
                            int H, int dz, int dv, int C)
{
    (void)saved;
    const real *Q = q, *K = k, *V = v;
    real *O = o;
#pragma omp parallel
    {
        real *P = xmalloc((size_t)C * C * sizeof(real));
#pragma omp for
        for (int task = 0; task < attn_tasks(B, L, H, C); task++) {
            AttnTask a = attn_task(task, L, H, dz, dv, C);
            attn_probs(P, Q + a.q, K + a.q, a.n, H * dz, dz, NULL, lse + a.lse);
            cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.n, dv, a.n, 1, P, a.n, V + a.v, H * dv, 0, O + a.v,
                       H * dv);
        }
        free(P);
    }
}

void CPU(attention_backward)(void *dq, void *dk, void *dvalue, const void *dout, const void *saved, const void *q,
                             const void *k, const void *v, const void *o, const float *lse, int B, int L, int H, int dz,
                             int dv, int C, int accumulate)
{
    (void)saved;
    const real *Q = q, *K = k, *V = v, *O = o, *dO = dout;
    real *dQ = dq, *dK = dk, *dV = dvalue;
    const int ldq = H * dz, ldv = H * dv;
    const real beta = accumulate ? 1 : 0; /* each task writes its own rows of dQ, dK, dV once */
#pragma omp parallel
    {
        real *P = xmalloc(2 * (size_t)C * C * sizeof(real)), *dS = P + (size_t)C * C; /* (C, C) each */
#pragma omp for
        for (int task = 0; task < attn_tasks(B, L, H, C); task++) {
            AttnTask a = attn_task(task, L, H, dz, dv, C);
            const int n = a.n;
            attn_probs(P, Q + a.q, K + a.q, n, ldq, dz, lse + a.lse, NULL);
            /* dV (+)= P^T dO; dP = dO V^T (into dS) */
            cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dv, n, 1, P, n, dO + a.v, ldv, beta, dV + a.v, ldv);
            cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dv, 1, dO + a.v, ldv, V + a.v, ldv, 0, dS, n);
            /* dS = P (dP - rowsum(dO * O)) */
            for (int i = 0; i < n; i++) {
                const real *doi = dO + a.v + (size_t)i * ldv, *oi = O + a.v + (size_t)i * ldv;
                double dot = 0;
                for (int j = 0; j < dv; j++)
                    dot += (double)doi[j] * oi[j];
                for (int j = 0; j < n; j++)
                    dS[(size_t)i * n + j] = P[(size_t)i * n + j] * (dS[(size_t)i * n + j] - dot);
            }
            /* dQ (+)= dS K; dK (+)= dS^T Q */
            cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dz, n, 1, dS, n, K + a.q, ldq, beta, dQ + a.q,
                       ldq);
            cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dz, n, 1, dS, n, Q + a.q, ldq, beta, dK + a.q,
                       ldq);
        }
        free(P);
    }
}
