/* spm_model.h: reading a SentencePiece model file (.model: a serialized ModelProto, protobuf wire
   format) into what the encoder needs. Only the fields that decide how text is encoded are kept;
   the others are skipped. */
#ifndef MEGATRAIN_SPM_MODEL_H
#define MEGATRAIN_SPM_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* ModelProto.SentencePiece.Type */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };
/* TrainerSpec.ModelType */
enum { SPM_MODEL_UNIGRAM = 1, SPM_MODEL_BPE = 2, SPM_MODEL_WORD = 3, SPM_MODEL_CHAR = 4 };

typedef struct {
    const char *s; /* not NUL-terminated: s[0, len) */
    uint32_t len;
    float score;
    int type;
} SpmPiece;

typedef struct {
    const char *s;
    uint32_t len;
} SpmString;

typedef struct {
    SpmPiece *pieces; /* the vocabulary: piece i has id i */
    int npieces;
    /* TrainerSpec */
    int model_type, byte_fallback, ws_suffix; /* ws_suffix: treat_whitespace_as_suffix */
    SpmString unk_piece, bos_piece, eos_piece, unk_surface; /* unk_surface: the unknown piece's text */
    /* NormalizerSpec */
    SpmString norm_name, charsmap;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} SpmModel;

/* Parses data[0, size), the bytes of the file at path; the model's strings point into data, which
   must outlive it. Malformed input stops through fail_input naming path. */
void spm_model_parse(const char *path, const unsigned char *data, size_t size, SpmModel *m);
void spm_model_free(SpmModel *m);

#endif
