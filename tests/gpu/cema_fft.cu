/* cema_fft.cu: what CEMA's forward would cost through cuFFT, for doc/perf.md's comparison with
   the chunked scan of kernels/cuda/cema.cu. The FFT route of the reference repository: per
   channel, the causal convolution of u with the kernel K over the whole length L, zero-padded to
   2P (P the next power of two >= L):
       transpose u (B, L, D) -> rows (B D, 2P) with zero padding        (activations are time-major)
       rfft of the B D rows and of the D kernel rows
       pointwise complex product (the kernel broadcast over B)
       inverse rfft, transpose back to (B, L, D) keeping the first L
   Building K itself (D x L from the N modes) is left out, so this is a lower bound of the FFT
   route; fp32 throughout (the real input is bf16, which would only add a conversion).
   Usage: cema_fft B L D; prints the median time of 20 runs and the route's memory-traffic floor
   (bytes each stage must read and write, over 4.8 TB/s). Build: tests/gpu/cema_fft.sh. */
#include <cuda_runtime.h>
#include <cufft.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                         \
    do {                                                                                              \
        cudaError_t e_ = (x);                                                                         \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                                  \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)
#define FK(x)                                                                                         \
    do {                                                                                              \
        cufftResult r_ = (x);                                                                         \
        if (r_ != CUFFT_SUCCESS) {                                                                    \
            fprintf(stderr, "%s: cuFFT error %d\n", #x, (int)r_);                                     \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

/* (B, L, D) -> rows (B D, P2), zero beyond L: 32 x 32 tiles through shared memory */
__global__ void to_rows(float *rows, const float *u, int L, int D, int P2)
{
    __shared__ float tile[32][33];
    const int b = blockIdx.z, t0 = blockIdx.y * 32, d0 = blockIdx.x * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int t = t0 + i, d = d0 + threadIdx.x;
        tile[i][threadIdx.x] = t < L && d < D ? u[((size_t)b * L + t) * D + d] : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int d = d0 + i, t = t0 + threadIdx.x;
        if (d < D)
            rows[((size_t)b * D + d) * P2 + t] = tile[threadIdx.x][i];
    }
}

/* rows (B D, P2) -> (B, L, D), the first L of each row, scaled by 1/P2 (cuFFT leaves it out) */
__global__ void from_rows(float *y, const float *rows, int L, int D, int P2)
{
    __shared__ float tile[32][33];
    const int b = blockIdx.z, t0 = blockIdx.y * 32, d0 = blockIdx.x * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int d = d0 + i, t = t0 + threadIdx.x;
        tile[i][threadIdx.x] = d < D && t < L ? rows[((size_t)b * D + d) * P2 + t] : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int t = t0 + i, d = d0 + threadIdx.x;
        if (t < L && d < D)
            y[((size_t)b * L + t) * D + d] = tile[threadIdx.x][i] / (float)P2;
    }
}

/* x[r][f] *= k[r mod D][f] */
__global__ void multiply(cufftComplex *x, const cufftComplex *k, size_t rows, int D, int F)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= rows * F)
        return;
    cufftComplex a = x[i], c = k[(i / F % D) * F + i % F];
    x[i] = make_cuFloatComplex(a.x * c.x - a.y * c.y, a.x * c.y + a.y * c.x);
}

__global__ void fill(float *x, size_t n, unsigned seed)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = (float)((i * 2654435761u + seed) % 2001) / 1000.0f - 1.0f;
}

static int cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cema_fft B L D\n");
        return 2;
    }
    const int B = atoi(argv[1]), L = atoi(argv[2]), D = atoi(argv[3]);
    int P = 1;
    while (P < L)
        P *= 2;
    const int P2 = 2 * P, F = P + 1;
    const size_t rows = (size_t)B * D;
    float *u, *y, *urows, *krows;
    cufftComplex *U, *K;
    CK(cudaMalloc(&u, rows * L * sizeof(float)));
    CK(cudaMalloc(&y, rows * L * sizeof(float)));
    CK(cudaMalloc(&urows, rows * P2 * sizeof(float)));
    CK(cudaMalloc(&krows, (size_t)D * P2 * sizeof(float)));
    CK(cudaMalloc(&U, rows * F * sizeof(cufftComplex)));
    CK(cudaMalloc(&K, (size_t)D * F * sizeof(cufftComplex)));
    fill<<<(unsigned)((rows * L + 255) / 256), 256>>>(u, rows * L, 1);
    fill<<<(unsigned)(((size_t)D * P2 + 255) / 256), 256>>>(krows, (size_t)D * P2, 2);
    cufftHandle fwd_u, fwd_k, inv;
    int n[1] = {P2};
    FK(cufftPlanMany(&fwd_u, 1, n, NULL, 1, P2, NULL, 1, F, CUFFT_R2C, (int)rows));
    FK(cufftPlanMany(&fwd_k, 1, n, NULL, 1, P2, NULL, 1, F, CUFFT_R2C, D));
    FK(cufftPlanMany(&inv, 1, n, NULL, 1, F, NULL, 1, P2, CUFFT_C2R, (int)rows));
    const dim3 tb(32, 8), tg((D + 31) / 32, (P2 + 31) / 32, B), tg2((D + 31) / 32, (L + 31) / 32, B);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[20];
    for (int r = -3; r < 20; r++) { /* 3 warm-ups */
        CK(cudaEventRecord(e0));
        to_rows<<<tg, tb>>>(urows, u, L, D, P2);
        FK(cufftExecR2C(fwd_u, urows, U));
        FK(cufftExecR2C(fwd_k, krows, K)); /* the kernel changes with the parameters every step */
        multiply<<<(unsigned)((rows * F + 255) / 256), 256>>>(U, K, rows, D, F);
        FK(cufftExecC2R(inv, U, urows));
        from_rows<<<tg2, tb>>>(y, urows, L, D, P2);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        CK(cudaGetLastError());
        if (r >= 0)
            CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    qsort(ms, 20, sizeof ms[0], cmp);
    /* bytes each stage must move: transpose in (read u, write padded rows), rfft of u (read rows,
       write spectra), rfft of K, product (read both, write), inverse (read, write rows), transpose
       out (read L of each row, write y) */
    const double f4 = 4, c8 = 8;
    double bytes = rows * L * f4 + rows * P2 * f4              /* to rows */
                   + rows * P2 * f4 + rows * F * c8            /* rfft u */
                   + (double)D * P2 * f4 + (double)D * F * c8 /* rfft K */
                   + 2 * rows * F * c8 + (double)D * F * c8   /* product */
                   + rows * F * c8 + rows * P2 * f4            /* inverse */
                   + 2 * rows * L * f4;                        /* back */
    printf("cema_fft: B=%d L=%d D=%d (FFT length %d): forward convolution %.3f ms median of 20 (min %.3f, max "
           "%.3f); traffic floor %.3f ms (%.2f GB at 4.8 TB/s)\n",
           B, L, D, P2, ms[10], ms[0], ms[19], bytes / 4.8e12 * 1e3, bytes / 1e9);
    return 0;
}
