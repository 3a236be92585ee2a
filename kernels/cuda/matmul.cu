/* matmul.cu: GEMMs through cuBLASLt (bf16 in, fp32 accumulate, bf16 or fp32 out, bias or bias
   gradient epilogue) on the compute stream, with a cache of descriptors and heuristic choices per shape (in the
   context) so a step issues no heuristic query after the first; the linear layer's forward and
   backward on top of it, whose weight-gradient GEMM also sums the bias gradient (or a kernel
   does, where cuBLASLt has no such GEMM).

   Row-major (T, C) activations are column-major (C, T) matrices to cuBLASLt, and a (OC, IC) weight
   is a column-major (IC, OC) matrix, so: out' (OC x T) = w'^T inp'; dinp' (IC x T) (+)= w' dout';
   dw' (IC x OC) += inp' dout'^T. */
#include "kernels/cuda/cuda.cuh"

#include <string.h>

#define LT_CACHE 1024

typedef struct {
    int m, n, k, transa, transb, lda, ldb, ldd, batch, epi, align_a, align_b, align_d; /* epi: GEMM_* */
    long long stride_a, stride_b, stride_d;
    cudaDataType_t dtype_d;
} GemmKey;
enum { GEMM_PLAIN, GEMM_BIAS, GEMM_BGRADB };

typedef struct {
    GemmKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    int none; /* cuBLASLt has no algorithm (asked once; only GEMM_BGRADB may end so) */
} GemmPlan;

struct GemmCache {
    cublasLtHandle_t lt;
    int n_plans;
    GemmPlan plans[LT_CACHE];
};

static GemmCache *gemm_cache(CudaCtx *x)
{
    if (!x->gemm) {
        x->gemm = (GemmCache *)xcalloc(1, sizeof *x->gemm);
        CUBLAS_CHECK(cublasLtCreate(&x->gemm->lt));
    }
    return x->gemm;
}

/* largest power of two (<= 256) dividing the address and the batch stride in bytes */
static int alignment(const void *p, long long stride_bytes, int batch)
{
    uintptr_t a = (uintptr_t)p | 256;
    if (batch > 1)
        a |= (uintptr_t)stride_bytes;
    return (int)(a & (~a + 1));
}

static cublasLtMatrixLayout_t layout(cudaDataType_t t, int rows, int cols, int ld, int batch, long long stride)
{
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld));
    if (batch > 1) {
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
        CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return l;
}

static GemmPlan *plan_make(GemmCache *c, const GemmKey *k)
{
    if (c->n_plans == LT_CACHE)
        fail("cuda gemm: more than %d distinct GEMM shapes", LT_CACHE);
    GemmPlan *p = &c->plans[c->n_plans];
    memset(p, 0, sizeof *p);
    p->key = *k;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = k->transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (k->epi != GEMM_PLAIN) {
        cublasLtEpilogue_t epi = k->epi == GEMM_BIAS ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_BGRADB;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    }
    if (k->epi == GEMM_BIAS) { /* the bias is bf16; a bias gradient takes D's type (fp32 here) */
        cudaDataType_t bt = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    p->la = layout(CUDA_R_16BF, k->transa ? k->k : k->m, k->transa ? k->m : k->k, k->lda, k->batch, k->stride_a);
    p->lb = layout(CUDA_R_16BF, k->transb ? k->n : k->k, k->transb ? k->k : k->n, k->ldb, k->batch, k->stride_b);
    p->ld = layout(k->dtype_d, k->m, k->n, k->ldd, k->batch, k->stride_d);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = SCRATCH_LT;
    uint32_t al[3] = {(uint32_t)k->align_a, (uint32_t)k->align_b, (uint32_t)k->align_d};
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], 4));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &res, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    c->n_plans++;
    p->none = !found;
    if (!found && k->epi != GEMM_BGRADB)
        fail("cuda gemm: cuBLASLt has no algorithm for m=%d n=%d k=%d (trans %d%d, ld %d %d %d, batch %d)", k->m,
             k->n, k->k, k->transa, k->transb, k->lda, k->ldb, k->ldd, k->batch);
    p->algo = res.algo;
    return p;
}

int cuda_gemm(const Gemm *g)
{
    CudaCtx *x = cuda_ctx();
    GemmCache *c = gemm_cache(x);
    void *ws = cuda_scratch(SCRATCH_LT_WORKSPACE, SCRATCH_LT);
    const int es_d = g->dtype_d == CUDA_R_32F ? 4 : 2;
    GemmKey k;
    memset(&k, 0, sizeof k); /* the key is compared bytewise */
    k.m = g->m, k.n = g->n, k.k = g->k, k.transa = g->transa, k.transb = g->transb;
    k.lda = g->lda, k.ldb = g->ldb, k.ldd = g->ldd, k.batch = g->batch;
    k.epi = g->bias ? GEMM_BIAS : g->bgrad ? GEMM_BGRADB : GEMM_PLAIN;
    k.stride_a = g->batch > 1 ? g->stride_a : 0;
    k.stride_b = g->batch > 1 ? g->stride_b : 0;
    k.stride_d = g->batch > 1 ? g->stride_d : 0;
    k.align_a = alignment(g->a, k.stride_a * 2, g->batch);
    k.align_b = alignment(g->b, k.stride_b * 2, g->batch);
    k.align_d = alignment(g->d, k.stride_d * es_d, g->batch); /* and C's: they share the preference */
    if (g->c) {
        const int align_c = alignment(g->c, k.stride_d * es_d, g->batch);
        k.align_d = align_c < k.align_d ? align_c : k.align_d;
    }
    k.dtype_d = g->dtype_d;
    GemmPlan *p = NULL;
    for (int i = 0; i < c->n_plans && !p; i++)
        if (!memcmp(&c->plans[i].key, &k, sizeof k))
            p = &c->plans[i];
    if (!p)
        p = plan_make(c, &k);
    if (p->none)
        return 0;
    const void *vec = g->bias ? g->bias : g->bgrad;
    if (vec)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vec, sizeof vec));
    const float alpha = 1.0f, beta = g->beta;
    CUBLAS_CHECK(cublasLtMatmul(c->lt, p->desc, &alpha, g->a, p->la, g->b, p->lb, &beta, g->c ? g->c : g->d, p->ld,
                                g->d, p->ld, &p->algo, ws, SCRATCH_LT, x->stream));
    return 1;
}

/* ---- the linear layer ---- */

void cuda_matmul_forward(void *out, const void *inp, const void *w, const void *bias, const void *res, int T, int IC,
                         int OC)
{
    Gemm g = {.m = OC, .n = T, .k = IC, .transa = 1, .transb = 0, .a = w, .lda = IC, .b = inp, .ldb = IC,
              .d = out, .ldd = OC, .dtype_d = CUDA_R_16BF, .batch = 1, .beta = res ? 1.0f : 0.0f,
              .bias = bias, .c = res};
    cuda_gemm(&g);
}

/* dbias (OC) += (= with GRAD_NEW) column sums of dout (T, OC), where the weight-gradient GEMM cannot:
   32 columns x 8 row stripes per block, partial sums per block row, then cuda_add_partials */
#define BIAS_ROWS 8
__global__ void bias_grad_kernel(float *part, const bf16 *dout, int T, int OC)
{
    __shared__ float sh[BIAS_ROWS][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    float s = 0;
    if (j < OC)
        for (int t = blockIdx.y * BIAS_ROWS + threadIdx.y; t < T; t += gridDim.y * BIAS_ROWS)
            s += bf(dout[(size_t)t * OC + j]);
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < OC) {
        for (int r = 1; r < BIAS_ROWS; r++)
            s += sh[r][threadIdx.x];
        part[(size_t)blockIdx.y * OC + j] = s;
    }
}

static void bias_grad(float *dbias, const bf16 *dout, int T, int OC, int mode)
{
    int rows = (T + 255) / 256;
    rows = rows > 64 ? 64 : rows;
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)rows * OC * sizeof(float));
    bias_grad_kernel<<<dim3(ceil_div(OC, 32), rows), dim3(32, BIAS_ROWS), 0, cuda_stream()>>>(part, dout, T, OC);
    LAUNCH_CHECK();
    cuda_add_partials(dbias, part, rows, OC, OC, mode);
}

void cuda_matmul_backward(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w,
                          int T, int IC, int OC, int mode)
{
    if (dinp) {
        Gemm g = {.m = IC, .n = T, .k = OC, .transa = 0, .transb = 0, .a = w, .lda = IC, .b = dout, .ldb = OC,
                  .d = dinp, .ldd = IC, .dtype_d = CUDA_R_16BF, .batch = 1, .beta = mode & GRAD_ADD ? 1.0f : 0.0f,
                  .bias = NULL};
        cuda_gemm(&g);
    }
    if (!dw)
        return;
    /* dbias from the GEMM's B = dout'^T (T x OC): its sums over k = T, written (a first gradient) or
       into scratch and added */
    float *bsum = !dbias || mode & GRAD_NEW ? dbias : (float *)cuda_scratch(SCRATCH_PARTIALS, OC * sizeof(float));
    Gemm g = {.m = IC, .n = OC, .k = T, .transa = 0, .transb = 1, .a = inp, .lda = IC, .b = dout, .ldb = OC,
              .d = dw, .ldd = IC, .dtype_d = CUDA_R_32F, .batch = 1, .beta = mode & GRAD_NEW ? 0.0f : 1.0f,
              .bias = NULL, .bgrad = bsum};
    if (cuda_gemm(&g)) {
        if (bsum != dbias)
            cuda_add_partials(dbias, bsum, 1, OC, OC, mode);
        return;
    }
    g.bgrad = NULL; /* no such GEMM for this shape: the plain one and the kernel */
    cuda_gemm(&g);
    bias_grad(dbias, (const bf16 *)dout, T, OC, mode);
}
