/* pretok.h: the pre-tokenizers of byte-level BPE tokenizers, which cut text into the pieces BPE
   merges within: GPT-2's regular expression and the one of LLaMA-3 (tiktoken's cl100k), matched
   by hand as a backtracking regex engine matches them (leftmost alternative first). The
   expressions are in pretok.c as tokenizer.json files spell them. */
#ifndef MEGATRAIN_PRETOK_H
#define MEGATRAIN_PRETOK_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PRETOK_GPT2, PRETOK_CL100K, PRETOK_COUNT } PretokKind;

/* A character's classes: the Unicode classes of unicode_classes.h and PRETOK_NL. */
enum { PRETOK_NL = 8 }; /* \r or \n */

/* The pattern's text, as a tokenizer.json holds it. */
const char *pretok_pattern(PretokKind kind);

/* The classes of every code point below 0x10000, for pretok_class. */
typedef struct {
    uint8_t bmp[0x10000];
} PretokClasses;

void pretok_classes_init(PretokClasses *pc);
unsigned pretok_class(const PretokClasses *pc, uint32_t cp);

/* cp[0, n) with their classes cls: the end of the piece that starts at i < n (> i). */
size_t pretok_match(PretokKind kind, const uint32_t *cp, const uint8_t *cls, size_t n, size_t i);

#endif
