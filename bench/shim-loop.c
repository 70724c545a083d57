/* Tight loop of tiny GEMMs for bench/shim-overhead.sh: prints ns per call.
 *   shim-loop N [cblas|sgemm_] [DEPTH] [BATCHES]   N calls of a 2x2x2 product after 10%
 *   warm-up, issued DEPTH nested function calls below main (default 0), so call-site
 *   capture walks a realistic stack. With BATCHES > 1 the N calls are timed in that many
 *   batches and the median batch's ns per call is printed: on a shared machine a batch
 *   that was preempted then does not count. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sgemm_(const char *, const char *, const int *, const int *, const int *, const float *, const float *,
            const int *, const float *, const int *, const float *, float *, const int *);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long g_n, g_batches = 1;
static int g_f77;
static double run_loop(void);

/* noinline + the volatile add keep every level a real frame */
__attribute__((noinline)) static double nest(int depth)
{
    static volatile int sink;
    if (depth <= 0) return run_loop();
    double r = nest(depth - 1);
    sink += depth;
    return r;
}

int main(int argc, char **argv)
{
    g_n = argc > 1 ? atol(argv[1]) : 1000000;
    g_f77 = argc > 2 && !strcmp(argv[2], "sgemm_");
    int depth = argc > 3 ? atoi(argv[3]) : 0;
    if (argc > 4 && atol(argv[4]) > 1) g_batches = atol(argv[4]);
    printf("%.2f\n", nest(depth));
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run_loop(void)
{
    long n = g_n, nb = g_batches, per = n / nb > 0 ? n / nb : 1;
    int f77 = g_f77;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    int two = 2;
    float one = 1, zero = 0;
    double *t = calloc((size_t)nb, sizeof *t);
    if (!t) return -1;
    for (long bi = -1; bi < nb; bi++) {          /* batch -1: warm-up (10% of N) */
        long cnt = bi < 0 ? n / 10 : per;
        double t0 = now();
        for (long i = 0; i < cnt; i++) {
            if (f77) sgemm_("N", "N", &two, &two, &two, &one, a, &two, b, &two, &zero, c, &two);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
        }
        if (bi >= 0) t[bi] = (now() - t0) / (double)cnt;
    }
    qsort(t, (size_t)nb, sizeof *t, cmp_double);
    double r = t[nb / 2];
    free(t);
    return r;
}
