/* A BLAS whose cblas_sgemm / sgemm_ return at once: linked instead of OpenBLAS by
 * bench/shim-overhead.sh so the per-call cost of the shim is measured without the noise
 * of a real GEMM. */
void cblas_sgemm(int o, int ta, int tb, int m, int n, int k, float al, const float *a, int lda,
                 const float *b, int ldb, float be, float *c, int ldc)
{
    (void)o; (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)al; (void)a; (void)lda;
    (void)b; (void)ldb; (void)be; (void)ldc;
    c[0] = 1.0f;
}
void sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k, const float *al,
            const float *a, const int *lda, const float *b, const int *ldb, const float *be, float *c,
            const int *ldc)
{
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)al; (void)a; (void)lda; (void)b; (void)ldb;
    (void)be; (void)ldc;
    c[0] = 1.0f;
}
