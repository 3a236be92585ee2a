/* utf8.h: what the tokenizers need of UTF-8: where a character ends, and what an ill-formed
   sequence is (the well-formed sequences of the Unicode Standard, section 3.9, table 3-7: no
   overlong forms, no surrogates, nothing above U+10FFFF). */
#ifndef MEGATRAIN_UTF8_H
#define MEGATRAIN_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* p[0, n), n > 0: the length (1 to 4) of the well-formed character p starts with, or 0. */
int utf8_char_len(const unsigned char *p, size_t n);
/* p[0, n), n > 0, starting with an ill-formed sequence: the length of its maximal subpart (the
   longest start of a well-formed sequence, at least 1 byte), which one U+FFFD replaces where
   Python's decode(errors="replace") and the Unicode Standard's practice replace it. */
int utf8_bad_len(const unsigned char *p, size_t n);
/* The code point of a well-formed character of len bytes. */
uint32_t utf8_decode(const unsigned char *p, int len);

#endif
