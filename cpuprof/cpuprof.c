/* cpuprof: CPU-side counters for libmoecap.so, registered with the shim core as module
 * "cpuprof". A low-rate sampler thread (MOECAP_SAMPLE_MS, default 100 ms; 0 = module off)
 * records, as MC_REC_COUNTER:
 *   - /proc/self/stat: CPU user/system time, RSS, threads, page faults (MC_CTR_PROC)
 *   - RAPL energy per powercap zone, wrap-corrected running totals (MC_CTR_RAPL)
 *   - PAPI counters per thread (event sets attached by tid), MC_CTR_PAPI
 * and samples once more at every flush point (exit, before fork). Sources that are not
 * available (no PMU in a VM, no powercap, permission) are reported once: one MC_REC_NOTE
 * and one MOECAP_LOG=info line; nothing else changes.
 *
 * PAPI is set up in the module's start hook, i.e. synchronously in the shim's constructor,
 * before main() and before the program has threads of its own. Initialising PAPI from the
 * sampler thread while the program ran (python3 importing numpy and torch: dlopen, heap
 * traffic) crashed the program in about 1 run in 3 (SIGSEGV, "malloc(): corrupted top
 * size"): PAPI_library_init reads /proc/self/maps twice (count, allocate, fill) without a
 * bound, so a library mapped in between overflows its array. No lock of ours can keep the
 * loader out (its lock is glibc's own), so the set-up runs where nothing loads libraries:
 * in the constructor nothing runs beside it but the core's writer thread. That
 * start hook costs one perf_event_open probe; libpapi is dlopen'ed and initialised only
 * when the kernel can count hardware events (not on VMs without a PMU), so most processes
 * never load it. Afterwards the sampler thread only creates, reads and releases event sets
 * of new and exited threads (perf_event_open, ioctl, read; no loading, no PAPI state set-up).
 * Everything that records (string interning, the note, RAPL, /proc) still waits for the
 * sampler's first period, and samples are taken only once the process has recorded an
 * event (mc_trace_started): helper processes that inherit LD_PRELOAD (shells, `ls`) and
 * record nothing leave no trace file, however long they live. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "shim_core.h"
#include "cpuprof_papi.h"
#include "cpuprof_proc.h"
#include "cpuprof_rapl.h"

#define DEFAULT_EVENTS "PAPI_TOT_CYC,PAPI_TOT_INS,PAPI_L3_TCM"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond;
static pthread_t g_thread;
static int g_thread_running, g_stop, g_inited, g_exited, g_is_child;
static long g_sample_ms = 100;
static long g_clk_tck = 100, g_page = 4096;
static int32_t g_sampler_tid;

static int g_proc_ok, g_papi_n;
static char g_papi_why[300];             /* why PAPI is not counting (set at start) */
static struct mc_rapl_zone g_zones[MC_RAPL_MAX_ZONES];
static int g_nzones;

enum { P_USER, P_SYS, P_RSS, P_THREADS, P_MINFLT, P_MAJFLT, P_N };
static const char *const p_names[P_N] = {"proc.cpu_user", "proc.cpu_system", "proc.rss", "proc.threads",
                                         "proc.minor_faults", "proc.major_faults"};
static const char *const p_units[P_N] = {"s", "s", "bytes", "count", "count", "count"};
static uint32_t p_name_id[P_N], p_unit_id[P_N];
static uint32_t rapl_name_id[MC_RAPL_MAX_ZONES], papi_name_id[MC_PAPI_MAX_EVENTS];
static uint32_t u_uj, u_count;

static void counter(uint16_t src, uint32_t name, uint32_t unit, int32_t tid, double v, int cumulative, uint64_t t)
{
    if (!name) return;
    struct mc_rec_counter *r = mc_rec_reserve(MC_REC_COUNTER, sizeof *r);
    if (!r) return;
    r->t_ns = t;
    r->value = v;
    r->name_str = name;
    r->unit_str = unit;
    r->tid = tid;
    r->device = -1;
    r->source = src;
    r->cumulative = (uint16_t)cumulative;
    mc_rec_commit(r);
}

static uint64_t g_papi_t;
static void papi_emit(int32_t tid, const long long *v, int n)
{
    for (int i = 0; i < n && i < MC_PAPI_MAX_EVENTS; i++)
        counter(MC_CTR_PAPI, papi_name_id[i], u_count, tid, (double)v[i], 1, g_papi_t);
}

/* PAPI: follow the process's threads (new ones start counting, gone ones are retired). */
static void papi_threads(void)
{
    int32_t alive[MC_PAPI_MAX_THREADS * 2];
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) && n < (int)(sizeof alive / sizeof alive[0])) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        if (*end || tid <= 0) continue;
        alive[n++] = (int32_t)tid;
    }
    closedir(d);
    mc_papi_retire_missing(alive, n, papi_emit);
    for (int i = 0; i < n; i++)
        if (alive[i] != g_sampler_tid && !mc_papi_tracked(alive[i])) mc_papi_track(alive[i]);
}

static void sample_locked(void)
{
    /* Samples describe a process's work: one that has recorded no event yet (a shell or
     * tool that inherited LD_PRELOAD, or a program before its first call) is not sampled,
     * so it leaves no trace file. Counters are totals since process start, so the first
     * sample still accounts for everything before it. */
    if (!mc_trace_started()) return;
    uint64_t t = mc_now_ns();
    if (g_proc_ok) {
        struct mc_proc_stat st;
        if (mc_proc_read_stat("/proc/self/stat", &st) == 0) {
            counter(MC_CTR_PROC, p_name_id[P_USER], p_unit_id[P_USER], -1, (double)st.utime_ticks / g_clk_tck, 1, t);
            counter(MC_CTR_PROC, p_name_id[P_SYS], p_unit_id[P_SYS], -1, (double)st.stime_ticks / g_clk_tck, 1, t);
            counter(MC_CTR_PROC, p_name_id[P_RSS], p_unit_id[P_RSS], -1, (double)st.rss_pages * g_page, 0, t);
            counter(MC_CTR_PROC, p_name_id[P_THREADS], p_unit_id[P_THREADS], -1, (double)st.num_threads, 0, t);
            counter(MC_CTR_PROC, p_name_id[P_MINFLT], p_unit_id[P_MINFLT], -1, (double)st.minflt, 1, t);
            counter(MC_CTR_PROC, p_name_id[P_MAJFLT], p_unit_id[P_MAJFLT], -1, (double)st.majflt, 1, t);
        }
    }
    for (int i = 0; i < g_nzones; i++)
        if (mc_rapl_read(&g_zones[i]) == 0)
            counter(MC_CTR_RAPL, rapl_name_id[i], u_uj, -1, (double)g_zones[i].total_uj, 1, t);
    if (g_papi_n) {
        g_papi_t = t;
        papi_threads();
        mc_papi_read_all(papi_emit);
    }
}

static void init_sources_locked(void)
{
    char note[1400], papi_txt[400], rapl_txt[500], proc_txt[120];
    g_clk_tck = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
    g_page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    for (int i = 0; i < P_N; i++) {
        p_name_id[i] = mc_intern(p_names[i]);
        p_unit_id[i] = mc_intern(p_units[i]);
    }
    u_uj = mc_intern("uJ");
    u_count = mc_intern("count");
    struct mc_proc_stat st;
    g_proc_ok = mc_proc_read_stat("/proc/self/stat", &st) == 0;
    snprintf(proc_txt, sizeof proc_txt, g_proc_ok ? "/proc: sampled every %ld ms" : "/proc: unavailable (/proc/self/stat unreadable)", g_sample_ms);

    if (g_is_child) {
        /* RAPL is machine-wide and PAPI's event sets belong to the parent: the parent keeps
         * recording both; the child adds only its own /proc figures. */
        snprintf(note, sizeof note, "cpuprof (forked child): %s; PAPI and RAPL are recorded by the parent process only", proc_txt);
    } else {
        if (g_papi_n) {
            int o = snprintf(papi_txt, sizeof papi_txt, "PAPI: counting per thread");
            for (int i = 0; i < g_papi_n && o < (int)sizeof papi_txt; i++) {
                char nm[80];
                snprintf(nm, sizeof nm, "papi.%.63s", mc_papi_event(i));
                papi_name_id[i] = mc_intern(nm);
                o += snprintf(papi_txt + o, sizeof papi_txt - (size_t)o, "%s%s", i ? "," : " ", mc_papi_event(i));
            }
        } else {
            snprintf(papi_txt, sizeof papi_txt, "PAPI: unavailable (%s)", g_papi_why);
        }
        const char *root = getenv("MOECAP_POWERCAP_ROOT");
        if (!root || !*root) root = "/sys/class/powercap";
        const char *rwhy = "";
        g_nzones = mc_rapl_scan(root, g_zones, MC_RAPL_MAX_ZONES, &rwhy);
        if (g_nzones) {
            int o = snprintf(rapl_txt, sizeof rapl_txt, "RAPL: %d zone(s)", g_nzones);
            for (int i = 0; i < g_nzones; i++) {
                char nm[80];
                snprintf(nm, sizeof nm, "rapl.%.63s", g_zones[i].name);
                rapl_name_id[i] = mc_intern(nm);
                mc_rapl_read(&g_zones[i]); /* baseline: totals count from here */
                if (o < (int)sizeof rapl_txt)
                    o += snprintf(rapl_txt + o, sizeof rapl_txt - (size_t)o, "%s%s", i ? ", " : " ", g_zones[i].name);
            }
        } else {
            snprintf(rapl_txt, sizeof rapl_txt, "RAPL: unavailable (%s)", rwhy);
        }
        snprintf(note, sizeof note, "cpuprof: %s; %s; %s", papi_txt, rapl_txt, proc_txt);
    }
    mc_note(MC_NOTE_INFO, "%s", note); /* also the one MOECAP_LOG=info line */
    g_inited = 1;
}

static void add_ms(struct timespec *ts, long ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static void *sampler_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "moecap-cpuprof", 0, 0, 0);
    g_sampler_tid = (int32_t)syscall(SYS_gettid);
    /* Background priority, like the shim's writer thread (shim_core.c): at nice 0 a
     * sample preempts the program's thread on its own core; samples carry their own
     * time stamps, so a late sample is still placed right. */
    setpriority(PRIO_PROCESS, (id_t)g_sampler_tid, 19);
    pthread_mutex_lock(&g_lock);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        add_ms(&next, g_sample_ms);
        while (!g_stop && pthread_cond_timedwait(&g_cond, &g_lock, &next) != ETIMEDOUT) {}
        if (g_stop) break;
        if (!g_inited) init_sources_locked();
        sample_locked();
        /* Fell behind (machine busy, stopped in a debugger): do not burst to catch up. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1) next = now;
    }
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

static void start_sampler(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cond, &ca);
    pthread_condattr_destroy(&ca);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the program's threads */
    g_thread_running = pthread_create(&g_thread, NULL, sampler_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!g_thread_running) mc_log_info("cpuprof: cannot start the sampler thread; CPU counters off");
}

/* Process exit (the family's exit hook, before the core's last write): stop the sampler,
 * take the last sample. */
static void cpuprof_exit(void)
{
    if (!g_sample_ms) return; /* MOECAP_SAMPLE_MS=0: the module is off */
    pthread_mutex_lock(&g_lock);
    g_stop = 1;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
    if (g_thread_running) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 2;
        if (pthread_timedjoin_np(g_thread, NULL, &dl) == 0) g_thread_running = 0;
    }
    pthread_mutex_lock(&g_lock);
    /* A sampler that never got its first period (a short process, or a busy machine where
     * a nice-19 thread waits) still leaves its note and one sample of a process that
     * recorded something. */
    if (!g_inited && !g_exited && mc_trace_started()) init_sources_locked();
    if (g_inited && !g_exited) sample_locked();
    g_exited = 1;
    pthread_mutex_unlock(&g_lock);
}

static void cpuprof_start(void)
{
    const char *v = getenv("MOECAP_SAMPLE_MS");
    if (v && *v) {
        char *end;
        long ms = strtol(v, &end, 10);
        if (*end || ms < 0 || ms > 60000)
            mc_log_info("cpuprof: ignoring MOECAP_SAMPLE_MS=%s (want 0..60000), using %ld", v, g_sample_ms);
        else
            g_sample_ms = ms;
    }
    if (!g_sample_ms) { mc_log_info("cpuprof: off (MOECAP_SAMPLE_MS=0)"); return; }
    /* PAPI here, synchronously, not in the sampler thread: see the header comment. A
     * preloaded library's constructor runs before main: the program has no threads yet
     * (the core's writer thread only writes rings), so nothing loads libraries meanwhile. */
    const char *ev = getenv("MOECAP_PAPI_EVENTS");
    if (!ev) ev = DEFAULT_EVENTS;
    if (!*ev || !strcmp(ev, "none")) snprintf(g_papi_why, sizeof g_papi_why, "off (MOECAP_PAPI_EVENTS=%s)", ev);
    else g_papi_n = mc_papi_init(ev, (int32_t)getpid(), g_papi_why, sizeof g_papi_why);
    start_sampler();
}

static void cpuprof_flush(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_inited && !g_exited) sample_locked();
    pthread_mutex_unlock(&g_lock);
}

static void cpuprof_after_fork_child(void)
{
    if (!g_sample_ms) return;
    /* Only this thread exists now; the lock may have been held by the parent's sampler. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&g_lock, &fresh, sizeof g_lock);
    mc_papi_forget();
    g_papi_n = 0;
    g_nzones = 0;
    g_thread_running = g_stop = g_inited = g_exited = 0;
    g_is_child = 1;
    start_sampler();
}

static const struct mc_family cpuprof_family = {
    .name = "cpuprof",
    .init = cpuprof_start,
    .flush = cpuprof_flush,
    .fork_child = cpuprof_after_fork_child,
    .exit = cpuprof_exit,
};

__attribute__((constructor(200))) static void cpuprof_register(void)
{
    mc_family_register(&cpuprof_family);
}
