/* The BLAS library alone on one decode step's weight products: replays the products of a
 * batch-1 decode step of bench/engine-bandwidth.sh's model (per layer q 1024x1024, k and v
 * 256x1024, o 1024x1024, router 8x1024, two experts' gate and up 1536x1024 and down
 * 1024x1536; then lm_head 32000x1024), each on fresh weights taken in turn from a weights
 * file (so nothing is served from cache), one BLAS thread, and prints per call form the time
 * per step (wall and this thread's CPU time: on a shared machine CPU time is the steadier
 * figure) and the weight GB/s per shape. Forms: a plain read of the weights (the floor),
 * cblas_sgemv, cblas_sgemm with one row (moe-ref --gemm), and cblas_sgemm with m rows (-m M:
 * a batch's expert products). Memory: the file mapped (MAP_POPULATE, page cache, 4 KiB
 * pages, as moe-ref maps it), or copied into anonymous memory with or without transparent
 * huge pages.
 *
 *   cc -O2 bench/blas-probe.c -o /tmp/blas-probe -lopenblas
 *   /tmp/blas-probe MODEL.safetensors [file|anon|thp] [steps (10)] [-m M]
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static double secs(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float readsum(const float *w, size_t n)
{
    float s[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) s[j] += w[i + j];
    float t = 0;
    for (int j = 0; j < 16; j++) t += s[j];
    return t;
}

struct shape { const char *name; int out, in, per_layer; };

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.safetensors [file|anon|thp] [steps] [-m M]\n", argv[0]); return 2; }
    const char *mem = argc > 2 && argv[2][0] != '-' ? argv[2] : "file";
    int steps = argc > 3 && argv[3][0] != '-' ? atoi(argv[3]) : 10, m = 1;
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "-m")) m = atoi(argv[i + 1]);
    if (steps < 1 || m < 1 || m > 64) { fprintf(stderr, "bad steps or -m\n"); return 2; }
    openblas_set_num_threads(1);
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[1]); return 2; }
    size_t sz = (size_t)st.st_size & ~(size_t)4095;
    float *base;
    if (!strcmp(mem, "file")) {
        base = mmap(NULL, sz, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    } else {
        base = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base != MAP_FAILED) {
            madvise(base, sz, !strcmp(mem, "thp") ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
            for (size_t off = 0; off < sz;) {
                ssize_t r = pread(fd, (char *)base + off, sz - off > (1u << 26) ? (1u << 26) : sz - off, (off_t)off);
                if (r <= 0) break;
                off += (size_t)r;
            }
        }
    }
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    static const struct shape S[] = {
        {"q", 1024, 1024, 1}, {"k", 256, 1024, 1}, {"v", 256, 1024, 1}, {"o", 1024, 1024, 1},
        {"router", 8, 1024, 1}, {"gate", 1536, 1024, 2}, {"up", 1536, 1024, 2},
        {"down", 1024, 1536, 2}, {"lm_head", 32000, 1024, 0}};
    enum { NS = sizeof S / sizeof S[0] };
    float *x = aligned_alloc(64, 64 * 32000 * sizeof(float)), *y = aligned_alloc(64, 64 * 32000 * sizeof(float));
    for (int i = 0; i < 64 * 32000; i++) x[i] = 1e-3f * (float)(i % 7);
    const char *form[] = {"read", "sgemv", "sgemm m=1", "sgemm m=M"};
    printf("memory: %s; %d steps; %.1f MB of weights per step\n", mem, steps, 517.3);
    for (int k = 0; k < 4; k++) {
        if (k == 3 && m == 1) continue;
        int rows = k == 3 ? m : 1;
        double t_shape[NS] = {0}, b_shape[NS] = {0}, bytes = 0;
        double w0 = secs(CLOCK_MONOTONIC), c0 = secs(CLOCK_THREAD_CPUTIME_ID);
        size_t off = 0;
        float sink = 0;
        for (int s = 0; s < steps; s++)
            for (int l = 0; l <= 8; l++)
                for (int j = 0; j < NS; j++) {
                    int reps = l < 8 ? S[j].per_layer : (S[j].per_layer == 0);
                    for (int r = 0; r < reps; r++) {
                        size_t n = (size_t)S[j].out * (size_t)S[j].in;
                        if ((off + n) * sizeof(float) > sz) off = 0;
                        const float *W = base + off;
                        off += n;
                        double t = secs(CLOCK_MONOTONIC);
                        if (k == 0) sink += readsum(W, n);
                        else if (k == 1)
                            cblas_sgemv(CblasRowMajor, CblasNoTrans, S[j].out, S[j].in, 1, W, S[j].in, x, 1, 0, y, 1);
                        else
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, S[j].out, S[j].in, 1, x,
                                        S[j].in, W, S[j].in, 0, y, S[j].out);
                        t_shape[j] += secs(CLOCK_MONOTONIC) - t;
                        b_shape[j] += (double)n * 4;
                        bytes += (double)n * 4;
                    }
                }
        double w = secs(CLOCK_MONOTONIC) - w0, c = secs(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("%-10s%s step %.1f ms wall, %.1f ms CPU; %.1f GB/s per CPU second |", form[k],
               k == 3 ? "" : "", 1e3 * w / steps, 1e3 * c / steps, bytes / c / 1e9);
        if (k == 3) printf(" (M = %d)", m);
        for (int j = 0; j < NS; j++) printf(" %s %.1f", S[j].name, b_shape[j] / t_shape[j] / 1e9);
        printf("%s\n", sink == 12345.0f ? " " : "");
    }
    return 0;
}
