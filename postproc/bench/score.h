/* Answer extraction and scoring for `moecap bench` datasets: GSM8K (final number exact
 * match) and multiple choice (letter match). Pure functions, no allocation. */
#ifndef MOECAP_BENCH_SCORE_H
#define MOECAP_BENCH_SCORE_H
#include <stddef.h>

/* Extracts the final numeric answer of a GSM8K-style text into `out` in canonical form
 * (no '$' or thousands commas, no leading zeros, no trailing fractional zeros, "-" for
 * negatives, "-0" -> "0"). Rule, first that applies: the number after the last "####";
 * the first number after the last "answer is"/"answer:" (case-insensitive); the last
 * number in the text. Returns 1 when a number was found, 0 otherwise (out = ""). */
int mc_extract_number(const char *text, char *out, size_t outsz);

/* Canonicalises one number literal ("$1,234.50" -> "1234.5"); 0 if it is not one. */
int mc_canon_number(const char *literal, char *out, size_t outsz);

/* 1 when the final number in `answer` equals `expected` (itself a number literal or a
 * GSM8K reference solution ending in "#### N"), 0 otherwise. */
int mc_score_gsm8k(const char *answer, const char *expected);

/* Extracts the chosen letter ('A'..'A'+nchoices-1, upper case) from a multiple-choice
 * answer ("(B)", "Answer: B", "b)", "The answer is C."); nchoices <= 0 means 10 (A-J).
 * Returns 0 when no letter can be identified. */
int mc_extract_choice(const char *text, int nchoices);

/* 1 when the extracted letter equals `expected` (a letter, case-insensitive), else 0. */
int mc_score_choice(const char *answer, const char *expected, int nchoices);
#endif
