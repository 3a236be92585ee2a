/* utf8.c: well-formed UTF-8 (see utf8.h). */
#include "data/utf8.h"

/* How many bytes of p[0, n) follow a well-formed sequence's pattern (*need bytes long): the lead
   byte fixes the length and the range of the second byte; later bytes are 80..BF. */
static int utf8_prefix(const unsigned char *p, size_t n, int *need)
{
    unsigned char b = p[0], lo = 0x80, hi = 0xbf;
    if (b < 0x80) {
        *need = 1;
        return 1;
    }
    if (b < 0xc2 || b > 0xf4) {
        *need = 2; /* a stray continuation byte, a lead byte of an overlong form, or beyond U+10FFFF */
        return 0;
    }
    *need = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    int k = 1;
    for (; k < *need && (size_t)k < n; k++) {
        unsigned char c = p[k];
        if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf))
            break;
    }
    return k;
}

int utf8_char_len(const unsigned char *p, size_t n)
{
    int need, k = utf8_prefix(p, n, &need);
    return k == need ? k : 0;
}

int utf8_bad_len(const unsigned char *p, size_t n)
{
    int need, k = utf8_prefix(p, n, &need);
    return k ? k : 1;
}

uint32_t utf8_decode(const unsigned char *p, int len)
{
    static const unsigned char lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = p[0] & lead_mask[len];
    for (int i = 1; i < len; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    return cp;
}
