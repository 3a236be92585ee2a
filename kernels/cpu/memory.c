/* memory.c: host memory for the CPU backend (64-byte aligned, zero-filled, counted: the most held
   at once is the backend's peak_memory, which the memory plan's test compares with the plan) and
   the fp32 <-> act and fp32 <-> bf16 conversions. */
#include "kernels/cpu/cpu.h"

#include <string.h>

#define CPU_ALIGN 64 /* a cache line, and enough for any vector load; also the size of the header
                        before each block that keeps its size */

static size_t bytes_now, bytes_peak; /* asked for (headers and padding not counted), as CUDA counts */
static int in_graph;                 /* inside graph_run's fn */

/* What CUDA cannot capture in a graph fails here too, so CPU tests hold graphed steps to it. */
static void outside_graph(const char *what)
{
    if (in_graph)
        fail("cpu: %s inside a graph (ops.h: graph_run): a graphed step queues device work only", what);
}

void CPU(graph_run)(void **graph, void (*fn)(void *ctx), void *ctx)
{
    (void)graph; /* nothing to capture: fn runs directly */
    in_graph = 1;
    fn(ctx);
    in_graph = 0;
}

void *CPU(alloc)(size_t bytes)
{
    outside_graph("alloc");
    size_t padded = CPU_ALIGN + (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    char *p = NULL;
    int err = posix_memalign((void **)&p, CPU_ALIGN, padded);
    if (err)
        fail("cpu alloc: cannot allocate %zu bytes: %s", bytes, strerror(err));
    memset(p, 0, padded);
    *(size_t *)p = bytes;
    bytes_now += bytes;
    if (bytes_now > bytes_peak)
        bytes_peak = bytes_now;
    return p + CPU_ALIGN;
}

void CPU(release)(void *p)
{
    outside_graph("release");
    if (!p)
        return;
    char *block = (char *)p - CPU_ALIGN;
    bytes_now -= *(size_t *)block;
    free(block);
}

size_t CPU(peak_memory)(void) { return bytes_peak; }
void CPU(zero)(void *p, size_t bytes) { memset(p, 0, bytes); }

void CPU(upload)(void *dst, const void *src, size_t bytes)
{
    outside_graph("upload");
    memcpy(dst, src, bytes);
}

void CPU(download)(void *dst, const void *src, size_t bytes)
{
    outside_graph("download");
    memcpy(dst, src, bytes);
}

void CPU(sync)(void) { outside_graph("sync"); }

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
