/* hf_json.h: reading a Hugging Face tokenizer.json that holds a byte-level BPE (GPT-2, LLaMA-3
   style) into what the encoder (hf_tokenizer.c) needs; what it cannot encode exactly is refused
   (doc/data.md). */
#ifndef MEGATRAIN_HF_JSON_H
#define MEGATRAIN_HF_JSON_H

#include "data/pretok.h"
#include "data/strmap.h"

#include <stdint.h>

#define HF_MAX_STAGES 2 /* pre-tokenizer expressions applied one after the other */

typedef struct {
    StrMap vocab;       /* token, in byte-level characters -> id */
    StrMap merges;      /* (left id, right id) as 8 bytes -> rank */
    int32_t *merge_new; /* rank -> id of the merged token */
    char byte_chr[256][2]; /* the byte-level character of each byte, in UTF-8 (1 or 2 bytes) */
    int byte_chr_len[256];
    int32_t byte_tok[256];     /* its token, or -1 when the vocabulary lacks it: then */
    int32_t fallback[256][2];  /* with byte_fallback, the <0xXX> tokens of its UTF-8 bytes (-1: none) */
    int32_t unk;               /* else unk_token's id (-1: none, the byte is dropped) */
    int byte_fallback, fuse_unk, ignore_merges, add_prefix_space;
    PretokKind stage[HF_MAX_STAGES];
    int nstages;
    int vocab_size, bos, eos; /* the largest id + 1; -1: none */
    int32_t *added;           /* (nadded) the added tokens' ids */
    int nadded;
} HfModel;

/* Parses text, the NUL-terminated bytes of the file at path. Bad input stops through fail_input
   naming path. */
void hf_model_read(const char *path, const char *text, HfModel *m);
void hf_model_free(HfModel *m);

#endif
