/* util.c: fatal errors, allocation, counter-based RNG, clocks. */
#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *progname = "megatrain";
static void (*before_exit)(void); /* util_before_fatal */

void util_before_fatal(void (*fn)(void)) { before_exit = fn; }

void util_set_progname(const char *name) { progname = name; }
const char *util_progname(void) { return progname; }

static int mpi_live(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int util_world_rank(void)
{
    int rank = 0;
    if (mpi_live())
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

static int world_size(void)
{
    int size = 1;
    if (mpi_live())
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

static void vmessage(const char *kind, const char *fmt, va_list ap)
{
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (world_size() > 1)
        fprintf(stderr, "%s: %s (rank %d): %s\n", progname, kind, util_world_rank(), buf);
    else
        fprintf(stderr, "%s: %s: %s\n", progname, kind, buf);
    fflush(stderr);
}

static noreturn void take_down(int code)
{
    if (before_exit)
        before_exit();
    fflush(stdout);
    if (world_size() > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void fail_input(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("error", fmt, ap);
    va_end(ap);
    take_down(UTIL_EXIT_INPUT);
}

void fail_input_all(const char *fmt, ...)
{
    if (util_world_rank() == 0) {
        va_list ap;
        va_start(ap, fmt);
        char buf[4096];
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: error: %s\n", progname, buf);
        fflush(stderr);
    }
    if (before_exit)
        before_exit();
    fflush(stdout);
    if (mpi_live())
        MPI_Finalize();
    exit(UTIL_EXIT_INPUT);
}

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("fatal", fmt, ap);
    va_end(ap);
    take_down(UTIL_EXIT_FAIL);
}

void log_info(const char *fmt, ...)
{
    if (util_world_rank() != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void vmessage_rank0(const char *kind, const char *fmt, va_list ap)
{
    if (util_world_rank() == 0)
        vmessage(kind, fmt, ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage_rank0("warning", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage_rank0("error", fmt, ap);
    va_end(ap);
}

void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fail("out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        fail("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

void *xgrow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    *cap = need > 2 * *cap ? need : 2 * *cap;
    p = realloc(p, *cap * size);
    if (!p)
        fail("out of memory for %zu x %zu bytes", *cap, size);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *util_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_input("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *s = xmalloc(cap);
    while ((got = fread(s + n, 1, cap - 1 - n, f)) > 0) {
        n += got;
        if (n == cap - 1) {
            cap *= 2;
            s = realloc(s, cap);
            if (!s)
                fail("%s: out of memory reading %zu bytes", path, n);
        }
    }
    if (ferror(f))
        fail_input("%s: read error: %s", path, strerror(errno));
    fclose(f);
    s[n] = '\0';
    *len = n;
    return s;
}

/* splitmix64's finaliser: a bijective mix with good avalanche */
uint64_t rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t util_fnv1a(const void *data, size_t bytes, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

void util_f32_to_bf16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, in + i, sizeof u);
        out[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40)
                                                 : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    }
}

void util_bf16_to_f32(float *out, const uint16_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[i] << 16;
        memcpy(out + i, &u, sizeof u);
    }
}

uint64_t rng_key(uint64_t seed, const char *name)
{
    return rng_mix(rng_mix(seed) ^ util_fnv1a(name, strlen(name), UTIL_FNV_INIT));
}

uint64_t rng_u64(uint64_t key, uint64_t index) { return rng_mix(key ^ rng_mix(index)); }

double rng_uniform(uint64_t key, uint64_t index)
{
    return ((double)(rng_u64(key, index) >> 11) + 0.5) * 0x1.0p-53;
}

/* Box-Muller on two uniforms drawn at (2i, 2i+1) of a derived key */
double rng_normal(uint64_t key, uint64_t index)
{
    uint64_t k = rng_mix(key ^ 0x6e6f726d616cULL);
    double u1 = rng_uniform(k, 2 * index), u2 = rng_uniform(k, 2 * index + 1);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void util_write_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}
