/* Test program for tests/shim/test_shim.sh: calls BLAS in known patterns, so the test can
 * check the trace against shapes it derives itself. Linked dynamically against OpenBLAS.
 *   shim_prog shapes N        cblas_sgemm (i, 2i+1, 3i+2) i=1..N, then sgemm_ 'N','T'
 *                             (5,6,7), dgemm_ (2,3,4), cblas_sgemv 9x11, cblas_dgemv 3x5,
 *                             sgemv_ 'T' 4x6, cblas_dgemm (4,5,6); prints a checksum
 *   shim_prog callers         caller_a (m=1) and caller_b (m=2) alternately, 10 times each,
 *                             both through one helper: same call instruction, same depth
 *   shim_prog helper16 R      one helper called from 16 places of one function (m = 1..16
 *                             in turn), R rounds: 16 chains with one return address and
 *                             one frame at the BLAS call
 *   shim_prog fork            3 calls (m=1) before fork; child 5 calls (m=100+i),
 *                             parent 7 calls (m=200+i); parent waits
 *   shim_prog threads T N     T threads, thread t does N calls with m = t+1, n = 8, k = 16
 *   shim_prog shortthreads N K   N threads one after another (m = t%4+1), K calls each;
 *                             prints "rss_kb R" at the end
 *   shim_prog forkstress      3 threads call BLAS (m = 50 + t) while main forks 10 children
 *                             (5 calls each, m = 100 + k, then _exit); prints worker counts
 *   shim_prog _exit           5 calls (m=6), then _exit(4)
 *   shim_prog exec            5 calls (m=7), then execl() of itself as "shapes 2"
 *   shim_prog loop            gemms forever (m=1,n=8,k=8); prints "ready" after 20000,
 *                             then one every ~50 us
 *   shim_prog sigterm FILE    installs its own SIGTERM handler (writes FILE, exits 3),
 *                             does 50 calls (m=3), prints "ready", waits
 *   shim_prog sigterm-signal FILE  the same with signal() instead of sigaction()
 *   shim_prog sigterm-dfl     50 calls, prints "ready", waits for SIGTERM (default action)
 */
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void sgemm_(const char *, const char *, const int *, const int *, const int *, const float *, const float *,
            const int *, const float *, const int *, const float *, float *, const int *);
void dgemm_(const char *, const char *, const int *, const int *, const int *, const double *, const double *,
            const int *, const double *, const int *, const double *, double *, const int *);
void sgemv_(const char *, const int *, const int *, const float *, const float *, const int *, const float *,
            const int *, const float *, float *, const int *);

static float A[4096], B[4096], C[4096];
static double DA[1024], DB[1024], DC[1024];

static void gemm(int m, int n, int k)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 0.0f, C, n);
}

/* Two callers with the same frame layout reach the same cblas_sgemm call instruction at
 * the same stack depth: their call sites must still come out different. */
__attribute__((noinline)) static void do_gemm(int m)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, 4, 4, 1.0f, A, 4, B, 4, 0.0f, C, 4);
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) static void caller_a(void) { do_gemm(1); __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) static void caller_b(void) { do_gemm(2); __asm__ volatile("" ::: "memory"); }
/* A GEMM helper (like an engine's gemm() wrapper) called from 16 call instructions of one
 * function: every chain has the same (return address, frame) at the BLAS call and differs
 * only one frame up. */
#define H16(i) do_gemm(i); __asm__ volatile("" ::: "memory");
__attribute__((noinline)) static void helper16(void)
{
    H16(1) H16(2) H16(3) H16(4) H16(5) H16(6) H16(7) H16(8)
    H16(9) H16(10) H16(11) H16(12) H16(13) H16(14) H16(15) H16(16)
}

static void *thread_main(void *arg)
{
    long t = (long)arg;
    int n = atoi(getenv("SHIM_PROG_N"));
    float c[8 * 64];
    for (int i = 0; i < n; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)t + 1, 8, 16, 1.0f, A, 16, B, 8, 0.0f, c, 8);
    return NULL;
}

static volatile int g_stop;
static long g_worker_calls[8];

/* forkstress worker: m = 50 + index, until told to stop; counts its own calls. OpenBLAS is
 * not fork-safe (a child inherits its allocator lock held by a thread that is gone and
 * hangs in its first call: seen without the shim too), so each call holds the worker's
 * mutex and the program's fork handler takes all three: the workers are never inside
 * OpenBLAS at a fork, but run right up to it (their records wait in the shim's buffers). */
static pthread_mutex_t g_worker_mx[3] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                                         PTHREAD_MUTEX_INITIALIZER};
static volatile int g_forking;
static void *worker_main(void *arg)
{
    long t = (long)arg;
    float c[8 * 64];
    while (!g_stop) {
        pthread_mutex_lock(&g_worker_mx[t]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 50 + (int)t, 8, 16, 1.0f, A, 16, B, 8, 0.0f, c, 8);
        pthread_mutex_unlock(&g_worker_mx[t]);
        g_worker_calls[t]++;
        while (g_forking) sched_yield();
    }
    return NULL;
}
static void workers_pause(void)
{
    g_forking = 1;
    for (int t = 0; t < 3; t++) pthread_mutex_lock(&g_worker_mx[t]);
}
static void workers_resume(void)
{
    for (int t = 0; t < 3; t++) pthread_mutex_unlock(&g_worker_mx[t]);
    g_forking = 0;
}

static const char *g_marker;
static void on_term(int sig)
{
    (void)sig;
    FILE *f = fopen(g_marker, "w");
    if (f) { fputs("handled\n", f); fclose(f); }
    _exit(3);
}

int main(int argc, char **argv)
{
    for (int i = 0; i < 4096; i++) { A[i] = (float)(i % 7) * 0.5f; B[i] = (float)(i % 5) - 2.0f; }
    for (int i = 0; i < 1024; i++) { DA[i] = i % 3; DB[i] = i % 4; }
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "shapes")) {
        int N = argc > 2 ? atoi(argv[2]) : 5;
        double sum = 0;
        for (int i = 1; i <= N; i++) {
            gemm(i, 2 * i + 1, 3 * i + 2);
            for (int j = 0; j < i * (2 * i + 1); j++) sum += C[j];
        }
        int m = 5, n = 6, k = 7, lda = 5, ldb = 6, ldc = 5;
        float al = 1, be = 0;
        sgemm_("N", "T", &m, &n, &k, &al, A, &lda, B, &ldb, &be, C, &ldc);
        for (int j = 0; j < 30; j++) sum += C[j];
        int dm = 2, dn = 3, dk = 4;
        double dal = 1, dbe = 0;
        dgemm_("N", "N", &dm, &dn, &dk, &dal, DA, &dm, DB, &dk, &dbe, DC, &dm);
        for (int j = 0; j < 6; j++) sum += DC[j];
        cblas_sgemv(CblasRowMajor, CblasNoTrans, 9, 11, 1.0f, A, 11, B, 1, 0.0f, C, 1);
        for (int j = 0; j < 9; j++) sum += C[j];
        cblas_dgemv(CblasColMajor, CblasNoTrans, 3, 5, 1.0, DA, 3, DB, 1, 0.0, DC, 1);
        for (int j = 0; j < 3; j++) sum += DC[j];
        int vm = 4, vn = 6, inc = 1;
        sgemv_("T", &vm, &vn, &al, A, &vm, B, &inc, &be, C, &inc);
        for (int j = 0; j < 6; j++) sum += C[j];
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, 4, 5, 6, 2.0, DA, 6, DB, 6, 0.0, DC, 4);
        for (int j = 0; j < 20; j++) sum += DC[j];
        printf("checksum %.6f\n", sum);
        return 0;
    }
    if (!strcmp(mode, "shortthreads")) {
        /* N threads one after the other, K calls each; prints VmRSS at the end */
        int N = atoi(argv[2]);
        setenv("SHIM_PROG_N", argv[3], 1);
        for (long t = 0; t < N; t++) {
            pthread_t th;
            pthread_create(&th, NULL, thread_main, (void *)(t % 4));
            pthread_join(th, NULL);
        }
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "VmRSS:", 6)) printf("rss_kb %ld\n", atol(line + 6));
        if (f) fclose(f);
        return 0;
    }
    if (!strcmp(mode, "forkstress")) {
        /* 3 threads call BLAS without pause while the main thread forks 10 children; each
         * child makes 5 calls (m = 100 + child index) and leaves with _exit(0). */
        pthread_t th[3];
        pthread_atfork(workers_pause, workers_resume, workers_resume);
        for (long t = 0; t < 3; t++) pthread_create(&th[t], NULL, worker_main, (void *)t);
        for (int k = 0; k < 10; k++) {
            pid_t p = fork();
            if (p < 0) return 1;
            if (p == 0) {
                for (int i = 0; i < 5; i++) gemm(100 + k, 4, 4);
                _exit(0);
            }
            int st;
            if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
        }
        g_stop = 1;
        for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
        printf("workers %ld %ld %ld\n", g_worker_calls[0], g_worker_calls[1], g_worker_calls[2]);
        return 0;
    }
    if (!strcmp(mode, "_exit")) {
        for (int i = 0; i < 5; i++) gemm(6, 4, 4);
        fflush(stdout);
        _exit(4);
    }
    if (!strcmp(mode, "exec")) {
        /* 5 calls (m=7), then the image is replaced by "shim_prog shapes 2" (same pid) */
        for (int i = 0; i < 5; i++) gemm(7, 4, 4);
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "shapes", "2", (char *)NULL);
        return 1;
    }
    if (!strcmp(mode, "callers")) {
        for (int i = 0; i < 10; i++) { caller_a(); caller_b(); }
        return 0;
    }
    if (!strcmp(mode, "helper16")) {
        int rounds = argc > 2 ? atoi(argv[2]) : 50;
        for (int i = 0; i < rounds; i++) helper16();
        return 0;
    }
    if (!strcmp(mode, "fork")) {
        for (int i = 0; i < 3; i++) gemm(1, 4, 4);
        fflush(stdout);
        pid_t p = fork();
        if (p < 0) return 1;
        if (p == 0) {
            for (int i = 0; i < 5; i++) gemm(100 + i, 4, 4);
            exit(0);
        }
        for (int i = 0; i < 7; i++) gemm(200 + i, 4, 4);
        int st;
        waitpid(p, &st, 0);
        printf("child %d status %d\n", (int)p, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
    }
    if (!strcmp(mode, "threads")) {
        int T = atoi(argv[2]);
        setenv("SHIM_PROG_N", argv[3], 1);
        pthread_t th[64];
        for (long t = 0; t < T && t < 64; t++) pthread_create(&th[t], NULL, thread_main, (void *)t);
        for (long t = 0; t < T && t < 64; t++) pthread_join(th[t], NULL);
        return 0;
    }
    if (!strcmp(mode, "loop")) {
        for (long i = 0;; i++) {
            gemm(1, 8, 8);
            if (i == 20000) { printf("ready\n"); fflush(stdout); }
            if (i > 20000) { struct timespec ts = {0, 50000}; nanosleep(&ts, NULL); } /* keep the trace small */
        }
    }
    if (!strcmp(mode, "sigterm") || !strcmp(mode, "sigterm-dfl") || !strcmp(mode, "sigterm-signal")) {
        if (!strcmp(mode, "sigterm-signal")) {
            g_marker = argv[2];
            if (signal(SIGTERM, on_term) == SIG_ERR) return 1;
        }
        if (!strcmp(mode, "sigterm")) {
            g_marker = argv[2];
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_term;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, NULL);
        }
        for (int i = 0; i < 50; i++) gemm(3, 4, 4);
        printf("ready\n");
        fflush(stdout);
        for (;;) pause();
    }
    return 2;
}
