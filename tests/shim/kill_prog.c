/* Test program for tests/shim/test_capture_faults.py: THREADS threads call cblas_sgemm
 * without end, each call recognisable in the trace (m = 1, n = thread + 1, k = 2,
 * lda = 2 + the thread's call number; with m = 1 only the first k elements of A are read,
 * so any lda >= k is valid). After each call returns (its record committed) the thread
 * stores how many calls it has made into its slot of COUNTS, a file mapped shared: the
 * kernel keeps those stores when the process is killed, independently of the shim.
 * usage: kill_prog COUNTS THREADS [CALLS [hold]]  (CALLS: stop after that many calls per
 * thread and print "done"; with "hold", sleep until killed instead of exiting; default:
 * run until killed) */
#include <cblas.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static _Atomic uint64_t *g_counts;
static long g_calls = -1;
static int g_hold;

static void *worker(void *arg)
{
    long t = (long)arg;
    float a[2] = {1, 2}, b[2 * 8], c[8];
    for (int i = 0; i < 16; i++) b[i] = (float)i;
    for (uint64_t i = 0; g_calls < 0 || (long)i < g_calls; i++) {
        int n = (int)t + 1;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, n, 2, 1.0f, a, 2 + (int)i, b, n, 0.0f, c, n);
        atomic_store_explicit(&g_counts[t], i + 1, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: kill_prog COUNTS THREADS [CALLS]\n"); return 2; }
    int nt = atoi(argv[2]);
    if (nt < 1 || nt > 8) return 2;
    if (argc > 3) g_calls = atol(argv[3]);
    g_hold = argc > 4 && !strcmp(argv[4], "hold");
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0) { perror(argv[1]); return 1; }
    g_counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (g_counts == MAP_FAILED) { perror("mmap"); return 1; }
    pthread_t th[8];
    for (long t = 1; t < nt; t++) pthread_create(&th[t], NULL, worker, (void *)t);
    worker((void *)0);
    for (long t = 1; t < nt; t++) pthread_join(th[t], NULL);
    printf("done\n");
    fflush(stdout);
    while (g_hold) pause();
    return 0;
}
