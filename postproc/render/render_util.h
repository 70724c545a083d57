/* Helpers shared by the Markdown and HTML renderers: safe lookups in report.json (absent
 * or mistyped fields read as absent), one formatting rule per kind of figure so both
 * outputs print the same text, escaping, and the small computations the charts need. */
#ifndef MOECAP_RENDER_UTIL_H
#define MOECAP_RENDER_UTIL_H
#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#define MC_ABSENT "\xe2\x80\x94" /* em dash: shown for every absent figure */

/* Dotted path lookup ("aggregate.step_time_s.p50"); NULL when any part is absent. */
const cJSON *mc_rj(const cJSON *o, const char *path);
/* 1 and *v set when the path holds a finite number, else 0. */
int mc_rj_num(const cJSON *o, const char *path, double *v);
/* 1 and *v set when j is a finite number (a bare cJSON item, e.g. an array element). */
int mc_json_finite(const cJSON *j, double *v);
/* The string at path, or NULL. */
const char *mc_rj_str(const cJSON *o, const char *path);
/* 1 when path holds true, 0 when false, -1 when absent / not a bool. */
int mc_rj_bool(const cJSON *o, const char *path);

enum mc_fmt {
    MC_F_PCT,      /* fraction -> "12.34 %" */
    MC_F_TIME,     /* seconds -> "1.5 s" / "12.3 ms" / "45.6 µs" / "789 ns" */
    MC_F_BYTES,    /* "1.235 GB" (decimal prefixes) */
    MC_F_FLOP,     /* "1.235 GFLOP" */
    MC_F_BPS,      /* bytes/s -> "3.35 TB/s" */
    MC_F_FLOPS,    /* FLOP/s -> "989.4 TFLOPS" */
    MC_F_COUNT,    /* integer "1234" */
    MC_F_RATE,     /* "1234.5" (tokens/s) */
    MC_F_SI,       /* "900 k", "1.2 G" (parameter counts) */
    MC_F_NUM,      /* "%.4g" */
    MC_F_TEXT      /* not a number: a table row of this kind shows the string at its path */
};
/* Formats v into buf (always NUL-terminated) and returns buf. */
char *mc_fmt(char *buf, size_t len, enum mc_fmt kind, double v);
/* Formats the number at path, or MC_ABSENT when absent. */
char *mc_fmt_path(char *buf, size_t len, const cJSON *o, const char *path, enum mc_fmt kind);

/* Escaping for HTML text and attribute values (also SVG): & < > " ' and control chars. */
void mc_html_esc(FILE *out, const char *s);
/* Escaping for a Markdown table cell: | \ ` * _ [ ] < > and newlines. */
void mc_md_esc(FILE *out, const char *s);

/* Where the hardware peaks came from (report.hardware.measured), as both renderers word it;
 * *cls (may be NULL) gets a short class name: "measured", "spec" or "unknown". */
const char *mc_peaks_source(const cJSON *report, const char **cls);
/* The level a note is shown with: "warning", "error", else "info". */
const char *mc_note_level(const cJSON *note);

/* Nearest-rank percentile of a sorted array (q in [0,100]); n > 0. */
double mc_percentile_sorted(const double *v, size_t n, double q);

/* Per-step series pulled out of report.steps for the charts; arrays have n entries,
 * NaN where a step lacks the value. kind: 'p' prefill, 'd' decode, 'm' mixed, '?' unknown. */
struct mc_step_series {
    size_t n;
    double *time_s, *s_mbu, *mbu, *s_mfu, *mfu;
    char *kind;
};
int mc_step_series_load(const cJSON *report, struct mc_step_series *s);
void mc_step_series_free(struct mc_step_series *s);

/* The client-side section (report.client.summary, docs/bench.md), shared by both
 * renderers so they show the same rows: key/value rows, then a latency table of
 * MC_CLIENT_LATENCIES rows x MC_DIST_COLS columns. */
struct mc_kv_row { const char *label, *path; enum mc_fmt fmt; };
#define MC_CLIENT_ROWS 10
#define MC_CLIENT_LATENCIES 4
#define MC_DIST_COLS 7
extern const struct mc_kv_row mc_client_rows[MC_CLIENT_ROWS];
/* The model facts both renderers show in their model table (report.model), in order. */
#define MC_MODEL_ROWS 7
extern const struct mc_kv_row mc_model_rows[MC_MODEL_ROWS];
extern const char *const mc_client_latency_labels[MC_CLIENT_LATENCIES]; /* TTFT, TPOT, ITL, E2EL */
extern const char *const mc_dist_col_names[MC_DIST_COLS];              /* count, mean, ... max */
extern const char *const mc_client_definitions; /* one sentence: the vLLM bench definitions */
/* Cell (latency, col) of the latency table formatted into buf; NULL when absent. */
const char *mc_client_latency_cell(char *buf, size_t len, const cJSON *summary, int latency, int col);

/* The server-side tables of the summary, shared by both renderers so they show the same
 * rows. Phase table: each row is one figure under "all steps", "prefill", "decode". */
#define MC_PHASE_COLS 3
struct mc_phase_row { const char *label, *path[MC_PHASE_COLS]; enum mc_fmt fmt; };
#define MC_PHASE_ROWS 8
extern const struct mc_phase_row mc_phase_rows[MC_PHASE_ROWS];
extern const char *const mc_phase_col_names[MC_PHASE_COLS]; /* all steps, prefill, decode */
/* Distribution table: MC_SERVER_DISTS rows x MC_DIST_COLS columns (count, mean, ... max). */
#define MC_SERVER_DISTS 5
extern const char *const mc_server_dist_labels[MC_SERVER_DISTS];
/* Cell (row, col) of the distribution table formatted into buf; NULL when absent.
 * The step-time count falls back to aggregate.steps when the report lacks it. */
const char *mc_server_dist_cell(char *buf, size_t len, const cJSON *report, int row, int col);
/* MoE-CAP compatibility table (report.moecap_compat): one row per phase. */
#define MC_COMPAT_PHASES 2
#define MC_COMPAT_COLS 5
extern const char *const mc_compat_phases[MC_COMPAT_PHASES];  /* prefill, decode */
extern const char *const mc_compat_col_names[MC_COMPAT_COLS]; /* steps, S-MBU (MoE-CAP formula), ... */
/* Cell (phase, col) of the compatibility table formatted into buf; NULL when absent. */
const char *mc_compat_cell(char *buf, size_t len, const cJSON *compat, int phase, int col);

#endif
