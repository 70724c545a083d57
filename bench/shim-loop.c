/* Tight loop of tiny GEMMs for bench/shim-overhead.sh: prints ns per call.
 *   shim-loop N [sgemm|sgemm_]    N calls of a 2x2x2 product, after 10% warm-up */
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

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int f77 = argc > 2 && !strcmp(argv[2], "sgemm_");
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    int two = 2;
    float one = 1, zero = 0;
    double t0 = 0;
    for (long i = -n / 10; i < n; i++) {
        if (i == 0) t0 = now();
        if (f77) sgemm_("N", "N", &two, &two, &two, &one, a, &two, b, &two, &zero, c, &two);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    }
    double t1 = now();
    printf("%.2f\n", (t1 - t0) / n);
    return c[0] == 1.0f ? 0 : 1;
}
