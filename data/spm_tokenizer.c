/* spm_tokenizer.c: a SentencePiece BPE model's encoder, giving the ids SentencePiece's own encoder
   gives (its normalizer with the model's flags, its BPE merge order, byte fallback; the rules are
   in doc/data.md). The text is normalized, cut into segments that merge independently where the
   vocabulary allows it, and each segment is merged once: a cache remembers short ones. */
#include "data/idcache.h"
#include "data/pairheap.h"
#include "data/spm_model.h"
#include "data/strmap.h"
#include "data/tokenizer_impl.h"
#include "data/utf8.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, which stands for a space when escape_whitespaces is on */

typedef struct {
    int start, len; /* the symbol is text[start, start + len) */
    int prev, next; /* neighbours, -1 at the ends */
    int freeze;     /* a user-defined piece: never merged */
} SpmSym;

typedef struct {
    Tokenizer base;
    char *file; /* the model file's bytes, which m's strings point into */
    SpmModel m;
    StrMap pieces;   /* normal and user-defined pieces (merges may form them) -> id */
    StrMap reserved; /* control, unknown and byte pieces, looked up first -> id */
    int unk;
    uint32_t byte_id[256];
    int *user, nuser;  /* user-defined pieces' ids */
    const char *space; /* what a space becomes: SPM_SPACE or " " */
    int space_len;
    int segmented; /* segments merge independently: no piece has the space after another character */
    IdCache cache; /* segment -> (id, bytes) per symbol */
    char *norm;    /* scratch: the normalized text */
    size_t norm_cap;
    SpmSym *syms;
    size_t syms_cap;
    PairHeap heap; /* candidate merges: (left, right) and the merged size */
    int32_t *seg;  /* a segment's symbols as (id, bytes) */
    size_t seg_n, seg_cap;
} Spm;

/* ---- normalization (Normalizer::Normalize with no character map) */

/* The longest user-defined piece at p[0, n), or 0. */
static int spm_user_match(const Spm *s, const char *p, size_t n)
{
    int best = 0;
    for (int i = 0; i < s->nuser; i++) {
        const SpmPiece *u = &s->m.pieces[s->user[i]];
        if ((int)u->len > best && u->len <= n && memcmp(u->s, p, u->len) == 0)
            best = (int)u->len;
    }
    return best;
}

/* The unit at p that normalizes alone: a user-defined piece, a well-formed character, or one byte
   of an ill-formed sequence, which becomes U+FFFD. *used gets the bytes it takes, *n the length of
   what it becomes, returned. */
static const char *spm_norm_unit(const Spm *s, const unsigned char *p, size_t left, size_t *used, size_t *n)
{
    int len = s->nuser ? spm_user_match(s, (const char *)p, left) : 0;
    if (!len)
        len = utf8_char_len(p, left);
    if (!len) {
        *used = 1;
        *n = 3;
        return UTF8_REPLACEMENT;
    }
    *used = *n = (size_t)len;
    return (const char *)p;
}

static int spm_ends_with_space(const Spm *s, const char *o)
{
    return o - s->norm >= s->space_len && memcmp(o - s->space_len, s->space, s->space_len) == 0;
}

/* text[0, len) normalized into s->norm; returns its length. */
static size_t spm_normalize(Spm *s, const char *text, size_t len)
{
    const SpmModel *m = &s->m;
    s->norm = xgrow(s->norm, &s->norm_cap, 3 * len + 4, 1);
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    char *o = s->norm;
    size_t used, n;
    const char *unit;
    while (m->remove_extra_ws && p < end && (unit = spm_norm_unit(s, p, end - p, &used, &n)) && n == 1 && *unit == ' ')
        p += used; /* leading spaces */
    if (p == end)
        return 0;
    if (!m->ws_suffix && m->add_dummy_prefix) {
        memcpy(o, s->space, s->space_len);
        o += s->space_len;
    }
    int prev_space = m->remove_extra_ws;
    while (p < end) {
        unit = spm_norm_unit(s, p, end - p, &used, &n);
        if (prev_space)
            for (; n && *unit == ' '; unit++, n--) /* a run of spaces keeps its first */
                ;
        for (size_t i = 0; i < n; i++) {
            if (unit[i] == ' ' && m->escape_ws) {
                memcpy(o, SPM_SPACE, 3);
                o += 3;
            } else {
                *o++ = unit[i];
            }
        }
        if (n)
            prev_space = unit[n - 1] == ' ';
        if (!m->remove_extra_ws)
            prev_space = 0;
        p += used;
    }
    while (m->remove_extra_ws && spm_ends_with_space(s, o)) /* trailing spaces */
        o -= s->space_len;
    if (m->ws_suffix && m->add_dummy_prefix) {
        memcpy(o, s->space, s->space_len);
        o += s->space_len;
    }
    return (size_t)(o - s->norm);
}

/* ---- BPE (bpe_model.cc's Encode): the best pair merges first: highest score, then leftmost */

/* The heap key of a pair: higher scores first (float order, -0 equal to 0), then smaller left. */
static uint64_t spm_pair_key(float score, int left)
{
    uint32_t u;
    score = score == 0 ? 0 : score;
    memcpy(&u, &score, sizeof u);
    u = u & 0x80000000u ? ~u : u | 0x80000000u; /* increasing with the float */
    return (uint64_t)~u << 32 | (uint32_t)left;
}

/* Symbols left and right, neighbours, become a candidate when their concatenation is a piece. */
static void spm_try_pair(Spm *s, const char *t, int left, int right)
{
    if (left < 0 || right < 0 || s->syms[left].freeze || s->syms[right].freeze)
        return;
    int size = s->syms[left].len + s->syms[right].len;
    int id = strmap_get(&s->pieces, t + s->syms[left].start, (size_t)size);
    if (id >= 0)
        pairheap_push(&s->heap, (PairItem){spm_pair_key(s->m.pieces[id].score, left), right, size});
}

/* ModelInterface::PieceToId: reserved pieces first, then the others, else unknown. */
static int spm_piece_id(const Spm *s, const char *p, size_t n)
{
    int id = strmap_get(&s->reserved, p, n);
    if (id < 0)
        id = strmap_get(&s->pieces, p, n);
    return id < 0 ? s->unk : id;
}

/* Merges t[a, b), a < b, and sets s->seg to its symbols. */
static void spm_bpe(Spm *s, const char *t, int a, int b)
{
    int n = 0;
    for (int i = a; i < b; n++) {
        int len = s->nuser ? spm_user_match(s, t + i, (size_t)(b - i)) : 0, freeze = len > 0;
        if (!len) /* the text is well-formed: a character's length is its lead byte's */
            len = "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[(unsigned char)t[i] >> 4];
        if (len > b - i)
            len = b - i;
        s->syms = xgrow(s->syms, &s->syms_cap, (size_t)n + 1, sizeof *s->syms);
        s->syms[n] = (SpmSym){i, len, n - 1, i + len < b ? n + 1 : -1, freeze};
        i += len;
    }
    s->heap.n = 0;
    for (int i = 1; i < n; i++)
        spm_try_pair(s, t, i - 1, i);
    while (s->heap.n) {
        PairItem top = pairheap_pop(&s->heap);
        int left = (int)(uint32_t)top.key;
        SpmSym *l = &s->syms[left], *r = &s->syms[top.a];
        if (!l->len || !r->len || l->len + r->len != top.b)
            continue; /* one of them merged since */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0)
            s->syms[r->next].prev = left;
        r->len = 0;
        spm_try_pair(s, t, l->prev, left);
        spm_try_pair(s, t, left, l->next);
    }
    s->seg_n = 0;
    for (int i = 0; i >= 0; i = s->syms[i].next) {
        s->seg = xgrow(s->seg, &s->seg_cap, s->seg_n + 2, sizeof *s->seg);
        s->seg[s->seg_n++] = spm_piece_id(s, t + s->syms[i].start, (size_t)s->syms[i].len);
        s->seg[s->seg_n++] = s->syms[i].len;
    }
}

/* The ids of n symbols (id, bytes) covering t: an unknown piece becomes its bytes' ids with byte
   fallback, else a run of unknown pieces one unknown id (as SentencePiece's encoder does). */
static void spm_emit(const Spm *s, const char *t, const int32_t *sym, size_t n, int *prev_unk, TokenBuf *out)
{
    for (size_t k = 0; k < n; k++, sym += 2) {
        int id = sym[0], is_unk = id == s->unk;
        if (is_unk && s->m.byte_fallback)
            for (int i = 0; i < sym[1]; i++)
                token_buf_push(out, s->byte_id[(unsigned char)t[i]]);
        else if (!(is_unk && *prev_unk))
            token_buf_push(out, (uint32_t)id);
        *prev_unk = is_unk;
        t += sym[1];
    }
}

/* Where the segment starting at a ends: before the next space that follows another character. */
static size_t spm_segment_end(const Spm *s, const char *t, size_t a, size_t n)
{
    const char *sp = s->space;
    size_t k = (size_t)s->space_len;
    for (size_t i = a + 1; i + k <= n; i++)
        if (t[i] == sp[0] && memcmp(t + i, sp, k) == 0 && !(i >= k && memcmp(t + i - k, sp, k) == 0))
            return i;
    return n;
}

/* Segment t[a, b): from the cache, or merged (and cached). */
static void spm_segment(Spm *s, const char *t, size_t a, size_t b, int *prev_unk, TokenBuf *out)
{
    int n;
    const int32_t *sym = idcache_get(&s->cache, t + a, b - a, &n);
    if (sym) {
        spm_emit(s, t + a, sym, (size_t)n / 2, prev_unk, out);
        return;
    }
    spm_bpe(s, t, (int)a, (int)b);
    spm_emit(s, t + a, s->seg, s->seg_n / 2, prev_unk, out);
    idcache_put(&s->cache, t + a, b - a, s->seg, (int)s->seg_n);
}

static void spm_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out)
{
    Spm *s = (Spm *)t;
    size_t n = spm_normalize(s, text, len);
    if (n > INT32_MAX / 2)
        fail_input("a document of %zu bytes is too long for the SentencePiece encoder", len);
    int prev_unk = 0;
    if (n && !s->segmented) {
        spm_bpe(s, s->norm, 0, (int)n);
        spm_emit(s, s->norm, s->seg, s->seg_n / 2, &prev_unk, out);
    }
    for (size_t a = 0; s->segmented && a < n;) {
        size_t b = spm_segment_end(s, s->norm, a, n);
        spm_segment(s, s->norm, a, b, &prev_unk, out);
        a = b;
    }
}

static void spm_free(Tokenizer *t)
{
    Spm *s = (Spm *)t;
    strmap_free(&s->pieces);
    strmap_free(&s->reserved);
    idcache_free(&s->cache);
    spm_model_free(&s->m);
    free(s->user);
    free(s->norm);
    free(s->syms);
    pairheap_free(&s->heap);
    free(s->seg);
    free(s->file);
    free(s);
}

/* ---- loading: the checks ModelInterface makes, and what this encoder does not implement */

/* The id of a control piece named name, or -1 (SentencePieceProcessor::bos_id and eos_id). */
static int spm_control_id(const Spm *s, const SpmString *name)
{
    int id = strmap_get(&s->reserved, name->s, name->len);
    return id >= 0 && s->m.pieces[id].type == SPM_CONTROL ? id : -1;
}

/* Whether every piece has the space only in a leading run, so that no merge crosses a point where
   a space follows another character. */
static int spm_can_segment(const Spm *s)
{
    if (s->nuser)
        return 0;
    for (int i = 0; i < s->m.npieces; i++) {
        const SpmPiece *p = &s->m.pieces[i];
        if (p->type != SPM_NORMAL)
            continue;
        uint32_t k = 0;
        while (k + s->space_len <= p->len && memcmp(p->s + k, s->space, s->space_len) == 0)
            k += s->space_len;
        if (memmem(p->s + k, p->len - k, s->space, s->space_len))
            return 0;
    }
    return 1;
}

/* An uppercase hexadecimal digit's value, or -1 (byte pieces are <0x00>..<0xFF>). */
static int spm_hex(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

static void spm_index_piece(Spm *s, const char *path, int id, int *nbytes)
{
    const SpmPiece *p = &s->m.pieces[id];
    if (p->len == 0)
        fail_input("%s: piece %d is empty", path, id);
    if (p->type == 0)
        fail_input("%s: piece %d ('%.*s') has an unknown type", path, id, (int)p->len, p->s);
    if (p->type == SPM_UNUSED)
        fail_input("%s: piece %d ('%.*s') is of type UNUSED, which megadata does not encode", path, id, (int)p->len,
                   p->s);
    int normal = p->type == SPM_NORMAL || p->type == SPM_USER_DEFINED;
    if (strmap_put(normal ? &s->pieces : &s->reserved, p->s, p->len, id) >= 0)
        fail_input("%s: piece %d ('%.*s') is defined twice", path, id, (int)p->len, p->s);
    if (p->type == SPM_USER_DEFINED) {
        s->user = realloc(s->user, (size_t)(s->nuser + 1) * sizeof *s->user);
        if (!s->user)
            fail("out of memory");
        s->user[s->nuser++] = id;
    }
    if (p->type == SPM_UNKNOWN) {
        if (s->unk >= 0)
            fail_input("%s: pieces %d and %d are both the unknown piece", path, s->unk, id);
        s->unk = id;
    }
    if (p->type == SPM_BYTE) {
        int hi = p->len == 6 ? spm_hex(p->s[3]) : -1, lo = p->len == 6 ? spm_hex(p->s[4]) : -1;
        if (!s->m.byte_fallback)
            fail_input("%s: byte piece %d ('%.*s') in a model without byte_fallback", path, id, (int)p->len, p->s);
        if (hi < 0 || lo < 0 || memcmp(p->s, "<0x", 3) != 0 || p->s[5] != '>')
            fail_input("%s: byte piece %d is '%.*s', expected <0xXX>", path, id, (int)p->len, p->s);
        s->byte_id[hi * 16 + lo] = (uint32_t)id;
        (*nbytes)++;
    }
}

/* Each piece's text, as SentencePiece's decoder gives it: U+2581 as a space (escape_whitespaces), a
   byte piece its byte, the unknown piece the model's unk_surface (" \xe2\x81\x87 "), a control piece
   nothing. */
static void spm_set_pieces(Spm *s)
{
    char *text = NULL;
    size_t cap = 0;
    for (int id = 0; id < s->m.npieces; id++) {
        const SpmPiece *p = &s->m.pieces[id];
        size_t n = 0;
        text = xgrow(text, &cap, p->len + 1, 1);
        if (p->type == SPM_BYTE) {
            text[n++] = (char)(spm_hex(p->s[3]) * 16 + spm_hex(p->s[4]));
        } else if (p->type == SPM_UNKNOWN) {
            text = xgrow(text, &cap, s->m.unk_surface.len, 1);
            memcpy(text, s->m.unk_surface.s, n = s->m.unk_surface.len);
        } else if (p->type != SPM_CONTROL) {
            for (uint32_t i = 0; i < p->len; i++) {
                int space = s->m.escape_ws && i + 3 <= p->len && memcmp(p->s + i, SPM_SPACE, 3) == 0;
                text[n++] = space ? ' ' : p->s[i];
                i += space ? 2 : 0;
            }
        }
        tokenizer_set_piece(&s->base, id, text, n);
    }
    free(text);
}

Tokenizer *spm_open(const char *path, char *file, size_t size)
{
    static const char *kinds[] = {"an unknown", "a unigram", "a BPE", "a word", "a character"};
    Spm *s = xcalloc(1, sizeof *s);
    s->file = file;
    s->unk = -1;
    spm_model_parse(path, (const unsigned char *)file, size, &s->m);
    SpmModel *m = &s->m;
    if (m->model_type != SPM_MODEL_BPE)
        fail_input("%s: is %s SentencePiece model; megadata encodes BPE models", path, kinds[m->model_type]);
    if (m->charsmap.len)
        fail_input("%s: its normalizer '%.*s' maps characters (a precompiled character map), which megadata does not; "
                   "train the model with --normalization_rule_name=identity",
                   path, (int)m->norm_name.len, m->norm_name.s);
    s->space = m->escape_ws ? SPM_SPACE : " ";
    s->space_len = m->escape_ws ? 3 : 1;
    int nbytes = 0;
    for (int id = 0; id < m->npieces; id++)
        spm_index_piece(s, path, id, &nbytes);
    if (s->unk < 0)
        fail_input("%s: no unknown piece", path);
    if (m->byte_fallback && nbytes != 256)
        fail_input("%s: byte_fallback needs the 256 byte pieces <0x00>..<0xFF>; it has %d", path, nbytes);
    s->segmented = spm_can_segment(s);
    s->base = (Tokenizer){.name = "sentencepiece",
                          .vocab = m->npieces,
                          .bos = spm_control_id(s, &m->bos_piece),
                          .eos = spm_control_id(s, &m->eos_piece),
                          .checksum = util_fnv1a(file, size, UTIL_FNV_INIT),
                          .encode = spm_encode,
                          .free = spm_free,
                          .dummy_prefix = m->add_dummy_prefix && !m->ws_suffix};
    spm_set_pieces(s);
    return &s->base;
}
