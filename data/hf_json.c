/* hf_json.c: a tokenizer.json's byte-level BPE, through base/jsonl's flattened fields (see
   hf_json.h). */
#include "data/hf_json.h"

#include "base/jsonl.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* An id: an integer in [0, INT32_MAX) (the range first: converting a double outside it, or a NaN,
   to an integer is undefined). */
static int32_t hf_id(const HfFile *f, const JsonField *v)
{
    if (v->kind != JSON_NUMBER || !(v->num >= 0 && v->num < INT32_MAX) || v->num != (double)(int32_t)v->num)
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
static int hf_pretokenizer(HfModel *m, const HfFile *f, const char *key, int last)
{
    char *k = xasprintf("%s.type", key);
    const char *type = hf_str(f, k);
    free(k);
    int byte_level = type && strcmp(type, "ByteLevel") == 0;
    const char *pattern = NULL;
    if (byte_level) {
        k = xasprintf("%s.add_prefix_space", key);
        m->add_prefix_space = hf_bool(f, k, 1);
        free(k);
        if (m->add_prefix_space && strcmp(key, "pre_tokenizer") != 0)
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
    if (m->nstages == HF_MAX_STAGES)
        fail_input("%s: more than %d pre-tokenizer expressions", f->path, HF_MAX_STAGES);
    m->stage[m->nstages++] = kind;
    return byte_level;
}

static void hf_pretokenizers(HfModel *m, const HfFile *f)
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
            byte_level |= hf_pretokenizer(m, f, k, i == n - 1);
            free(k);
        }
    } else {
        byte_level = hf_pretokenizer(m, f, "pre_tokenizer", 1);
    }
    if (!byte_level)
        fail_input("%s: no ByteLevel pre-tokenizer: megadata encodes byte-level BPE tokenizer.json files", f->path);
}

/* The model's options this encoder follows, and those it refuses. */
static void hf_options(HfModel *m, const HfFile *f)
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
    m->ignore_merges = hf_bool(f, "model.ignore_merges", 0);
    hf_pretokenizers(m, f);
}

/* The byte-level alphabet (GPT-2's bytes_to_unicode): printable bytes stand for themselves, the
   others for U+0100 on, in byte order; and what stands for a byte the vocabulary lacks. */
static void hf_alphabet(HfModel *m, const HfFile *f)
{
    const char *unk = hf_str(f, "model.unk_token");
    m->unk = unk ? strmap_get(&m->vocab, unk, strlen(unk)) : -1;
    if (unk && m->unk < 0)
        fail_input("%s: model.unk_token '%s' is not in the vocabulary", f->path, unk);
    m->byte_fallback = hf_bool(f, "model.byte_fallback", 0);
    m->fuse_unk = hf_bool(f, "model.fuse_unk", 0);
    int next = 0x100;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        int cp = printable ? b : next++;
        m->byte_chr_len[b] = cp < 0x80 ? 1 : 2;
        if (cp < 0x80) {
            m->byte_chr[b][0] = (char)cp;
        } else {
            m->byte_chr[b][0] = (char)(0xc0 | cp >> 6);
            m->byte_chr[b][1] = (char)(0x80 | (cp & 0x3f));
        }
        m->byte_tok[b] = strmap_get(&m->vocab, m->byte_chr[b], (size_t)m->byte_chr_len[b]);
        m->fallback[b][0] = m->fallback[b][1] = 0;
        for (int k = 0; k < m->byte_chr_len[b]; k++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)m->byte_chr[b][k]);
            int32_t id = strmap_get(&m->vocab, name, strlen(name));
            m->fallback[b][k] = id;
            if (id < 0)
                m->fallback[b][0] = -1;
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

/* The next merge, of tokens a and b (na and nb bytes). Nothing is left allocated where it stops. */
static void hf_add_merge(HfModel *m, const HfFile *f, size_t *cap, const char *a, size_t na, const char *b, size_t nb)
{
    int rank = (int)m->merges.n;
    int32_t pair[2] = {strmap_get(&m->vocab, a, na), strmap_get(&m->vocab, b, nb)};
    char *ab = xasprintf("%.*s%.*s", (int)na, a, (int)nb, b);
    int merged = strmap_get(&m->vocab, ab, na + nb);
    free(ab);
    if (pair[0] < 0 || pair[1] < 0 || merged < 0)
        fail_input("%s: merge %d ('%.*s' '%.*s'): %s is not in the vocabulary", f->path, rank, (int)na, a, (int)nb, b,
                   pair[0] < 0 ? "the first" : pair[1] < 0 ? "the second" : "the merged token");
    if (strmap_put(&m->merges, pair, sizeof pair, rank) >= 0)
        fail_input("%s: merge %d ('%.*s' '%.*s') repeats an earlier one", f->path, rank, (int)na, a, (int)nb, b);
    m->merge_new = xgrow(m->merge_new, cap, (size_t)rank + 1, sizeof *m->merge_new);
    m->merge_new[rank] = merged;
}

/* model.merges, in rank order: strings "a b" or pairs ["a", "b"]. */
static void hf_merges(HfModel *m, const HfFile *f)
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
            const char *sp = strchr(v->str, ' ');
            if (!sp || strchr(sp + 1, ' '))
                fail_input("%s: '%s' is '%s', expected two tokens separated by one space", f->path, v->key, v->str);
            hf_add_merge(m, f, &cap, v->str, (size_t)(sp - v->str), sp + 1, strlen(sp + 1));
        } else if (v->kind == JSON_STRING && strcmp(dot, ".0") == 0 && w && w->kind == JSON_STRING &&
                   strlen(w->key) == klen && strncmp(w->key, v->key, klen - 1) == 0 && w->key[klen - 1] == '1') {
            hf_add_merge(m, f, &cap, v->str, strlen(v->str), w->str, strlen(w->str));
            i++;
        } else {
            fail_input("%s: '%s': a merge should be a string \"a b\" or a pair [\"a\", \"b\"]", f->path, v->key);
        }
    }
}

/* The vocabulary and merges; returns the vocabulary size (the largest id + 1, added tokens too). */
static int hf_vocab(HfModel *m, const HfFile *f)
{
    int32_t top = -1;
    const char *rest;
    int len;
    size_t added_cap = 0;
    for (int i = 0; i < f->rec.n; i++) {
        const JsonField *v = &f->rec.fields[i];
        if (hf_under(v->key, "model.vocab.", &rest)) {
            int32_t id = hf_id(f, v);
            if (strmap_put(&m->vocab, rest, strlen(rest), id) >= 0)
                fail_input("%s: token '%s' is in the vocabulary twice", f->path, rest);
            top = id > top ? id : top;
        } else if (hf_added(v->key, "id", &rest, &len)) {
            int32_t id = hf_id(f, v);
            top = id > top ? id : top;
            m->added = xgrow(m->added, &added_cap, (size_t)m->nadded + 1, sizeof *m->added);
            m->added[m->nadded++] = id;
        } else if (hf_added(v->key, "special", &rest, &len) && (v->kind != JSON_BOOL || !v->num)) {
            fail_input("%s: '%s' is not true: added tokens that are not special are matched in the text by Hugging "
                       "Face's encoder, which megadata does not do",
                       f->path, v->key);
        }
    }
    if (!m->vocab.n)
        fail_input("%s: not a tokenizer.json: no model.vocab", f->path);
    hf_alphabet(m, f);
    hf_merges(m, f);
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

void hf_model_read(const char *path, const char *text, HfModel *m)
{
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", NULL};
    HfFile f = {path, {0}};
    int col;
    const char *err = jsonl_parse(text, &f.rec, &col);
    if (err) {
        int line = 1, at = 1;
        for (int i = 0; i < col - 1 && text[i]; i++, at++)
            if (text[i] == '\n')
                line++, at = 0;
        fail_input("%s:%d:%d: not a tokenizer.json: expected %s", path, line, at, err);
    }
    *m = (HfModel){0};
    hf_options(m, &f);
    m->vocab_size = hf_vocab(m, &f);
    m->bos = hf_special(&f, bos_names);
    m->eos = hf_special(&f, eos_names);
    jsonl_free(&f.rec);
}

void hf_model_free(HfModel *m)
{
    strmap_free(&m->vocab);
    strmap_free(&m->merges);
    free(m->merge_new);
    free(m->added);
    *m = (HfModel){0};
}
