/* memory.c: host memory for the CPU backend (64-byte aligned, zero-filled) and the fp32 <-> act
   and fp32 <-> bf16 conversions. */
#include "kernels/cpu/cpu.h"

#include <string.h>

#define CPU_ALIGN 64 /* a cache line, and enough for any vector load */

void *CPU(alloc)(size_t bytes)
{
    size_t padded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (padded == 0)
        padded = CPU_ALIGN;
    void *p = NULL;
    int err = posix_memalign(&p, CPU_ALIGN, padded);
    if (err)
        fail("cpu alloc: cannot allocate %zu bytes: %s", bytes, strerror(err));
    memset(p, 0, padded);
    return p;
}

void CPU(release)(void *p) { free(p); }
void CPU(upload)(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void CPU(download)(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void CPU(zero)(void *p, size_t bytes) { memset(p, 0, bytes); }
void CPU(sync)(void) {}

/* In the fp32 build dst may be src: each element is then assigned to itself. */
void CPU(f32_to_act)(void *dst, const float *src, size_t n)
{
    real *d = dst;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        d[i] = (real)src[i];
}

void CPU(act_to_f32)(float *dst, const void *src, size_t n)
{
    const real *s = src;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)s[i];
}

void CPU(f32_to_bf16)(void *dst, const float *src, size_t n) { util_f32_to_bf16(dst, src, n); }
void CPU(bf16_to_f32)(float *dst, const void *src, size_t n) { util_bf16_to_f32(dst, src, n); }
