/* Answer extraction and scoring (GSM8K final-number match, multiple-choice letter match).
 * Kept free of allocation so the fuzz-like scoring tests can hammer it cheaply. */
#include "score.h"
#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Scans one number literal starting exactly at s (optional sign/'$', digits with
 * 3-digit comma groups, optional fraction). Returns its length or 0. Writes the
 * canonical form to out when out != NULL. */
static size_t scan_number(const char *s, char *out, size_t outsz)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    if (*p == '$') p++;
    if (!neg && *p == '-' && p > s) { neg = 1; p++; }       /* "$-5" */
    char ip[64]; size_t ni = 0;
    char fp[64]; size_t nf = 0;
    if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p)) { if (ni < sizeof ip - 1) ip[ni++] = *p; p++; }
        /* thousands separators: only ",ddd" followed by a non-digit */
        while (p[0] == ',' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
               isdigit((unsigned char)p[3]) && !isdigit((unsigned char)p[4])) {
            for (int k = 1; k <= 3; k++) if (ni < sizeof ip - 1) ip[ni++] = p[k];
            p += 4;
        }
    } else if (!(*p == '.' && isdigit((unsigned char)p[1]))) {
        return 0;
    }
    if (*p == '.' && isdigit((unsigned char)p[1])) {
        p++;
        while (isdigit((unsigned char)*p)) { if (nf < sizeof fp - 1) fp[nf++] = *p; p++; }
    }
    if (out && outsz) {
        size_t a = 0;
        while (a + 1 < ni && ip[a] == '0') a++;              /* leading zeros */
        while (nf > 0 && fp[nf - 1] == '0') nf--;            /* trailing fractional zeros */
        int zero = (ni == 0 || (ni - a == 1 && ip[a] == '0')) && nf == 0;
        size_t o = 0;
        if (neg && !zero && o + 1 < outsz) out[o++] = '-';
        if (ni == 0 && o + 1 < outsz) out[o++] = '0';
        for (size_t k = a; k < ni && o + 1 < outsz; k++) out[o++] = ip[k];
        if (nf) {
            if (o + 1 < outsz) out[o++] = '.';
            for (size_t k = 0; k < nf && o + 1 < outsz; k++) out[o++] = fp[k];
        }
        out[o] = 0;
    }
    return (size_t)(p - s);
}

/* Can a number literal start at text[i]? Not in the middle of a word or number, and a
 * '-' is a sign only when it does not follow a digit or letter ("5-3" is not "-3"). */
static int number_starts_at(const char *text, size_t i)
{
    char c = text[i], prev = i ? text[i - 1] : ' ';
    if (isalnum((unsigned char)prev)) return 0;
    if (prev == '.' && i >= 2 && isdigit((unsigned char)text[i - 2])) return 0;
    if (c == '-' || c == '$') return scan_number(text + i, NULL, 0) > 0;
    if (isdigit((unsigned char)c)) return 1;
    if (c == '.') return isdigit((unsigned char)text[i + 1]);
    return 0;
}

/* First number at or after `from`, canonical into out; returns its end or NULL. */
static const char *first_number(const char *text, size_t from, char *out, size_t outsz)
{
    size_t n = strlen(text);
    for (size_t i = from; i < n; i++) {
        if (!number_starts_at(text, i)) continue;
        size_t len = scan_number(text + i, out, outsz);
        if (len) return text + i + len;
    }
    return NULL;
}

static const char *last_ci(const char *hay, const char *needle)
{
    size_t hn = strlen(hay), nn = strlen(needle);
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!strncasecmp(hay + i, needle, nn)) return hay + i;
    return NULL;
}

int mc_extract_number(const char *text, char *out, size_t outsz)
{
    if (outsz) out[0] = 0;
    if (!text || !outsz) return 0;
    const char *m = last_ci(text, "####");
    if (m && first_number(text, (size_t)(m - text) + 4, out, outsz)) return 1;
    const char *a = last_ci(text, "answer is");
    const char *b = last_ci(text, "answer:");
    const char *c = a > b ? a : b;
    if (c && first_number(text, (size_t)(c - text) + 7, out, outsz)) return 1;
    /* last number anywhere */
    char tmp[160];
    int found = 0;
    size_t pos = 0;
    const char *end;
    while ((end = first_number(text, pos, tmp, sizeof tmp))) {
        found = 1;
        strncpy(out, tmp, outsz - 1);
        out[outsz - 1] = 0;
        pos = (size_t)(end - text);
    }
    if (!found) out[0] = 0;
    return found;
}

int mc_canon_number(const char *literal, char *out, size_t outsz)
{
    if (outsz) out[0] = 0;
    if (!literal || !outsz) return 0;
    while (isspace((unsigned char)*literal)) literal++;
    size_t len = scan_number(literal, out, outsz);
    if (!len) return 0;
    const char *p = literal + len;
    if (*p == '.') p++;                                      /* "42." */
    while (isspace((unsigned char)*p)) p++;
    if (*p) { out[0] = 0; return 0; }
    return 1;
}

int mc_score_gsm8k(const char *answer, const char *expected)
{
    char got[160], want[160];
    if (!answer || !expected) return 0;
    if (!mc_canon_number(expected, want, sizeof want) &&
        !mc_extract_number(expected, want, sizeof want)) return 0;
    if (!mc_extract_number(answer, got, sizeof got)) return 0;
    return strcmp(got, want) == 0;
}

static int valid_letter(int c, int n) { c = toupper(c); return c >= 'A' && c < 'A' + n; }

/* A lower-case letter counts only with an explicit delimiter after it, so that prose
 * ("the answer is a bit unclear") is not read as a choice. */
static int letter_here(const char *p, int n, int after_paren)
{
    if (!isalpha((unsigned char)p[0]) || !valid_letter(p[0], n)) return 0;
    char nx = p[1];
    if (isalnum((unsigned char)nx)) return 0;
    if (isupper((unsigned char)p[0])) return toupper(p[0]);
    if (after_paren || nx == ')' || nx == '.' || nx == ',' || nx == ':' || nx == 0 ||
        nx == '\n' || nx == '*') return toupper(p[0]);
    return 0;
}

int mc_extract_choice(const char *text, int nchoices)
{
    int n = nchoices > 0 && nchoices <= 26 ? nchoices : 10;
    if (!text) return 0;
    size_t len = strlen(text);
    /* 1: "answer is (B)", "Answer: B", "answer: **b)**", scanning occurrences from the end */
    for (size_t i = len >= 6 ? len - 6 + 1 : 0; i-- > 0;) {
        if (strncasecmp(text + i, "answer", 6)) continue;
        const char *p = text + i + 6;
        while (*p == ' ' || *p == '*') p++;
        if (!strncasecmp(p, "is", 2) && !isalpha((unsigned char)p[2])) p += 2;
        while (*p == ' ' || *p == ':' || *p == '*' || *p == '\t') p++;
        if (!strncasecmp(p, "option ", 7)) p += 7;
        int paren = 0;
        if (*p == '(' || *p == '[') { paren = 1; p++; }
        int l = letter_here(p, n, paren);
        if (l) return l;
    }
    /* 2: the last "(X)" */
    for (size_t i = len >= 3 ? len - 3 + 1 : 0; i-- > 0;)
        if (text[i] == '(' && text[i + 2] == ')' && isalpha((unsigned char)text[i + 1]) &&
            valid_letter(text[i + 1], n))
            return toupper(text[i + 1]);
    /* 3: the answer begins with a letter: "B", "b)", "C. Paris", "D: ..." */
    const char *p = text;
    while (isspace((unsigned char)*p) || *p == '*') p++;
    if (isalpha((unsigned char)p[0]) && valid_letter(p[0], n)) {
        char nx = p[1];
        if (nx == ')' || nx == '.' || nx == ':' || nx == ',' || nx == 0 || nx == '*' ||
            (isspace((unsigned char)nx) && isupper((unsigned char)p[0]) &&
             (p[2] == 0 || isspace((unsigned char)p[2]))))
            return toupper(p[0]);
        if (isspace((unsigned char)nx) && isupper((unsigned char)p[0])) {
            const char *q = p + 1;
            while (isspace((unsigned char)*q)) q++;
            if (!*q) return p[0];
        }
    }
    return 0;
}

int mc_score_choice(const char *answer, const char *expected, int nchoices)
{
    if (!answer || !expected) return 0;
    while (isspace((unsigned char)*expected) || *expected == '(') expected++;
    int want = toupper((unsigned char)expected[0]);
    int got = mc_extract_choice(answer, nchoices);
    return got && got == want;
}
