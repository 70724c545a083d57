/* Skinny products through every call form a CBLAS offers for Y = X . W^T with W stored
 * [out, in] (as in a safetensors file): m rows of X against 64 fresh 1536 x 1024 f32
 * weights (384 MiB, so nothing is served from cache), one BLAS thread, best of 3; prints
 * the weight GB/s of each form for m = 1..16:
 *   X.W^T      RowMajor NoTrans/Trans, m x out (what moe-ref calls)
 *   W.X^T      RowMajor NoTrans/Trans with the operands swapped, out x m
 *   sgemv/row  one cblas_sgemv per row of X (m calls: the bandwidth a one-row product gets)
 *   X.Wt (NN)  RowMajor NoTrans/NoTrans on a weight stored [in, out], alpha 1, beta 0
 *              (OpenBLAS's conditions for its small "direct" sgemm on AVX-512 kernels)
 * Run it with OPENBLAS_CORETYPE=SkylakeX etc., or against another BLAS through
 * LD_LIBRARY_PATH, to compare kernels (bench/results/llama-vs-moeref.md).
 *
 *   cc -O2 bench/blas-forms.c -o /tmp/blas-forms -lopenblas && /tmp/blas-forms
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    void (*set_threads)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (set_threads) set_threads(1);
    const int f = 1536, d = 1024, nw = 64;
    const size_t per = (size_t)f * d;
    float *W = malloc(per * nw * sizeof *W), *X = malloc(16 * (size_t)d * sizeof *X),
          *Y = malloc(16 * (size_t)f * sizeof *Y);
    if (!W || !X || !Y) { perror("malloc"); return 1; }
    for (size_t i = 0; i < per * nw; i++) W[i] = (float)(i % 7) * 0.01f;
    for (int i = 0; i < 16 * d; i++) X[i] = 0.5f;
    printf("| m | X.W^T GB/s | W.X^T GB/s | sgemv per row GB/s | X.Wt (NN) GB/s |\n| --- | --- | --- | --- | --- |\n");
    for (int m = 1; m <= 16; m *= 2) {
        double best[4] = {1e9, 1e9, 1e9, 1e9};
        for (int form = 0; form < 4; form++)
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                for (int w = 0; w < nw; w++) {
                    const float *Wi = W + per * (size_t)w;
                    if (form == 0)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, f, d, 1, X, d, Wi, d, 0, Y, f);
                    else if (form == 1)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, f, m, d, 1, Wi, d, X, d, 0, Y, m);
                    else if (form == 2)
                        for (int r = 0; r < m; r++)
                            cblas_sgemv(CblasRowMajor, CblasNoTrans, f, d, 1, Wi, d, X + (size_t)r * d, 1, 0,
                                        Y + (size_t)r * f, 1);
                    else
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, f, d, 1, X, d, Wi, f, 0, Y, f);
                }
                double t = now() - t0;
                if (t < best[form]) best[form] = t;
            }
        double bytes = (double)per * sizeof(float) * nw;
        printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", m, bytes / best[0] / 1e9, bytes / best[1] / 1e9,
               bytes / best[2] / 1e9, bytes / best[3] / 1e9);
    }
    return 0;
}
