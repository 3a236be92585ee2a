/* scratch.c: the sizes of the CUDA backend's scratch (see scratch.h). */
#include "kernels/scratch.h"

#include <stdint.h>

typedef struct {
    float x, y;
} Pair; /* a float2 */

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

size_t scratch_round(size_t bytes) { return (bytes + 4095) & ~(size_t)4095; }

int scratch_attn_maxb(int c)
{
    size_t m = SCRATCH_ATTN / ((size_t)c * c * (sizeof(float) + sizeof(uint16_t)));
    return m < 1 ? 1 : m > 65535 ? 65535 : (int)m;
}

/* chunks in one batch: what fits, at most all B x (chunks per sequence) */
static size_t attn_batch(int B, int L, int C, int *c)
{
    *c = L < C ? L : C;
    size_t nb = (size_t)scratch_attn_maxb(*c), total = (size_t)B * ((L + *c - 1) / *c);
    return nb < total ? nb : total;
}

size_t scratch_attn_s(int B, int L, int C)
{
    int c;
    return attn_batch(B, L, C, &c) * (size_t)c * c * sizeof(float);
}

size_t scratch_attn_p(int B, int L, int C)
{
    int c;
    return attn_batch(B, L, C, &c) * (size_t)c * c * sizeof(uint16_t);
}

size_t scratch_attn_saved(int B, int L, int H, int C)
{
    const size_t c = L < C ? L : C;
    return (size_t)H * B * ((L + c - 1) / c) * c * c * sizeof(uint16_t);
}

int scratch_cema_part_len(int B, int L, int D)
{
    const long segs = (L + CEMA_SEG - 1) / CEMA_SEG, warps = (long)B * D;
    long parts = (CEMA_WANT_WARPS + warps - 1) / warps;
    parts = parts < 1 ? 1 : parts > segs ? segs : parts;
    return (int)((segs + parts - 1) / parts) * CEMA_SEG;
}

/* parts of the sequence, and (B, parts, D, CEMA_NK) states */
static size_t cema_parts(int B, int L, int D, int *part_len)
{
    *part_len = scratch_cema_part_len(B, L, D);
    return (size_t)B * ((L + *part_len - 1) / *part_len) * D;
}

size_t scratch_cema_starts(int B, int L, int D)
{
    int len;
    return cema_parts(B, L, D, &len) * CEMA_NK * sizeof(Pair);
}

size_t scratch_cema_segs(int B, int L, int D)
{
    int len;
    return cema_parts(B, L, D, &len) * CEMA_NK * (size_t)(len / CEMA_SEG) * sizeof(Pair);
}

size_t scratch_cema_saved(int B, int L, int D) { return scratch_cema_starts(B, L, D) + scratch_cema_segs(B, L, D); }

size_t scratch_cema_back(int B, int L, int D)
{
    int len;
    const size_t cells = cema_parts(B, L, D, &len);
    return cells * CEMA_NK * (2 * sizeof(Pair) + CEMA_NSUM * sizeof(float)) + cells * sizeof(float);
}

int scratch_tsn_nseg(int L) { return (L + TSN_SEG - 1) / TSN_SEG; }

/* per-cell statistics and per-segment summaries of `each` bytes */
static size_t tsn_cells(int B, int L, int G, size_t each)
{
    return ((size_t)B * L * G + (size_t)B * scratch_tsn_nseg(L) * G) * each;
}

size_t scratch_tsn_forward(int B, int L, int G) { return tsn_cells(B, L, G, 2 * sizeof(float)); }
size_t scratch_tsn_backward(int B, int L, int G) { return tsn_cells(B, L, G, 4 * sizeof(float)); }

size_t scratch_embedding(int T) { return ((4 * (size_t)T * sizeof(int) + 255) & ~(size_t)255) + EMB_SORT_TEMP; }

size_t scratch_plan(int B, int L, int C, int D, int G)
{
    const size_t state_a = max2(max2(scratch_cema_segs(B, L, D), scratch_embedding(B * L)),
                                max2(scratch_tsn_forward(B, L, G), scratch_tsn_backward(B, L, G)));
    const size_t state_b = max2(scratch_cema_starts(B, L, D), scratch_cema_back(B, L, D));
    return scratch_round(scratch_attn_s(B, L, C)) + scratch_round(scratch_attn_p(B, L, C)) + scratch_round(state_a) +
           scratch_round(state_b) + scratch_round(SCRATCH_LT);
}
