/* UTF-8 validation and repair (see utf8.h). cJSON writes string bytes >= 0x80 as they are,
 * so text that is not UTF-8 would make requests.jsonl unreadable to strict JSON readers. */
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed sequence at s (n bytes left), or 0 when ill-formed; *bad =
 * bytes of its maximal ill-formed subpart (at least 1). Table 3-7 of the Unicode standard. */
static size_t seq_len(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *bad = 1; return 0; }
    for (size_t i = 1; i < len; i++) {
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (i >= n || s[i] < l || s[i] > h) { *bad = i; return 0; }
    }
    return len;
}

int mc_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t bad, k = seq_len(p + i, n - i, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

char *mc_utf8_sanitize(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(3 * n + 1);        /* worst case: every byte becomes U+FFFD */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t bad, k = seq_len(p + i, n - i, &bad);
        if (k) { memcpy(out + o, p + i, k); o += k; i += k; }
        else { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i += bad; }
    }
    out[o] = 0;
    return out;
}
