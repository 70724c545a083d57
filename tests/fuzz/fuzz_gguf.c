/* Fuzz target: the shim's GGUF header parser (shim/gguf_hdr.c) on any bytes, read through a
 * pread over the input. Oracles: tensors lie inside the file, names are NUL-terminated, and
 * the count returned equals the callbacks made. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "gguf_hdr.h"

static const uint8_t *g_data;
static size_t g_size;

static ssize_t mem_pread(int fd, void *buf, size_t n, off_t off)
{
    (void)fd;
    if (off < 0 || (uint64_t)off >= g_size) return 0;
    size_t left = g_size - (size_t)off;
    if (n > left) n = left;
    memcpy(buf, g_data + off, n);
    return (ssize_t)n;
}

struct seen { int n; };

static void on_tensor(void *arg, const struct mc_st_tensor *t)
{
    if (memchr(t->name, 0, sizeof t->name) == NULL) abort();
    if (t->begin > t->end || t->end > g_size) abort();
    ((struct seen *)arg)->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_data = data;
    g_size = size;
    struct seen s = {0};
    int n = mc_gguf_parse(-1, mem_pread, size, on_tensor, &s);
    if (n >= 0 && n != s.n) abort();
    return 0;
}
