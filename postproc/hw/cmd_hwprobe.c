/* `moecap hwprobe`: measures this machine's streaming memory bandwidth and SGEMM FLOPS
 * and writes a hardware profile (docs/hardware.md) with "measured": true. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "commands.h"
#include "hw/hw_cost.h"
#include "hw/hwprobe.h"
#include "trace/safe_file.h"

static void usage(FILE *o)
{
    fprintf(o,
        "usage: moecap hwprobe [--out FILE] [--seconds S] [--threads T] [--sgemm-n N] [--name NAME]\n"
        "                      [--price-usd P] [--tdp-w W] [--idle-w W] [--cloud-usd-per-hour C]\n"
        "  Measures streaming memory bandwidth (triad, arrays >> last-level cache, T threads,\n"
        "  best of several runs) and SGEMM FLOPS (cblas_sgemm N x N x N) and writes a hardware\n"
        "  profile with \"measured\": true to FILE (default: stdout).\n"
        "  --seconds S   time budget for each of the two measurements (default 2)\n"
        "  --threads T   threads for both (default: online CPUs)\n"
        "  --sgemm-n N   matrix size (default 2048)\n"
        "  --name NAME   profile name (default: the stem of FILE, else \"measured\")\n"
        "  Cost-model fields cannot be measured (docs/cost.md): give them here, or they are written\n"
        "  as null (price, TDP, cloud price) or as stated defaults (lifetime 5 years, utilisation 0.5,\n"
        "  no host share; idle = 30 %% of TDP when --idle-w is not given), each with its source:\n"
        "  --price-usd P           what the machine (the measured CPUs) cost, USD\n"
        "  --tdp-w W               its TDP, W          --idle-w W   its idle draw, W\n"
        "  --cloud-usd-per-hour C  its rental price per hour, USD\n");
}

static int parse_pos(const char *s, double *v)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end || !(d > 0)) return -1;
    *v = d;
    return 0;
}

static void stem_of(const char *path, char *buf, size_t len)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, len, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
}

int mc_cmd_hwprobe(int argc, char **argv)
{
    const char *out_path = NULL, *name = NULL;
    double seconds = 2.0, threads_d = 0, n_d = 2048;
    /* cost fields: NaN = not given */
    double price = NAN, tdp = NAN, idle = NAN, cloud = NAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "moecap hwprobe: %s needs a value\n", a); usage(stderr); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--seconds")) {
            if (parse_pos(v, &seconds) || seconds > 3600) {
                fprintf(stderr, "moecap hwprobe: --seconds wants a number in (0, 3600], got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if (parse_pos(v, &threads_d) || threads_d > 4096 || threads_d != (int)threads_d) {
                fprintf(stderr, "moecap hwprobe: --threads wants an integer 1..4096, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--sgemm-n")) {
            if (parse_pos(v, &n_d) || n_d < 64 || n_d > 32768 || n_d != (int)n_d) {
                fprintf(stderr, "moecap hwprobe: --sgemm-n wants an integer 64..32768, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--price-usd") || !strcmp(a, "--tdp-w") || !strcmp(a, "--idle-w") ||
                   !strcmp(a, "--cloud-usd-per-hour")) {
            double x;
            if (parse_pos(v, &x) || x > 1e9) {
                fprintf(stderr, "moecap hwprobe: %s wants a positive number, got '%s'\n", a, v);
                return 2;
            }
            *(a[2] == 'p' ? &price : a[2] == 't' ? &tdp : a[2] == 'i' ? &idle : &cloud) = x;
        } else {
            fprintf(stderr, "moecap hwprobe: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!isnan(idle) && !isnan(tdp) && idle > tdp) {
        fprintf(stderr, "moecap hwprobe: --idle-w %g exceeds --tdp-w %g\n", idle, tdp);
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = threads_d > 0 ? (int)threads_d : (ncpu > 0 ? (int)ncpu : 1);

    char model[256] = "unknown CPU";
    if (mc_hw_cpu_model("/proc/cpuinfo", model, sizeof model))
        fprintf(stderr, "moecap hwprobe: no CPU model in /proc/cpuinfo\n");
    uint64_t mem = mc_hw_mem_total("/proc/meminfo");
    uint64_t llc = mc_hw_llc_bytes();
    /* Each array at least 4x the last-level cache and 64 MiB, so the triad streams DRAM. */
    uint64_t arr = llc * 4 > (64u << 20) ? llc * 4 : (64u << 20);
    if (mem && arr * 3 > mem / 4) arr = mem / 12;
    size_t elems = (size_t)(arr / sizeof(double));

    fprintf(stderr, "moecap hwprobe: %s, %d thread(s), LLC %llu KiB, memory %.1f GiB\n", model, threads,
            (unsigned long long)(llc >> 10), mem / 1073741824.0);
    fprintf(stderr, "moecap hwprobe: triad on 3 x %.0f MiB arrays for %.1f s (plain, then streaming stores) ...\n",
            arr / 1048576.0, seconds);
    /* Plain and streaming stores each get half the budget; the faster is the peak (which
     * one wins depends on the memory system and on load). */
    struct mc_hw_triad_result tr, tr_nt;
    if (mc_hw_triad(elems, threads, 0, seconds / 2, &tr) || mc_hw_triad(elems, threads, 1, seconds / 2, &tr_nt)) {
        fprintf(stderr, "moecap hwprobe: bandwidth measurement failed (out of memory or wrong result)\n");
        return 1;
    }
    fprintf(stderr, "moecap hwprobe:   plain stores best %.2f GB/s (%d runs), %s stores best %.2f GB/s (%d runs)\n",
            tr.best_Bps / 1e9, tr.reps, tr_nt.nt ? "non-temporal" : "plain", tr_nt.best_Bps / 1e9, tr_nt.reps);
    if (tr_nt.best_Bps > tr.best_Bps) tr = tr_nt;
    fprintf(stderr, "moecap hwprobe:   best %.2f GB/s (best %.4f s)\n", tr.best_Bps / 1e9, tr.best_s);
    fprintf(stderr, "moecap hwprobe: sgemm %d x %d x %d for %.1f s ...\n", (int)n_d, (int)n_d, (int)n_d, seconds);
    struct mc_hw_sgemm_result sr;
    if (mc_hw_sgemm((int)n_d, threads, seconds, &sr)) {
        fprintf(stderr, "moecap hwprobe: sgemm measurement failed (out of memory or wrong BLAS result)\n");
        return 1;
    }
    fprintf(stderr, "moecap hwprobe:   best %.2f GFLOPS (%d runs, best %.4f s)\n", sr.best_flops / 1e9, sr.reps, sr.best_s);

    char date[32];
    time_t t = time(NULL);
    struct tm tmv;
    strftime(date, sizeof date, "%Y-%m-%d", gmtime_r(&t, &tmv));
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    char stem[256] = "measured";
    if (name) snprintf(stem, sizeof stem, "%s", name);
    else if (out_path) stem_of(out_path, stem, sizeof stem);

    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "name", stem);
    cJSON_AddStringToObject(p, "kind", "cpu");
    char vendor[64] = "unknown";
    if (strstr(model, "AMD")) snprintf(vendor, sizeof vendor, "AMD");
    else if (strstr(model, "Intel")) snprintf(vendor, sizeof vendor, "Intel");
    cJSON_AddStringToObject(p, "vendor", vendor);
    cJSON_AddStringToObject(p, "model", model);
    cJSON_AddNumberToObject(p, "memory_bandwidth_Bps", tr.best_Bps);
    if (mem) cJSON_AddNumberToObject(p, "memory_bytes", (double)mem);
    else cJSON_AddNullToObject(p, "memory_bytes");
    cJSON *pf = cJSON_AddObjectToObject(p, "peak_flops");
    cJSON_AddNumberToObject(pf, "f32", sr.best_flops);
    mc_json_add_num_or_null(p, "tdp_w", tdp);   /* NaN: not given */
    mc_json_add_num_or_null(p, "price_usd", price);
    if (!isnan(idle)) cJSON_AddNumberToObject(p, "idle_w", idle);
    cJSON_AddNumberToObject(p, "lifetime_years", 5);
    cJSON_AddNumberToObject(p, "expected_utilisation", 0.5);
    if (!isnan(cloud)) cJSON_AddNumberToObject(p, "cloud_usd_per_hour", cloud);
    cJSON_AddNumberToObject(p, "threads", threads);
    cJSON *src = cJSON_AddObjectToObject(p, "source");
    char s[512];
    snprintf(s, sizeof s, "measured by moecap hwprobe on %s (host %s): triad a=b+s*c, 3 x %zu doubles, %d threads, best of %d, 24 B/element, %s stores",
             date, host, tr.elems, tr.threads, tr.reps, tr.nt ? "non-temporal" : "plain");
    cJSON_AddStringToObject(src, "memory_bandwidth_Bps", s);
    snprintf(s, sizeof s, "measured by moecap hwprobe on %s: MemTotal in /proc/meminfo", date);
    cJSON_AddStringToObject(src, "memory_bytes", s);
    snprintf(s, sizeof s, "measured by moecap hwprobe on %s (host %s): cblas_sgemm (OpenBLAS) %dx%dx%d, %d threads, best of %d, 2n^3 FLOPs",
             date, host, sr.n, sr.n, sr.n, sr.threads, sr.reps);
    cJSON_AddStringToObject(src, "peak_flops", s);
    cJSON_AddStringToObject(src, "tdp_w", isnan(tdp) ? "not measurable by hwprobe: fill in from the datasheet for the cost model (or --tdp-w)"
                                                     : "given on the command line (--tdp-w)");
    cJSON_AddStringToObject(src, "price_usd", isnan(price) ? "not measurable by hwprobe: fill in what the machine cost (or --price-usd)"
                                                           : "given on the command line (--price-usd)");
    cJSON_AddStringToObject(src, "idle_w", isnan(idle) ? "not given: the cost model assumes 30 % of tdp_w (or --idle-w)"
                                                       : "given on the command line (--idle-w)");
    cJSON_AddStringToObject(src, "lifetime_years", "default written by hwprobe (assumption: 5-year depreciation); edit for your machine");
    cJSON_AddStringToObject(src, "expected_utilisation", "default written by hwprobe (assumption: busy half of its life); edit for your machine");
    cJSON_AddStringToObject(src, "host_share", "not given: a CPU machine's DRAM price and power are not counted; add host_share to count them");
    if (!isnan(cloud)) cJSON_AddStringToObject(src, "cloud_usd_per_hour", "given on the command line (--cloud-usd-per-hour)");
    cJSON_AddStringToObject(src, "model", "/proc/cpuinfo");
    cJSON_AddBoolToObject(p, "measured", 1);
    cJSON *md = cJSON_AddObjectToObject(p, "measured_details");
    cJSON_AddStringToObject(md, "date", date);
    cJSON_AddNumberToObject(md, "triad_array_bytes", (double)tr.elems * sizeof(double));
    cJSON_AddNumberToObject(md, "triad_best_s", tr.best_s);
    cJSON_AddNumberToObject(md, "triad_reps", tr.reps);
    cJSON_AddStringToObject(md, "triad_stores", tr.nt ? "non-temporal" : "plain");
    cJSON_AddNumberToObject(md, "llc_bytes", (double)llc);
    cJSON_AddNumberToObject(md, "sgemm_n", sr.n);
    cJSON_AddNumberToObject(md, "sgemm_best_s", sr.best_s);
    cJSON_AddNumberToObject(md, "sgemm_reps", sr.reps);
    cJSON_AddNumberToObject(md, "threads", threads);

    char *text = cJSON_Print(p);
    cJSON_Delete(p);
    if (!text) { fprintf(stderr, "moecap hwprobe: out of memory\n"); return 1; }
    struct mc_out out;   /* a planted symlink at --out is replaced, not followed */
    if (out_path && mc_out_open(&out, out_path) != 0) {
        fprintf(stderr, "moecap hwprobe: cannot write %s: %s\n", out_path, strerror(errno));
        free(text);
        return 2;
    }
    FILE *o = out_path ? out.f : stdout;
    int bad = fprintf(o, "%s\n", text) < 0;
    if (out_path) bad |= mc_out_close(&out, !bad) != 0;
    else bad |= fflush(o) != 0;
    free(text);
    if (bad) { fprintf(stderr, "moecap hwprobe: write failed\n"); return 1; }
    if (out_path) fprintf(stderr, "moecap hwprobe: wrote %s\n", out_path);
    return 0;
}
