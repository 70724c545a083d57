/* UTF-8 checking and repair for text that comes from a trace (paths, argv, names): traces
 * are untrusted input, and JSON readers refuse invalid UTF-8, so every such byte string is
 * made valid before it reaches report.json or a dump line. Each maximal invalid subpart (a
 * stray byte, or the valid beginning of a truncated, overlong or surrogate sequence) becomes
 * one U+FFFD, as the Unicode standard recommends and Python's errors="replace" does. */
#ifndef MOECAP_TRACE_UTF8_H
#define MOECAP_TRACE_UTF8_H

#include <stddef.h>
#include <stdio.h>

/* 1 when s[0 .. n) is valid UTF-8 (NUL bytes count as valid). */
int mc_utf8_valid(const char *s, size_t n);
/* New NUL-terminated copy of s[0 .. n) (stopping at a NUL) with each maximal invalid subpart
 * replaced by U+FFFD; NULL when out of memory. */
char *mc_utf8_sanitize(const char *s, size_t n);
/* Writes s[0 .. n) (stopping at a NUL) as a JSON string literal: quotes, escapes, and
 * U+FFFD (as \ufffd) for each maximal invalid subpart. */
void mc_utf8_put_json(FILE *o, const char *s, size_t n);

#endif
