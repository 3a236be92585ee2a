/* hf_tokenizer.c: a byte-level BPE (GPT-2, LLaMA-3 style) from a Hugging Face tokenizer.json
   (hf_json.c reads it), encoding as the Hugging Face tokenizers library does (doc/data.md gives the rules and what is
   refused): the text is made well-formed UTF-8, cut into pieces by the pre-tokenizer's expressions,
   each piece's bytes become the byte-level alphabet's tokens, and merges apply lowest rank first
   (leftmost among equals). A cache remembers short pieces. */
#include "data/hf_json.h"
#include "data/idcache.h"
#include "data/pairheap.h"
#include "data/tokenizer_impl.h"
#include "data/utf8.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t id;
    int len; /* bytes of the piece it covers */
    int prev, next;
} HfSym;

typedef struct {
    Tokenizer base;
    HfModel m;
    PretokClasses *classes;
    IdCache cache; /* piece -> ids */
    char *text;    /* scratch: the document, well-formed */
    size_t text_cap;
    uint32_t *cp; /* its characters, their classes and byte offsets (ncp + 1 of these) */
    uint8_t *cls;
    size_t *off, ncp, cp_cap, cls_cap, off_cap;
    HfSym *syms;
    size_t syms_cap;
    PairHeap heap; /* candidate merges: key (rank, left), a = the merged id */
    int32_t *ids;  /* a piece's ids */
    size_t ids_cap;
    char *mapped; /* a piece in byte-level characters */
    size_t mapped_cap;
} Hf;

/* The document made well-formed (each ill-formed sequence's maximal subpart becomes U+FFFD, as
   Python's decode(errors="replace") does), with a space before it when add_prefix_space asks. */
static size_t hf_wellformed(Hf *h, const char *text, size_t len)
{
    h->text = xgrow(h->text, &h->text_cap, 3 * len + 2, 1);
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    char *o = h->text;
    if (h->m.add_prefix_space && text[0] != ' ')
        *o++ = ' ';
    while (p < end) {
        int k = *p < 0x80 ? 1 : utf8_char_len(p, (size_t)(end - p));
        if (k) {
            memcpy(o, p, (size_t)k);
            o += k;
            p += k;
        } else {
            memcpy(o, UTF8_REPLACEMENT, 3);
            o += 3;
            p += utf8_bad_len(p, (size_t)(end - p));
        }
    }
    return (size_t)(o - h->text);
}

/* h->text[0, n) into characters, their classes and offsets. */
static void hf_decode(Hf *h, size_t n)
{
    h->cp = xgrow(h->cp, &h->cp_cap, n, sizeof *h->cp);
    h->cls = xgrow(h->cls, &h->cls_cap, n, sizeof *h->cls);
    h->off = xgrow(h->off, &h->off_cap, n + 1, sizeof *h->off);
    const unsigned char *t = (const unsigned char *)h->text;
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        int len = "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[t[i] >> 4]; /* the text is well-formed */
        h->cp[k] = len == 1 ? t[i] : utf8_decode(t + i, len);
        h->cls[k] = (uint8_t)pretok_class(h->classes, h->cp[k]);
        h->off[k] = i;
        i += (size_t)len;
    }
    h->off[k] = n;
    h->ncp = k;
}

static int hf_rank(const Hf *h, int32_t left, int32_t right)
{
    int32_t pair[2] = {left, right};
    return strmap_get(&h->m.merges, pair, sizeof pair);
}

static void hf_try_pair(Hf *h, int left, int right)
{
    int rank = hf_rank(h, h->syms[left].id, h->syms[right].id);
    if (rank >= 0)
        pairheap_push(&h->heap, (PairItem){(uint64_t)rank << 32 | (uint32_t)left, h->m.merge_new[rank], 0});
}

static void hf_add_sym(Hf *h, int *n, int32_t id)
{
    h->syms = xgrow(h->syms, &h->syms_cap, (size_t)*n + 1, sizeof *h->syms);
    h->syms[*n] = (HfSym){id, 1, *n - 1, -1};
    if (*n)
        h->syms[*n - 1].next = *n;
    (*n)++;
}

/* The symbols piece p[0, len) starts from, returning how many (BPE::merge_word): each byte's
   token; for a byte the vocabulary lacks, its <0xXX> tokens with byte_fallback, else unk_token
   (a run of them one, with fuse_unk), else nothing. */
static int hf_symbols(Hf *h, const unsigned char *p, int len)
{
    int n = 0;
    int32_t unk = -1; /* an unknown symbol not yet added */
    for (int i = 0; i < len; i++) {
        int32_t id = h->m.byte_tok[p[i]];
        if (id >= 0) {
            if (unk >= 0)
                hf_add_sym(h, &n, unk);
            unk = -1;
            hf_add_sym(h, &n, id);
        } else if (h->m.byte_fallback && h->m.fallback[p[i]][0] >= 0) {
            for (int k = 0; k < h->m.byte_chr_len[p[i]]; k++)
                hf_add_sym(h, &n, h->m.fallback[p[i]][k]);
        } else if (h->m.unk >= 0) {
            if (unk >= 0 && !h->m.fuse_unk)
                hf_add_sym(h, &n, unk);
            unk = h->m.unk;
        }
    }
    if (unk >= 0)
        hf_add_sym(h, &n, unk);
    return n;
}

/* The ids of piece p[0, len) into h->ids; returns how many (Word::merge_all's order and checks). */
static int hf_bpe(Hf *h, const unsigned char *p, int len)
{
    h->ids = xgrow(h->ids, &h->ids_cap, 2 * (size_t)len, sizeof *h->ids);
    if (h->m.ignore_merges) { /* a piece that is a token is that token */
        h->mapped = xgrow(h->mapped, &h->mapped_cap, 2 * (size_t)len, 1);
        size_t m = 0;
        for (int i = 0; i < len; i++) {
            memcpy(h->mapped + m, h->m.byte_chr[p[i]], (size_t)h->m.byte_chr_len[p[i]]);
            m += (size_t)h->m.byte_chr_len[p[i]];
        }
        int id = strmap_get(&h->m.vocab, h->mapped, m);
        if (id >= 0) {
            h->ids[0] = id;
            return 1;
        }
    }
    int n = hf_symbols(h, p, len);
    if (!n)
        return 0;
    h->heap.n = 0;
    for (int i = 1; i < n; i++)
        hf_try_pair(h, i - 1, i);
    while (h->heap.n) {
        PairItem top = pairheap_pop(&h->heap);
        int pos = (int)(uint32_t)top.key;
        HfSym *l = &h->syms[pos];
        if (!l->len || l->next < 0)
            continue;
        HfSym *r = &h->syms[l->next];
        int rank = hf_rank(h, l->id, r->id);
        if (rank < 0 || h->m.merge_new[rank] != top.a)
            continue; /* no longer this pair */
        l->id = top.a;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0)
            h->syms[l->next].prev = pos;
        if (l->prev >= 0)
            hf_try_pair(h, l->prev, pos);
        if (l->next >= 0)
            hf_try_pair(h, pos, l->next);
    }
    n = 0;
    for (int i = 0; i >= 0; i = h->syms[i].next)
        h->ids[n++] = h->syms[i].id;
    return n;
}

static void hf_piece(Hf *h, const char *p, size_t len, TokenBuf *out)
{
    int n;
    const int32_t *ids = idcache_get(&h->cache, p, len, &n);
    if (!ids) {
        if (len > INT32_MAX)
            fail_input("a piece of %zu bytes is too long for the BPE encoder", len);
        n = hf_bpe(h, (const unsigned char *)p, (int)len);
        ids = h->ids;
        idcache_put(&h->cache, p, len, ids, n);
    }
    for (int i = 0; i < n; i++)
        token_buf_push(out, (uint32_t)ids[i]);
}

/* Characters [a, b) cut by the pre-tokenizer stages from stage on; each final piece encoded. */
static void hf_split(Hf *h, int stage, size_t a, size_t b, TokenBuf *out)
{
    if (stage == h->m.nstages || stage == HF_MAX_STAGES) {
        hf_piece(h, h->text + h->off[a], h->off[b] - h->off[a], out);
        return;
    }
    for (size_t i = a, e; i < b; i = e) {
        e = pretok_match(h->m.stage[stage], h->cp, h->cls, b, i);
        hf_split(h, stage + 1, i, e, out);
    }
}

static void hf_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out)
{
    Hf *h = (Hf *)t;
    if (!len)
        return;
    hf_decode(h, hf_wellformed(h, text, len));
    hf_split(h, 0, 0, h->ncp, out);
}

static void hf_free(Tokenizer *t)
{
    Hf *h = (Hf *)t;
    hf_model_free(&h->m);
    idcache_free(&h->cache);
    pairheap_free(&h->heap);
    free(h->classes);
    free(h->text);
    free(h->cp);
    free(h->cls);
    free(h->off);
    free(h->syms);
    free(h->ids);
    free(h->mapped);
    free(h);
}

enum { HF_ALPHABET_END = 0x144 }; /* the byte-level characters are below U+0144 */

/* The bytes of token s[0, n) into out (n bytes at most); returns their number: each character's
   byte (byte[c]: the byte character c stands for, or -1), or s as it is when a character is none
   of the alphabet's (as the ByteLevel decoder does). */
static size_t hf_token_bytes(const int16_t *byte, const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        const unsigned char *p = (const unsigned char *)s + i;
        int len = utf8_char_len(p, n - i);
        uint32_t c = len ? utf8_decode(p, len) : HF_ALPHABET_END;
        if (c >= HF_ALPHABET_END || byte[c] < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[k] = (char)byte[c];
        i += (size_t)len;
    }
    return k;
}

/* Each token's text: the vocabulary's through the byte-level alphabet; added tokens none (as
   Hugging Face's decode with skip_special_tokens). */
static void hf_set_pieces(Hf *h)
{
    int16_t byte[HF_ALPHABET_END];
    memset(byte, 0xff, sizeof byte);
    for (int b = 0; b < 256; b++)
        byte[utf8_decode((const unsigned char *)h->m.byte_chr[b], h->m.byte_chr_len[b])] = (int16_t)b;
    char *text = NULL;
    size_t cap = 0;
    const StrMap *v = &h->m.vocab;
    for (size_t i = 0; i < v->nslots; i++) {
        const StrMapSlot *e = &v->slots[i];
        if (e->value < 0)
            continue;
        text = xgrow(text, &cap, e->len + 1, 1);
        tokenizer_set_piece(&h->base, e->value, text, hf_token_bytes(byte, v->keys + e->off, e->len, text));
    }
    for (int i = 0; i < h->m.nadded; i++)
        tokenizer_set_piece(&h->base, h->m.added[i], "", 0);
    free(text);
}

Tokenizer *hf_open(const char *path, char *file, size_t size)
{
    Hf *h = xcalloc(1, sizeof *h);
    hf_model_read(path, file, &h->m);
    h->classes = xmalloc(sizeof *h->classes);
    pretok_classes_init(h->classes);
    h->base = (Tokenizer){.name = "hf-bpe",
                          .vocab = h->m.vocab_size,
                          .bos = h->m.bos,
                          .eos = h->m.eos,
                          .checksum = util_fnv1a(file, size, UTIL_FNV_INIT),
                          .encode = hf_encode,
                          .free = hf_free};
    hf_set_pieces(h);
    free(file);
    return &h->base;
}
