/* Test program for the cpuprof tests: makes one BLAS call (cpuprof samples only processes
 * that record an event), touches 64 MiB, spins the CPU for ~0.4 s and prints a
 * deterministic checksum. Options: "fork" = also run a child that lives 0.3 s (spins 0.1 s);
 * "wrap FILE VALUE" = halfway through, write VALUE into FILE (a fake RAPL energy_uj). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t spin(double seconds)
{
    uint64_t x = 88172645463325252ull, n = 0;
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; n++; }
    return n ? x & 1 : 0;
}

/* One recorded event: a 2x2 GEMM through the interposed CBLAS. */
static void one_gemm(void)
{
    double a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0};
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2);
    if (c[3] != 4) abort();
}

int main(int argc, char **argv)
{
    one_gemm();
    size_t bytes = 64u << 20;
    unsigned char *m = malloc(bytes);
    if (!m) return 1;
    for (size_t i = 0; i < bytes; i++) m[i] = (unsigned char)(i * 31u);
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes; i += 4096) sum += m[i];
    pid_t child = -1;
    if (argc > 1 && !strcmp(argv[1], "fork")) {
        fflush(stdout);
        child = fork();
        /* The child spins 0.1 s, then waits 0.2 s: its sampler runs at nice 19 and, on a
         * machine whose cores all spin (parent, child, other load), waits longer than the
         * child lives; the test is about whose /proc it samples, not about starvation. */
        if (child == 0) { one_gemm(); spin(0.1); usleep(200000); exit(0); } /* exit, not _exit: the shim flushes at exit */
    }
    spin(0.2);
    if (argc > 3 && !strcmp(argv[1], "wrap")) {
        FILE *f = fopen(argv[2], "w");
        if (f) { fprintf(f, "%s\n", argv[3]); fclose(f); }
    }
    spin(0.2);
    if (child > 0) waitpid(child, NULL, 0);
    printf("checksum %llu\n", (unsigned long long)sum);
    free(m);
    return 0;
}
