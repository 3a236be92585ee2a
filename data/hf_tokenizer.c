/* hf_tokenizer.c: a byte-level BPE (GPT-2, LLaMA-3 style) read from a Hugging Face tokenizer.json,
   encoding as the Hugging Face tokenizers library does (doc/data.md gives the rules and what is
   refused): the text is made well-formed UTF-8, cut into pieces by the pre-tokenizer's expressions,
   each piece's bytes become the byte-level alphabet's tokens, and merges apply lowest rank first
   (leftmost among equals). A cache remembers short pieces. */
#include "data/idcache.h"
#include "data/pairheap.h"
#include "data/pretok.h"
#include "data/strmap.h"
#include "data/tokenizer_impl.h"
#include "data/utf8.h"
#include "base/jsonl.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_MAX_STAGES 2 /* pre-tokenizer expressions applied one after the other */

typedef struct {
    int32_t id;
    int len; /* bytes of the piece it covers */
    int prev, next;
} HfSym;

typedef struct {
    Tokenizer base;
    StrMap vocab;       /* token, in byte-level characters -> id */
    StrMap merges;      /* (left id, right id) as 8 bytes -> rank */
    int32_t *merge_new; /* rank -> id of the merged token */
    char byte_chr[256][2]; /* the byte-level character of each byte, in UTF-8 (1 or 2 bytes) */
    int byte_chr_len[256];
    int32_t byte_tok[256];     /* its token, or -1 when the vocabulary lacks it: then */
    int32_t fallback[256][2];  /* with byte_fallback, the <0xXX> tokens of its UTF-8 bytes (-1: none) */
    int32_t unk;               /* else unk_token's id (-1: none, the byte is dropped) */
    int byte_fallback, fuse_unk;
    PretokKind stage[HF_MAX_STAGES];
    int nstages, add_prefix_space, ignore_merges;
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

/* ---- encoding */

/* The document made well-formed (each ill-formed sequence's maximal subpart becomes U+FFFD, as
   Python's decode(errors="replace") does), with a space before it when add_prefix_space asks. */
static size_t hf_wellformed(Hf *h, const char *text, size_t len)
{
    h->text = xgrow(h->text, &h->text_cap, 3 * len + 2, 1);
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    char *o = h->text;
    if (h->add_prefix_space && text[0] != ' ')
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
    return strmap_get(&h->merges, pair, sizeof pair);
}

static void hf_try_pair(Hf *h, int left, int right)
{
    int rank = hf_rank(h, h->syms[left].id, h->syms[right].id);
    if (rank >= 0)
        pairheap_push(&h->heap, (PairItem){(uint64_t)rank << 32 | (uint32_t)left, h->merge_new[rank], 0});
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
        int32_t id = h->byte_tok[p[i]];
        if (id >= 0) {
            if (unk >= 0)
                hf_add_sym(h, &n, unk);
            unk = -1;
            hf_add_sym(h, &n, id);
        } else if (h->byte_fallback && h->fallback[p[i]][0] >= 0) {
            for (int k = 0; k < h->byte_chr_len[p[i]]; k++)
                hf_add_sym(h, &n, h->fallback[p[i]][k]);
        } else if (h->unk >= 0) {
            if (unk >= 0 && !h->fuse_unk)
                hf_add_sym(h, &n, unk);
            unk = h->unk;
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
    if (h->ignore_merges) { /* a piece that is a token is that token */
        h->mapped = xgrow(h->mapped, &h->mapped_cap, 2 * (size_t)len, 1);
        size_t m = 0;
        for (int i = 0; i < len; i++) {
            memcpy(h->mapped + m, h->byte_chr[p[i]], (size_t)h->byte_chr_len[p[i]]);
            m += (size_t)h->byte_chr_len[p[i]];
        }
        int id = strmap_get(&h->vocab, h->mapped, m);
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
        if (rank < 0 || h->merge_new[rank] != top.a)
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
    if (stage == h->nstages || stage == HF_MAX_STAGES) {
        hf_piece(h, h->text + h->off[a], h->off[b] - h->off[a], out);
        return;
    }
    for (size_t i = a, e; i < b; i = e) {
        e = pretok_match(h->stage[stage], h->cp, h->cls, b, i);
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
    strmap_free(&h->vocab);
    strmap_free(&h->merges);
    idcache_free(&h->cache);
    pairheap_free(&h->heap);
    free(h->merge_new);
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

/* ---- loading */

typedef struct {
    const char *path;
    JsonRecord rec;
} HfFile;

/* The string at key; NULL when absent or null. Another kind of value is an error. */
static const char *hf_str(const HfFile *f, const char *key)
{
    const JsonField *v = jsonl_get(&f->rec, key);
    if (!v || v->kind == JSON_NULL)
        return NULL;
    if (v->kind != JSON_STRING)
        fail_input("%s: '%s' should be a string", f->path, key);
    return v->str;
}

static int hf_bool(const HfFile *f, const char *key, int absent)
{
    const JsonField *v = jsonl_get(&f->rec, key);
    if (!v)
        return absent;
    if (v->kind != JSON_BOOL)
        fail_input("%s: '%s' should be true or false", f->path, key);
    return v->num != 0;
}

/* An id: an integer in [0, INT32_MAX). */
static int32_t hf_id(const HfFile *f, const JsonField *v)
{
    if (v->kind != JSON_NUMBER || v->num != (double)(int32_t)v->num || v->num < 0 || v->num >= INT32_MAX)
        fail_input("%s: '%s' should be a token id (an integer from 0)", f->path, v->key);
    return (int32_t)v->num;
}

/* Whether key is prefix followed by something; *rest gets that. */
static int hf_under(const char *key, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || !key[n])
        return 0;
    *rest = key + n;
    return 1;
}

/* A pre-tokenizer (at key) adds its expression as a stage; returns whether it is the ByteLevel one. */
static int hf_pretokenizer(Hf *h, const HfFile *f, const char *key, int last)
{
    char *k = xasprintf("%s.type", key);
    const char *type = hf_str(f, k);
    free(k);
    int byte_level = type && strcmp(type, "ByteLevel") == 0;
    const char *pattern = NULL;
    if (byte_level) {
        k = xasprintf("%s.add_prefix_space", key);
        h->add_prefix_space = hf_bool(f, k, 1);
        free(k);
        if (h->add_prefix_space && strcmp(key, "pre_tokenizer") != 0)
            fail_input("%s: %s: add_prefix_space inside a Sequence is not supported", f->path, key);
        k = xasprintf("%s.use_regex", key);
        if (hf_bool(f, k, 1))
            pattern = pretok_pattern(PRETOK_GPT2);
        free(k);
        if (!last)
            fail_input("%s: %s: the ByteLevel pre-tokenizer must come last", f->path, key);
    } else if (type && strcmp(type, "Split") == 0) {
        char *kp = xasprintf("%s.pattern.Regex", key), *kb = xasprintf("%s.behavior", key),
             *ki = xasprintf("%s.invert", key);
        pattern = hf_str(f, kp);
        const char *behavior = hf_str(f, kb);
        if (!pattern || !behavior || strcmp(behavior, "Isolated") != 0 || hf_bool(f, ki, 0))
            fail_input("%s: %s: a Split pre-tokenizer is supported with a Regex pattern, behavior Isolated and "
                       "invert false",
                       f->path, key);
        free(kp);
        free(kb);
        free(ki);
    } else {
        fail_input("%s: %s: pre-tokenizer '%s' is not supported (ByteLevel, or a Sequence of Split and ByteLevel)",
                   f->path, key, type ? type : "(none)");
    }
    if (!pattern)
        return byte_level;
    int kind = 0;
    while (kind < PRETOK_COUNT && strcmp(pattern, pretok_pattern(kind)) != 0)
        kind++;
    if (kind == PRETOK_COUNT)
        fail_input("%s: %s: the expression '%s' is not supported (GPT-2's and LLaMA-3's are)", f->path, key, pattern);
    if (h->nstages == HF_MAX_STAGES)
        fail_input("%s: more than %d pre-tokenizer expressions", f->path, HF_MAX_STAGES);
    h->stage[h->nstages++] = kind;
    return byte_level;
}

static void hf_pretokenizers(Hf *h, const HfFile *f)
{
    const char *type = hf_str(f, "pre_tokenizer.type");
    int byte_level = 0;
    if (type && strcmp(type, "Sequence") == 0) {
        int n = 0;
        char *k;
        for (;; n++) {
            k = xasprintf("pre_tokenizer.pretokenizers.%d.type", n);
            int more = jsonl_get(&f->rec, k) != NULL;
            free(k);
            if (!more)
                break;
        }
        for (int i = 0; i < n; i++) {
            k = xasprintf("pre_tokenizer.pretokenizers.%d", i);
            byte_level |= hf_pretokenizer(h, f, k, i == n - 1);
            free(k);
        }
    } else {
        byte_level = hf_pretokenizer(h, f, "pre_tokenizer", 1);
    }
    if (!byte_level)
        fail_input("%s: no ByteLevel pre-tokenizer: megadata encodes byte-level BPE tokenizer.json files", f->path);
}

/* The model's options this encoder follows, and those it refuses. */
static void hf_options(Hf *h, const HfFile *f)
{
    const char *type = hf_str(f, "model.type");
    if (type && strcmp(type, "BPE") != 0)
        fail_input("%s: model type '%s': megadata encodes BPE models", f->path, type);
    const JsonField *v = jsonl_get(&f->rec, "model.dropout");
    if (v && !(v->kind == JSON_NULL || (v->kind == JSON_NUMBER && v->num == 0)))
        fail_input("%s: BPE dropout is not supported", f->path);
    const char *affix[] = {"model.continuing_subword_prefix", "model.end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = hf_str(f, affix[i]);
        if (s && *s)
            fail_input("%s: %s '%s' is not supported (byte-level BPE has none)", f->path, affix[i], s);
    }
    const char *rest;
    for (int i = 0; i < f->rec.n; i++)
        if (hf_under(f->rec.fields[i].key, "normalizer.", &rest))
            fail_input("%s: normalizer '%s' is not supported (byte-level BPE has none)", f->path,
                       hf_str(f, "normalizer.type") ? hf_str(f, "normalizer.type") : "?");
    h->ignore_merges = hf_bool(f, "model.ignore_merges", 0);
    hf_pretokenizers(h, f);
}

/* The byte-level alphabet (GPT-2's bytes_to_unicode): printable bytes stand for themselves, the
   others for U+0100 on, in byte order; and what stands for a byte the vocabulary lacks. */
static void hf_alphabet(Hf *h, const HfFile *f)
{
    const char *unk = hf_str(f, "model.unk_token");
    h->unk = unk ? strmap_get(&h->vocab, unk, strlen(unk)) : -1;
    if (unk && h->unk < 0)
        fail_input("%s: model.unk_token '%s' is not in the vocabulary", f->path, unk);
    h->byte_fallback = hf_bool(f, "model.byte_fallback", 0);
    h->fuse_unk = hf_bool(f, "model.fuse_unk", 0);
    int next = 0x100;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        int cp = printable ? b : next++;
        h->byte_chr_len[b] = cp < 0x80 ? 1 : 2;
        if (cp < 0x80) {
            h->byte_chr[b][0] = (char)cp;
        } else {
            h->byte_chr[b][0] = (char)(0xc0 | cp >> 6);
            h->byte_chr[b][1] = (char)(0x80 | (cp & 0x3f));
        }
        h->byte_tok[b] = strmap_get(&h->vocab, h->byte_chr[b], (size_t)h->byte_chr_len[b]);
        h->fallback[b][0] = h->fallback[b][1] = 0;
        for (int k = 0; k < h->byte_chr_len[b]; k++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)h->byte_chr[b][k]);
            int32_t id = strmap_get(&h->vocab, name, strlen(name));
            h->fallback[b][k] = id;
            if (id < 0)
                h->fallback[b][0] = -1;
        }
    }
}

/* Whether key is added_tokens.N.member; *index gets N's digits (their length in *len). */
static int hf_added(const char *key, const char *member, const char **index, int *len)
{
    const char *rest, *dot;
    if (!hf_under(key, "added_tokens.", &rest) || !(dot = strchr(rest, '.')) || strcmp(dot + 1, member) != 0)
        return 0;
    *index = rest;
    *len = (int)(dot - rest);
    return 1;
}

/* The next merge, of tokens a and b (NUL-terminated). */
static void hf_add_merge(Hf *h, const HfFile *f, size_t *cap, const char *a, const char *b)
{
    int rank = (int)h->merges.n;
    int32_t pair[2] = {strmap_get(&h->vocab, a, strlen(a)), strmap_get(&h->vocab, b, strlen(b))};
    char *ab = xasprintf("%s%s", a, b);
    int merged = strmap_get(&h->vocab, ab, strlen(ab));
    if (pair[0] < 0 || pair[1] < 0 || merged < 0)
        fail_input("%s: merge %d ('%s' '%s'): %s is not in the vocabulary", f->path, rank, a, b,
                   pair[0] < 0 ? "the first" : pair[1] < 0 ? "the second" : "the merged token");
    free(ab);
    if (strmap_put(&h->merges, pair, sizeof pair, rank) >= 0)
        fail_input("%s: merge %d ('%s' '%s') repeats an earlier one", f->path, rank, a, b);
    h->merge_new = xgrow(h->merge_new, cap, (size_t)rank + 1, sizeof *h->merge_new);
    h->merge_new[rank] = merged;
}

/* model.merges, in rank order: strings "a b" or pairs ["a", "b"]. */
static void hf_merges(Hf *h, const HfFile *f)
{
    size_t cap = 0;
    const char *rest;
    for (int i = 0; i < f->rec.n; i++) {
        const JsonField *v = &f->rec.fields[i], *w = i + 1 < f->rec.n ? v + 1 : NULL;
        if (!hf_under(v->key, "model.merges.", &rest))
            continue;
        const char *dot = strchr(rest, '.');
        size_t klen = strlen(v->key);
        if (v->kind == JSON_STRING && !dot) {
            char *a = xstrdup(v->str), *b = strchr(a, ' ');
            if (!b || strchr(b + 1, ' '))
                fail_input("%s: '%s' is '%s', expected two tokens separated by one space", f->path, v->key, v->str);
            *b++ = '\0';
            hf_add_merge(h, f, &cap, a, b);
            free(a);
        } else if (v->kind == JSON_STRING && strcmp(dot, ".0") == 0 && w && w->kind == JSON_STRING &&
                   strlen(w->key) == klen && strncmp(w->key, v->key, klen - 1) == 0 && w->key[klen - 1] == '1') {
            hf_add_merge(h, f, &cap, v->str, w->str);
            i++;
        } else {
            fail_input("%s: '%s': a merge should be a string \"a b\" or a pair [\"a\", \"b\"]", f->path, v->key);
        }
    }
}

/* The vocabulary and merges; returns the vocabulary size (the largest id + 1, added tokens too). */
static int hf_vocab(Hf *h, const HfFile *f)
{
    int32_t top = -1;
    const char *rest;
    int len;
    for (int i = 0; i < f->rec.n; i++) {
        const JsonField *v = &f->rec.fields[i];
        if (hf_under(v->key, "model.vocab.", &rest)) {
            int32_t id = hf_id(f, v);
            if (strmap_put(&h->vocab, rest, strlen(rest), id) >= 0)
                fail_input("%s: token '%s' is in the vocabulary twice", f->path, rest);
            top = id > top ? id : top;
        } else if (hf_added(v->key, "id", &rest, &len)) {
            int32_t id = hf_id(f, v);
            top = id > top ? id : top;
        } else if (hf_added(v->key, "special", &rest, &len) && (v->kind != JSON_BOOL || !v->num)) {
            fail_input("%s: '%s' is not true: added tokens that are not special are matched in the text by Hugging "
                       "Face's encoder, which megadata does not do",
                       f->path, v->key);
        }
    }
    if (!h->vocab.n)
        fail_input("%s: not a tokenizer.json: no model.vocab", f->path);
    hf_alphabet(h, f);
    hf_merges(h, f);
    return top + 1;
}

/* The id of the first added token named in names (a NULL-terminated list), or -1. */
static int hf_special(const HfFile *f, const char *const *names)
{
    for (; *names; names++)
        for (int i = 0; i < f->rec.n; i++) {
            const JsonField *v = &f->rec.fields[i];
            const char *index;
            int len;
            if (!hf_added(v->key, "content", &index, &len) || v->kind != JSON_STRING || strcmp(v->str, *names) != 0)
                continue;
            char *k = xasprintf("added_tokens.%.*s.id", len, index);
            const JsonField *id = jsonl_get(&f->rec, k);
            free(k);
            if (id)
                return hf_id(f, id);
        }
    return -1;
}

Tokenizer *hf_open(const char *path, char *file, size_t size)
{
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", NULL};
    HfFile f = {path, {0}};
    int col;
    const char *err = jsonl_parse(file, &f.rec, &col);
    if (err) {
        int line = 1, at = 1;
        for (int i = 0; i < col - 1 && file[i]; i++, at++)
            if (file[i] == '\n')
                line++, at = 0;
        fail_input("%s:%d:%d: not a tokenizer.json: expected %s", path, line, at, err);
    }
    Hf *h = xcalloc(1, sizeof *h);
    hf_options(h, &f);
    int vocab = hf_vocab(h, &f);
    h->classes = xmalloc(sizeof *h->classes);
    pretok_classes_init(h->classes);
    h->base = (Tokenizer){"hf-bpe", vocab, hf_special(&f, bos_names), hf_special(&f, eos_names),
                          util_fnv1a(file, size, UTIL_FNV_INIT), hf_encode, hf_free};
    jsonl_free(&f.rec);
    free(file);
    return &h->base;
}
