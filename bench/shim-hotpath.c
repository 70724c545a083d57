/* Where a traced call's time goes, seen from the calling thread (bench/shim-hotpath.sh).
 *   shim-hotpath N [PACE_NS]
 * Makes N calls of a 2x2x2 cblas_sgemm (link it against a no-op BLAS to see the shim
 * alone) and prints one line of key=value pairs about the calling thread during the loop:
 *   ns_call      wall time per call (paced: of the calls alone, one clock read included)
 *   cpu_ns_call  this thread's CPU time per call (CLOCK_THREAD_CPUTIME_ID; -1 when paced)
 *   minflt_k     minor page faults of this thread per 1000 calls (/proc/thread-self/stat)
 *   majflt_k     major page faults per 1000 calls
 *   vcsw_k       voluntary context switches per 1000 calls (the thread slept: a lock, a
 *                blocking system call, dirty-page throttling)
 *   ivcsw_k      involuntary context switches per 1000 calls (preempted)
 * PACE_NS > 0 spins that long between calls (a program doing work between GEMMs, as a
 * real decode step does) so the trace is produced at a realistic rate instead of as fast
 * as the shim can go. The loop is marked by two failing write(-1, "shim-hotpath: loop
 * begins"/"... ends") system calls: strace -f shows everything this thread did between
 * them. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct thread_stats { unsigned long minflt, majflt, vcsw, ivcsw; };

static void read_stats(struct thread_stats *s)
{
    memset(s, 0, sizeof *s);
    char buf[4096];
    FILE *f = fopen("/proc/thread-self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        /* fields after the command name (which may hold spaces): state is field 3,
         * minflt 10, majflt 12 */
        char *p = strrchr(buf, ')');
        if (p) {
            unsigned long v[16] = {0};
            int i = 0;
            for (char *tok = strtok(p + 2, " "); tok && i < 16; tok = strtok(NULL, " ")) v[i++] = strtoul(tok, NULL, 10);
            s->minflt = v[7];
            s->majflt = v[9];
        }
    }
    f = fopen("/proc/thread-self/status", "r");
    if (f) {
        while (fgets(buf, sizeof buf, f)) {
            if (!strncmp(buf, "voluntary_ctxt_switches:", 24)) s->vcsw = strtoul(buf + 24, NULL, 10);
            if (!strncmp(buf, "nonvoluntary_ctxt_switches:", 27)) s->ivcsw = strtoul(buf + 27, NULL, 10);
        }
        fclose(f);
    }
}

/* A system call strace shows with this text (descriptor -1: it fails, writes nothing). */
static void marker(const char *text)
{
    ssize_t r = write(-1, text, strlen(text));
    (void)r;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: shim-hotpath N [PACE_NS]\n"); return 2; }
    long n = atol(argv[1]);
    long pace = argc > 2 ? atol(argv[2]) : 0;
    if (n <= 0 || pace < 0) { fprintf(stderr, "shim-hotpath: N must be > 0, PACE_NS >= 0\n"); return 2; }
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    /* warm-up: the thread's first record, the call-site cache */
    for (int i = 0; i < 1000; i++) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    struct thread_stats s0, s1;
    read_stats(&s0);
    marker("shim-hotpath: loop begins");
    uint64_t w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t in_calls = 0, t_prev = w0;
    for (long i = 0; i < n; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
        if (pace) {
            /* the call's own time: from the end of the previous spin to now (one clock
             * read included, which the run without the shim shows) */
            uint64_t t = clock_ns(CLOCK_MONOTONIC), t_end;
            in_calls += t - t_prev;
            do t_end = clock_ns(CLOCK_MONOTONIC); while (t_end - t < (uint64_t)pace);
            t_prev = t_end;
        }
    }
    uint64_t w1 = clock_ns(CLOCK_MONOTONIC), c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    marker("shim-hotpath: loop ends");
    read_stats(&s1);
    double k = 1000.0 / (double)n;
    /* paced: the thread's CPU time is mostly the spinning; only wall time per call */
    printf("ns_call=%.1f cpu_ns_call=%.1f minflt_k=%.3f majflt_k=%.3f vcsw_k=%.3f ivcsw_k=%.3f\n",
           (double)(pace ? in_calls : w1 - w0) / (double)n, pace ? -1.0 : (double)(c1 - c0) / (double)n,
           (double)(s1.minflt - s0.minflt) * k, (double)(s1.majflt - s0.majflt) * k,
           (double)(s1.vcsw - s0.vcsw) * k, (double)(s1.ivcsw - s0.ivcsw) * k);
    return 0;
}
