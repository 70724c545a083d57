/* Preloaded into moe-ref by tests/engine/test_threads_cpu.py: when the process exits, this
 * thread sleeps 100 ms and prints how much CPU time the whole process used meanwhile. The
 * only threads that can use any then are the BLAS library's workers (moe-ref's own helpers
 * are gone), so the figure tells whether OpenBLAS's workers still spin after moe-ref's last
 * threaded BLAS call (~100 ms: they spin 2^28 cycles by default) or sleep (~0). */
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

static double process_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec * 1e-6 +
           (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec * 1e-6;
}

/* runs before OpenBLAS's own destructor (which stops its workers): libraries are finalised
 * in the reverse order of their initialisation, and a preloaded library is initialised
 * after the libraries the program links */
__attribute__((destructor)) static void idle_cpu_at_exit(void)
{
    double c0 = process_cpu_s();
    struct timespec ts = { 0, 100000000 };
    nanosleep(&ts, NULL);
    fprintf(stderr, "blas-idle-cpu-ms %.1f\n", (process_cpu_s() - c0) * 1e3);
}
