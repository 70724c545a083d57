/* Helpers shared by the fuzz targets that run `moecap report` end to end (fuzz_report.c,
 * fuzz_ggml.c): a per-process temporary directory, files written from the input, the report
 * run with its expected error messages silenced, and report.json read back and checked. */
#ifndef MOECAP_TESTS_FUZZ_COMMON_H
#define MOECAP_TESTS_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "trace/utf8.h"

/* A new directory $TMPDIR/fuzz-<what>-XXXXXX (aborts when it cannot be made). */
static inline void fuzz_tmpdir(char *dir, size_t n, const char *what)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, n, "%s/fuzz-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
}

static inline int fuzz_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = n && fwrite(data, 1, n, f) != n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

/* The files of one report run: DIR/run/fuzz.mct (the trace), DIR/run/report.json, DIR/hw.json
 * (a profile with f32 and int8 peaks), made once per process (aborts when it cannot). */
struct fuzz_run { char dir[512], run[600], hw[600], trace[700], out_json[700]; };

static inline void fuzz_run_init(struct fuzz_run *r, const char *what)
{
    fuzz_tmpdir(r->dir, sizeof r->dir, what);
    snprintf(r->run, sizeof r->run, "%s/run", r->dir);
    snprintf(r->hw, sizeof r->hw, "%s/hw.json", r->dir);
    snprintf(r->trace, sizeof r->trace, "%s/fuzz.mct", r->run);
    snprintf(r->out_json, sizeof r->out_json, "%s/report.json", r->run);
    static const char hwj[] = "{\"name\":\"fuzz\",\"memory_bandwidth_Bps\":1e10,\"peak_flops\":{\"f32\":1e11,\"int8\":1e12}}\n";
    if (mkdir(r->run, 0700) != 0 || fuzz_write_file(r->hw, hwj, sizeof hwj - 1)) abort();
}

/* mc_cmd_report(argc, argv) with stderr silenced for the call only (the report's error
 * messages are expected on bad input; libFuzzer's own output shares the descriptor), unless
 * FUZZ_VERBOSE is set. */
static inline int fuzz_report_quiet(int argc, char **argv)
{
    int quiet = !getenv("FUZZ_VERBOSE"), saved = -1;
    if (quiet) {
        fflush(stderr);
        saved = dup(2);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, 2); close(null); }
    }
    int rc = mc_cmd_report(argc, argv);
    if (saved >= 0) { fflush(stderr); dup2(saved, 2); close(saved); }
    return rc;
}

/* report.json after a successful report: must be valid UTF-8 (JSON readers refuse anything
 * else) and parse as an object; aborts otherwise. The caller frees the tree. */
static inline cJSON *fuzz_read_report(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) abort();
    buf[n] = 0;
    fclose(f);
    if (!mc_utf8_valid(buf, (size_t)n)) abort();
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(j)) abort();
    return j;
}

#endif
