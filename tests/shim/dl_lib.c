/* Loaded by dl_main with dlopen(RTLD_LOCAL); it links the BLAS itself, the way Python
 * extension modules do, so the BLAS is not in the global scope. */
#include <cblas.h>
int dl_lib_run(int n)
{
    static float a[64 * 64], b[64 * 64], c[64 * 64];
    for (int i = 0; i < 64 * 64; i++) { a[i] = 1.0f; b[i] = 0.5f; }
    for (int i = 1; i <= n; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i, 64, 32, 1.0f, a, 32, b, 64, 0.0f, c, 64);
    return (int)c[0]; /* 32 * 0.5 = 16 */
}
