/* STREAM-style bandwidth probe for bench/engine-bandwidth.sh: triad a = b + s*c over
 * arrays far larger than the caches (STREAM counts 3 x 8 bytes per element, no
 * write-allocate), plus a read-only sum (the access pattern of reading weights).
 * Best of N repetitions, OpenMP threads = OMP_NUM_THREADS. Prints "triad_GBps X" and
 * "read_GBps Y". Build: cc -O2 -fopenmp engine-stream-triad.c -o stream-triad */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t n = (size_t)(argc > 1 ? atol(argv[1]) : 1L << 25);   /* doubles per array */
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) { fprintf(stderr, "stream-triad: out of memory\n"); return 1; }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1.0 + (double)(i & 7); c[i] = 2.0; }
    double best_t = 1e30, best_r = 1e30, s = 3.0, sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        double t1 = now();
        double sum = 0;
        /* 8 independent partial sums so the adds are not latency-bound */
#pragma omp parallel for schedule(static) reduction(+ : sum)
        for (size_t i = 0; i < n / 8; i++) {
            const double *p = b + 8 * i;
            sum += ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        }
        double t2 = now();
        sink += sum + a[r];
        if (t1 - t0 < best_t) best_t = t1 - t0;
        if (t2 - t1 < best_r) best_r = t2 - t1;
    }
    printf("threads %d\narray_MB %.0f\n", omp_get_max_threads(), n * 8.0 / 1e6);
    printf("triad_GBps %.2f\nread_GBps %.2f\n", 3.0 * 8.0 * n / best_t / 1e9, 8.0 * n / best_r / 1e9);
    if (sink == 0.12345) printf("#\n");   /* keeps the loops from being optimised away */
    free(a); free(b); free(c);
    return 0;
}
