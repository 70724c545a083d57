/* Preloaded into moe-ref by tests/engine/test_threads_cpu.py: cblas_sgemm calls whose output
 * width N equals $MR_TEST_SLOW_N sleep $MR_TEST_SLOW_MS ms first (off the CPU), then run the
 * real call. Makes the products a task waits for slow without making them use CPU, as when
 * the thread running them has lost its core, so the test can see whether the waiting thread
 * spins (uses CPU all that time) or sleeps. */
#include <cblas.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                         const blasint, const blasint, const blasint, const float, const float *,
                         const blasint, const float *, const blasint, const float, float *, const blasint);

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const blasint m, const blasint n, const blasint k, const float alpha, const float *a,
                 const blasint lda, const float *b, const blasint ldb, const float beta, float *c,
                 const blasint ldc)
{
    static sgemm_fn real;
    if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    const char *slow_n = getenv("MR_TEST_SLOW_N"), *slow_ms = getenv("MR_TEST_SLOW_MS");
    if (slow_n && slow_ms && n == atoi(slow_n)) {
        long ms = atol(slow_ms);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
