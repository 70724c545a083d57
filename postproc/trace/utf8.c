/* UTF-8 checking and repair (see utf8.h). */
#include "trace/utf8.h"

#include <stdlib.h>
#include <string.h>

/* The sequence at s[0 .. n): returns how many bytes it spans and sets *ok. A valid one spans
 * 1-4 bytes; an invalid one spans its maximal subpart — the longest prefix of a valid
 * sequence (at least 1 byte) — which becomes one U+FFFD, as Unicode recommends (Python's
 * errors="replace" and browsers do the same). */
static size_t scan(const unsigned char *s, size_t n, int *ok)
{
    *ok = 0;
    if (!n) return 0;
    unsigned c = s[0];
    if (c < 0x80) { *ok = 1; return 1; }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;   /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;          /* no overlong forms */
        else if (c == 0xed) hi = 0x9f;     /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        else if (c == 0xf4) hi = 0x8f;     /* nothing above U+10FFFF */
    } else return 1;
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    size_t i = 2;
    while (i < len && i < n && (s[i] & 0xc0) == 0x80) i++;
    *ok = i == len;
    return i;
}

int mc_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int ok;
        i += scan(p + i, n - i, &ok);
        if (!ok) return 0;
    }
    return 1;
}

char *mc_utf8_sanitize(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0;
    while (len < n && p[len]) len++;
    char *out = malloc(3 * len + 1);   /* worst case: every byte becomes the 3-byte U+FFFD */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int ok;
        size_t l = scan(p + i, len - i, &ok);
        if (ok) { memcpy(out + o, p + i, l); o += l; }
        else { memcpy(out + o, "\xef\xbf\xbd", 3); o += 3; }
        i += l;
    }
    out[o] = 0;
    return out;
}

void mc_utf8_put_json(FILE *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', o);
    size_t end = 0;
    while (p && end < n && p[end]) end++;
    for (size_t i = 0; i < end;) {
        unsigned c = p[i];
        int ok = 1;
        size_t l = 1;
        if (c == '"' || c == '\\') fprintf(o, "\\%c", c);
        else if (c == '\n') fputs("\\n", o);
        else if (c == '\t') fputs("\\t", o);
        else if (c < 0x20 || c == 0x7f) fprintf(o, "\\u%04x", c);
        else if (c < 0x80) fputc((int)c, o);
        else if ((l = scan(p + i, end - i, &ok)) != 0 && ok) fwrite(p + i, 1, l, o);
        else fputs("\\ufffd", o);
        i += l;
    }
    fputc('"', o);
}
