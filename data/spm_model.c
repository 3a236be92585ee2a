/* spm_model.c: the protobuf wire format, as far as a SentencePiece ModelProto needs it (see
   spm_model.h; field numbers from sentencepiece_model.proto). */
#include "data/spm_model.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* One message's bytes [p, end); base is the file's start, for the offsets in messages. */
typedef struct {
    const char *path;
    const unsigned char *base, *p, *end;
} PbReader;

/* A field: its number, wire type and value (a varint or a fixed-width number in v, a
   length-delimited one in sub). */
typedef struct {
    uint32_t number;
    int wire;
    uint64_t v;
    PbReader sub;
} PbField;

static noreturn void pb_bad(const PbReader *r, const char *what)
{
    fail_input("%s: not a SentencePiece model or tokenizer.json file: %s at byte %zu", r->path, what,
               (size_t)(r->p - r->base));
}

static uint64_t pb_varint(PbReader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p == r->end)
            pb_bad(r, "a varint cut short");
        unsigned char b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    pb_bad(r, "a varint longer than 10 bytes");
}

/* The next field into f; 0 at the end of the message. */
static int pb_next(PbReader *r, PbField *f)
{
    if (r->p == r->end)
        return 0;
    uint64_t tag = pb_varint(r);
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    if (f->number == 0 || tag >> 32)
        pb_bad(r, "a field number out of range");
    size_t n;
    switch (f->wire) {
    case WIRE_VARINT:
        f->v = pb_varint(r);
        return 1;
    case WIRE_I64:
    case WIRE_I32:
        n = f->wire == WIRE_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            pb_bad(r, "a fixed-width field cut short");
        f->v = 0;
        for (size_t i = 0; i < n; i++)
            f->v |= (uint64_t)r->p[i] << 8 * i;
        r->p += n;
        return 1;
    case WIRE_LEN:
        f->v = pb_varint(r);
        if (f->v > (uint64_t)(r->end - r->p))
            pb_bad(r, "a length-delimited field longer than its message");
        f->sub = (PbReader){r->path, r->base, r->p, r->p + f->v};
        r->p += f->v;
        return 1;
    default:
        pb_bad(r, "an unknown wire type");
    }
}

/* f holds a field of the wire type the schema gives it, else the file is not what it seems. */
static void pb_expect(const PbReader *r, const PbField *f, int wire)
{
    if (f->wire != wire)
        pb_bad(r, "a field of an unexpected wire type");
}

static SpmString pb_string(const PbReader *r, const PbField *f)
{
    pb_expect(r, f, WIRE_LEN);
    if (f->v > UINT32_MAX)
        pb_bad(r, "a string longer than 4 GiB");
    return (SpmString){(const char *)f->sub.p, (uint32_t)f->v};
}

static int pb_bool(const PbReader *r, const PbField *f)
{
    pb_expect(r, f, WIRE_VARINT);
    return f->v != 0;
}

static void spm_parse_piece(PbReader *r, SpmPiece *piece)
{
    *piece = (SpmPiece){.type = SPM_NORMAL};
    PbField f;
    while (pb_next(r, &f)) {
        if (f.number == 1) {
            SpmString s = pb_string(r, &f);
            piece->s = s.s;
            piece->len = s.len;
        } else if (f.number == 2) {
            pb_expect(r, &f, WIRE_I32);
            uint32_t bits = (uint32_t)f.v;
            memcpy(&piece->score, &bits, sizeof bits);
        } else if (f.number == 3) {
            pb_expect(r, &f, WIRE_VARINT);
            piece->type = f.v >= SPM_NORMAL && f.v <= SPM_BYTE ? (int)f.v : 0;
        }
    }
}

static void spm_parse_trainer(PbReader *r, SpmModel *m)
{
    PbField f;
    while (pb_next(r, &f)) {
        if (f.number == 3) {
            pb_expect(r, &f, WIRE_VARINT);
            m->model_type = f.v <= SPM_MODEL_CHAR ? (int)f.v : 0;
        } else if (f.number == 24) {
            m->ws_suffix = pb_bool(r, &f);
        } else if (f.number == 35) {
            m->byte_fallback = pb_bool(r, &f);
        } else if (f.number == 44) {
            m->unk_surface = pb_string(r, &f);
        } else if (f.number == 45) {
            m->unk_piece = pb_string(r, &f);
        } else if (f.number == 46) {
            m->bos_piece = pb_string(r, &f);
        } else if (f.number == 47) {
            m->eos_piece = pb_string(r, &f);
        }
    }
}

static void spm_parse_normalizer(PbReader *r, SpmModel *m)
{
    PbField f;
    while (pb_next(r, &f)) {
        if (f.number == 1)
            m->norm_name = pb_string(r, &f);
        else if (f.number == 2)
            m->charsmap = pb_string(r, &f);
        else if (f.number == 3)
            m->add_dummy_prefix = pb_bool(r, &f);
        else if (f.number == 4)
            m->remove_extra_ws = pb_bool(r, &f);
        else if (f.number == 5)
            m->escape_ws = pb_bool(r, &f);
    }
}

void spm_model_parse(const char *path, const unsigned char *data, size_t size, SpmModel *m)
{
    /* the schema's defaults */
    *m = (SpmModel){.model_type = SPM_MODEL_UNIGRAM,
                    .unk_piece = {"<unk>", 5},
                    .unk_surface = {" \xe2\x81\x87 ", 5},
                    .bos_piece = {"<s>", 3},
                    .eos_piece = {"</s>", 4},
                    .add_dummy_prefix = 1,
                    .remove_extra_ws = 1,
                    .escape_ws = 1};
    PbReader r = {path, data, data, data + size};
    PbField f;
    int cap = 0;
    while (pb_next(&r, &f)) {
        if (f.number == 1) {
            pb_expect(&r, &f, WIRE_LEN);
            if (m->npieces == cap) {
                cap = cap ? 2 * cap : 1024;
                m->pieces = realloc(m->pieces, (size_t)cap * sizeof *m->pieces);
                if (!m->pieces)
                    fail("%s: out of memory for %d pieces", path, cap);
            }
            spm_parse_piece(&f.sub, &m->pieces[m->npieces++]);
        } else if (f.number == 2) {
            pb_expect(&r, &f, WIRE_LEN);
            spm_parse_trainer(&f.sub, m);
        } else if (f.number == 3) {
            pb_expect(&r, &f, WIRE_LEN);
            spm_parse_normalizer(&f.sub, m);
        }
    }
    if (m->npieces == 0)
        fail_input("%s: not a SentencePiece model or tokenizer.json file: no vocabulary pieces", path);
}

void spm_model_free(SpmModel *m)
{
    free(m->pieces);
    *m = (SpmModel){0};
}
