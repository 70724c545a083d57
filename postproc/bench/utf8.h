/* Text from a server (or a dataset) made safe for JSON writers: invalid UTF-8 replaced. */
#ifndef MOECAP_BENCH_UTF8_H
#define MOECAP_BENCH_UTF8_H
#include <stddef.h>

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF). */
int mc_utf8_valid(const char *s, size_t n);
/* A NUL-terminated copy of s[0..n) in which every ill-formed sequence is replaced by
 * U+FFFD (one per maximal ill-formed subpart, as Unicode recommends); NULL on OOM. */
char *mc_utf8_sanitize(const char *s, size_t n);
#endif
