/* pretok.c: GPT-2's and LLaMA-3's pre-tokenizer expressions, matched by hand (see pretok.h). */
#include "data/pretok.h"

#include "data/unicode_classes.h"

#include <string.h>

static const char *const pretok_patterns[PRETOK_COUNT] = {
    [PRETOK_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    [PRETOK_CL100K] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

const char *pretok_pattern(PretokKind kind) { return pretok_patterns[kind]; }

static unsigned pretok_lookup(uint32_t cp)
{
    unsigned cls = cp == '\r' || cp == '\n' ? PRETOK_NL : 0;
    for (int t = 0; t < uclass_ntables; t++) {
        const UclassRanges *u = &uclass_table[t];
        size_t lo = 0, hi = u->n; /* the first range whose last >= cp */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (u->ranges[mid][1] < cp)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < u->n && u->ranges[lo][0] <= cp)
            cls |= u->flag;
    }
    return cls;
}

void pretok_classes_init(PretokClasses *pc)
{
    for (uint32_t cp = 0; cp < 0x10000; cp++)
        pc->bmp[cp] = (uint8_t)pretok_lookup(cp);
}

unsigned pretok_class(const PretokClasses *pc, uint32_t cp) { return cp < 0x10000 ? pc->bmp[cp] : pretok_lookup(cp); }

/* The first index from j on whose character lacks every class of want (want 0: any class will
   do) or has one of avoid. */
static size_t pretok_run(const uint8_t *cls, size_t n, size_t j, unsigned want, unsigned avoid)
{
    while (j < n && (!want || (cls[j] & want)) && !(cls[j] & avoid))
        j++;
    return j;
}

/* A lowercase letter as (?i) compares it: ASCII, and U+017F LONG S, whose case folding is s. */
static uint32_t pretok_fold(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c == 0x17f ? 's' : c; }

/* 's|'t|'re|'ve|'m|'ll|'d at i: the length matched, or 0. */
static size_t pretok_contraction(const uint32_t *cp, size_t n, size_t i, int fold)
{
    if (cp[i] != '\'' || i + 1 >= n)
        return 0;
    uint32_t a = fold ? pretok_fold(cp[i + 1]) : cp[i + 1], b = 0;
    if (i + 2 < n)
        b = fold ? pretok_fold(cp[i + 2]) : cp[i + 2];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
}

/* \s+(?!\S) | \s+ at i: the white-space run, less its last character when another follows. */
static size_t pretok_spaces(const uint8_t *cls, size_t n, size_t i)
{
    size_t e = pretok_run(cls, n, i, UCLASS_S, 0);
    return e == n || e - i <= 1 ? e : e - 1;
}

static size_t pretok_gpt2(const uint32_t *cp, const uint8_t *cls, size_t n, size_t i)
{
    size_t m = pretok_contraction(cp, n, i, 0);
    if (m)
        return i + m;
    /* ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': a space never belongs to these classes */
    size_t j = i + (cp[i] == ' ' && i + 1 < n), e;
    if ((e = pretok_run(cls, n, j, UCLASS_L, 0)) > j || (e = pretok_run(cls, n, j, UCLASS_N, 0)) > j ||
        (e = pretok_run(cls, n, j, 0, UCLASS_L | UCLASS_N | UCLASS_S)) > j)
        return e;
    return pretok_spaces(cls, n, i);
}

static size_t pretok_cl100k(const uint32_t *cp, const uint8_t *cls, size_t n, size_t i)
{
    size_t m = pretok_contraction(cp, n, i, 1), e;
    if (m)
        return i + m;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!(cls[i] & (UCLASS_L | UCLASS_N | PRETOK_NL)) && i + 1 < n && (cls[i + 1] & UCLASS_L))
        return pretok_run(cls, n, i + 1, UCLASS_L, 0);
    if (cls[i] & UCLASS_L)
        return pretok_run(cls, n, i, UCLASS_L, 0);
    /* \p{N}{1,3} */
    if (cls[i] & UCLASS_N)
        return pretok_run(cls, i + 3 < n ? i + 3 : n, i, UCLASS_N, 0);
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t j = i + (cp[i] == ' ' && i + 1 < n);
    if ((e = pretok_run(cls, n, j, 0, UCLASS_L | UCLASS_N | UCLASS_S)) > j)
        return pretok_run(cls, n, e, PRETOK_NL, 0);
    /* \s*[\r\n]+: up to the last \r or \n of the white-space run */
    e = pretok_run(cls, n, i, UCLASS_S, 0);
    for (size_t k = e; k > i; k--)
        if (cls[k - 1] & PRETOK_NL)
            return k;
    return pretok_spaces(cls, n, i);
}

size_t pretok_match(PretokKind kind, const uint32_t *cp, const uint8_t *cls, size_t n, size_t i)
{
    size_t e = kind == PRETOK_GPT2 ? pretok_gpt2(cp, cls, n, i) : pretok_cl100k(cp, cls, n, i);
    return e > i ? e : i + 1; /* every character matches some alternative: this guards the loop only */
}
