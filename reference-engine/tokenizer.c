/* moe-ref's byte-level tokenizer: deliberately trivial and deterministic (one token per
 * byte), so text prompts work without a vocabulary file and the server can stream text. */
#include "engine.h"

int mr_tok_encode(const char *text, size_t len, int vocab, int32_t *out, int max_out)
{
    int n = 0;
    if (vocab <= 0) return 0;
    for (size_t i = 0; i < len && n < max_out; i++)
        out[n++] = (int32_t)((unsigned char)text[i] % (unsigned)vocab);
    return n;
}

int mr_tok_decode(const int32_t *ids, int n, char *out, size_t cap)
{
    if (n < 0 || cap < (size_t)n + 1) return -1;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        /* ASCII ids map to themselves; everything else (random models sample ids far above
         * 127) to a printable character, so the output is always valid UTF-8 */
        if (id >= 0 && id < 128 && (id >= 32 || id == '\n' || id == '\t'))
            out[i] = (char)id;
        else
            out[i] = (char)(' ' + (int)((uint32_t)id % 95u));
    }
    out[n] = 0;
    return n;
}
