/* Unit tests for cpuprof's pure parts: RAPL wrap arithmetic, powercap zone discovery and
 * accumulation on a fake tree, /proc/<pid>/stat parsing on fixture lines (expected values
 * read off the fixture by hand, field numbers per proc(5)), and a live cross-check of
 * /proc/self/stat against /proc/self/status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../mc_test.h"
#include "cpuprof_proc.h"
#include "cpuprof_rapl.h"

static void rapl_delta_arithmetic(void)
{
    MC_CHECK(mc_rapl_delta(100, 250, 1000) == 150, "no wrap");
    MC_CHECK(mc_rapl_delta(250, 250, 1000) == 0, "no change");
    /* 900 -> top (1000) is 100, then 0 -> 50 is 50. */
    MC_CHECK(mc_rapl_delta(900, 50, 1000) == 150, "wrap: %llu", (unsigned long long)mc_rapl_delta(900, 50, 1000));
    MC_CHECK(mc_rapl_delta(1000, 0, 1000) == 0, "wrap exactly at the top");
    MC_CHECK(mc_rapl_delta(900, 50, 0) == 0, "unknown range: a drop counts nothing");
    MC_CHECK(mc_rapl_delta(5000, 50, 1000) == 0, "reading above the range: counts nothing");
    /* A real range (Intel package: 262143328850 uJ). */
    MC_CHECK(mc_rapl_delta(262143000000ull, 1000000ull, 262143328850ull) == 328850ull + 1000000ull, "real range");
}

static char root[64];

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    mkdir(p, 0755);
    *slash = '/';
    FILE *f = fopen(p, "w");
    if (!f) { perror(p); exit(1); }
    fputs(text, f);
    fclose(f);
}

static void rapl_fake_powercap(void)
{
    snprintf(root, sizeof root, "/tmp/mc-powercap-XXXXXX");
    MC_CHECK(mkdtemp(root) != NULL, "mkdtemp");
    put("intel-rapl:0/name", "package-0\n");
    put("intel-rapl:0/energy_uj", "1000\n");
    put("intel-rapl:0/max_energy_range_uj", "262143328850\n");
    put("intel-rapl:0:0/name", "dram\n");
    put("intel-rapl:0:0/energy_uj", "500\n");
    put("intel-rapl:0:0/max_energy_range_uj", "65712999613\n");
    put("intel-rapl:1/name", "psys\n");
    put("intel-rapl:1/energy_uj", "7\n");
    put("intel-rapl/name", "not a zone\n");          /* the control type dir: ignored */
    put("intel-rapl:2/name", "no energy file\n");    /* unreadable zone: skipped */
    put("other:0/energy_uj", "1\n");

    struct mc_rapl_zone z[MC_RAPL_MAX_ZONES];
    const char *why = "";
    int n = mc_rapl_scan(root, z, MC_RAPL_MAX_ZONES, &why);
    MC_CHECK(n == 3, "zones found: %d (%s)", n, why);
    if (n != 3) return;
    MC_CHECK(!strcmp(z[0].name, "package-0"), "zone 0 %s", z[0].name);
    MC_CHECK(!strcmp(z[1].name, "package-0.dram"), "zone 1 %s", z[1].name);
    MC_CHECK(!strcmp(z[2].name, "psys"), "zone 2 %s", z[2].name);
    MC_CHECK(z[0].max_range_uj == 262143328850ull && z[1].max_range_uj == 65712999613ull && z[2].max_range_uj == 0,
             "ranges %llu %llu %llu", (unsigned long long)z[0].max_range_uj, (unsigned long long)z[1].max_range_uj,
             (unsigned long long)z[2].max_range_uj);
    for (int i = 0; i < 3; i++) MC_CHECK(mc_rapl_read(&z[i]) == 0 && z[i].total_uj == 0, "baseline %d", i);
    put("intel-rapl:0/energy_uj", "5000\n");
    MC_CHECK(mc_rapl_read(&z[0]) == 0 && z[0].total_uj == 4000, "package total %llu", (unsigned long long)z[0].total_uj);
    put("intel-rapl:0/energy_uj", "100\n"); /* wrapped */
    MC_CHECK(mc_rapl_read(&z[0]) == 0 && z[0].total_uj == 4000 + (262143328850ull - 5000) + 100,
             "after wrap %llu", (unsigned long long)z[0].total_uj);
    put("intel-rapl:0:0/energy_uj", "65712999000\n");
    put("intel-rapl:0:0/energy_uj", "65712999000\n");
    MC_CHECK(mc_rapl_read(&z[1]) == 0 && z[1].total_uj == 65712999000ull - 500, "dram %llu", (unsigned long long)z[1].total_uj);
    put("intel-rapl:0:0/energy_uj", "12\n");
    MC_CHECK(mc_rapl_read(&z[1]) == 0 && z[1].total_uj == 65712999000ull - 500 + 613 + 12, "dram wrap %llu",
             (unsigned long long)z[1].total_uj);
    put("intel-rapl:0/energy_uj", "garbage\n");
    uint64_t before = z[0].total_uj;
    MC_CHECK(mc_rapl_read(&z[0]) == -1 && z[0].total_uj == before, "unparsable reading rejected, total kept");

    n = mc_rapl_scan("/nonexistent/powercap", z, MC_RAPL_MAX_ZONES, &why);
    MC_CHECK(n == 0 && strstr(why, "no powercap directory"), "missing root: %d %s", n, why);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) printf("# could not remove %s\n", root);
}

static char *slurp(const char *name)
{
    char p[512];
    const char *r = getenv("MOECAP_ROOT");
    snprintf(p, sizeof p, "%s/tests/cpuprof/fixtures/%s", r ? r : ".", name);
    FILE *f = fopen(p, "r");
    if (!f) { printf("# cannot open %s\n", p); return NULL; }
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void proc_stat_fixtures(void)
{
    struct mc_proc_stat st;
    /* Command "my (odd) prog" holds spaces and parentheses; rsslim (field 25) is 2^64-1. */
    MC_CHECK(mc_proc_parse_stat(slurp("stat-odd-comm.txt"), &st) == 0, "odd comm parses");
    MC_CHECK(st.minflt == 1500 && st.majflt == 7, "faults %llu %llu", (unsigned long long)st.minflt, (unsigned long long)st.majflt);
    MC_CHECK(st.utime_ticks == 250 && st.stime_ticks == 31, "ticks %llu %llu", (unsigned long long)st.utime_ticks,
             (unsigned long long)st.stime_ticks);
    MC_CHECK(st.num_threads == 5 && st.rss_pages == 2048, "threads %lld rss %lld", (long long)st.num_threads, (long long)st.rss_pages);
    MC_CHECK(mc_proc_parse_stat(slurp("stat-kthread.txt"), &st) == 0, "kernel thread parses");
    MC_CHECK(st.stime_ticks == 12 && st.num_threads == 1 && st.rss_pages == 0, "kthread values");
    MC_CHECK(mc_proc_parse_stat(slurp("stat-truncated.txt"), &st) == -1, "truncated line rejected");
    MC_CHECK(mc_proc_parse_stat("", &st) == -1, "empty");
    MC_CHECK(mc_proc_parse_stat("4242 noparen S 1 2 3", &st) == -1, "no command field");
    MC_CHECK(mc_proc_parse_stat("1 (x) S 1 1 1 0 -1 0 a b c d e f g h i j k l m n o p", &st) == -1, "letters in numbers");
    MC_CHECK(mc_proc_parse_stat(NULL, &st) == -1, "NULL");
}

static void proc_stat_live(void)
{
    struct mc_proc_stat st;
    MC_CHECK(mc_proc_read_stat("/proc/self/stat", &st) == 0, "live read");
    MC_CHECK(st.num_threads == 1, "this test is single-threaded: %lld", (long long)st.num_threads);
    /* /proc/self/status VmRSS (kB) is the same figure in other units. */
    FILE *f = fopen("/proc/self/status", "r");
    long rss_kb = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &rss_kb) == 1) break;
    if (f) fclose(f);
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    MC_CHECK(rss_kb > 0 && labs(st.rss_pages * page_kb - rss_kb) <= rss_kb / 4 + 64,
             "rss %lld pages x %ld kB vs VmRSS %ld kB", (long long)st.rss_pages, page_kb, rss_kb);
    MC_CHECK(mc_proc_read_stat("/nonexistent/stat", &st) == -1, "missing file");
}

int main(void)
{
    MC_RUN(rapl_delta_arithmetic);
    MC_RUN(rapl_fake_powercap);
    MC_RUN(proc_stat_fixtures);
    MC_RUN(proc_stat_live);
    return MC_TEST_EXIT();
}
