/* Expert parallelism across forked worker processes (see expert_parallel.h): one shared
 * mapping holds the per-layer exchange (activation rows in, expert output rows out, the
 * pair counts per expert) and process-shared semaphores; each worker computes the experts it
 * owns with the same BLAS calls the single-process engine would issue. */
#include "expert_parallel.h"

#include <cblas.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EP_MAX 64

struct ep_shared {
    sem_t go[EP_MAX];        /* coordinator -> worker: a layer is ready (or quit) */
    sem_t done;              /* worker -> coordinator: its experts are computed */
    int quit, layer, gemv;
    /* followed by cnt[E], eoff[E + 1] (ints), then xin and yout (cap_pairs x d floats) */
};

struct mr_ep {
    mr_model *m;
    int n, cap_pairs;
    struct ep_shared *sh;
    size_t map_bytes;
    int *cnt, *eoff;
    float *xin, *yout;
    pid_t pid[EP_MAX];
};

static size_t align64(size_t x) { return (x + 63) / 64 * 64; }

static void worker_gemm(int gemv, const float *X, int m, const float *W, int out, int in, float *Y)
{
    if (m == 1 && gemv)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, X, 1, 0.0f, Y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, out, in, 1.0f, X, in, W, in, 0.0f, Y, out);
}

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

static void worker_main(struct mr_ep *p, int rank, pid_t parent)
{
    /* a coordinator that dies without telling us (crash, kill -9) takes the workers along */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    /* the coordinator decides when workers end (a server drains on SIGINT/SIGTERM, and a
     * terminal's Ctrl-C reaches the whole process group): they leave when told or with it */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    const struct mr_config *c = &p->m->cfg;
    int d = c->hidden, f = c->moe_inter, E = c->experts;
    /* one BLAS thread per worker: the same arithmetic as the engine's single-threaded calls */
    void (*set_threads)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (set_threads) set_threads(1);
    float *g = malloc((size_t)p->cap_pairs * (size_t)f * sizeof *g);
    float *u = malloc((size_t)p->cap_pairs * (size_t)f * sizeof *u);
    for (;;) {
        while (sem_wait(&p->sh->go[rank]) != 0 && errno == EINTR) {}
        if (p->sh->quit || !g || !u) break;
        const struct mr_layer_w *w = &p->m->lw[p->sh->layer];
        for (int x = rank; x < E; x += p->n) {
            int mx = p->cnt[x];
            if (!mx) continue;
            const float *xe = p->xin + (size_t)p->eoff[x] * d;
            worker_gemm(p->sh->gemv, xe, mx, w->eg[x], f, d, g);
            worker_gemm(p->sh->gemv, xe, mx, w->eu[x], f, d, u);
            for (size_t i = 0; i < (size_t)mx * f; i++) g[i] = silu(g[i]) * u[i];
            worker_gemm(p->sh->gemv, g, mx, w->ed[x], d, f, p->yout + (size_t)p->eoff[x] * d);
        }
        sem_post(&p->sh->done);
    }
    free(g);
    free(u);
    _exit(0);
}

struct mr_ep *mr_ep_new(mr_model *m, int n, int cap_tokens, int gemv, char *err, size_t errlen)
{
    const struct mr_config *c = &m->cfg;
    if (n < 1 || n > EP_MAX) { mr_set_err(err, errlen, "--expert-parallel must be 1..%d", EP_MAX); return NULL; }
    if (c->experts <= 0) { mr_set_err(err, errlen, "--expert-parallel: the model has no routed experts"); return NULL; }
    if (cap_tokens < 1 || (long long)cap_tokens * c->top_k > INT_MAX) {
        mr_set_err(err, errlen, "--expert-parallel: %d tokens per step cannot be exchanged", cap_tokens);
        return NULL;
    }
    struct mr_ep *p = calloc(1, sizeof *p);
    if (!p) { mr_set_err(err, errlen, "out of memory"); return NULL; }
    p->m = m; p->n = n;
    p->cap_pairs = cap_tokens * c->top_k;
    size_t rows = (size_t)p->cap_pairs * (size_t)c->hidden * sizeof(float);
    size_t hdr = align64(sizeof(struct ep_shared)), ints = align64((size_t)(2 * c->experts + 1) * sizeof(int));
    p->map_bytes = hdr + ints + 2 * align64(rows);
    /* sized for the largest step; pages are committed only as steps touch them */
    void *map = mmap(NULL, p->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        mr_set_err(err, errlen, "cannot map %zu bytes of shared memory: %s", p->map_bytes, strerror(errno));
        free(p);
        return NULL;
    }
    p->sh = map;
    p->cnt = (int *)((char *)map + hdr);
    p->eoff = p->cnt + c->experts;
    p->xin = (float *)((char *)map + hdr + ints);
    p->yout = (float *)((char *)map + hdr + ints + align64(rows));
    p->sh->gemv = gemv;
    sem_init(&p->sh->done, 1, 0);
    for (int r = 0; r < n; r++) sem_init(&p->sh->go[r], 1, 0);
    fflush(NULL);   /* nothing buffered is written twice */
    pid_t self = getpid();
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();
        if (pid == 0) worker_main(p, r, self);
        if (pid < 0) {
            mr_set_err(err, errlen, "fork of expert worker %d failed: %s", r, strerror(errno));
            mr_ep_free(p);
            return NULL;
        }
        p->pid[r] = pid;
    }
    return p;
}

void mr_ep_free(struct mr_ep *p)
{
    if (!p) return;
    p->sh->quit = 1;
    for (int r = 0; r < p->n; r++) if (p->pid[r] > 0) sem_post(&p->sh->go[r]);
    for (int r = 0; r < p->n; r++) if (p->pid[r] > 0) waitpid(p->pid[r], NULL, 0);
    for (int r = 0; r < p->n; r++) sem_destroy(&p->sh->go[r]);
    sem_destroy(&p->sh->done);
    munmap(p->sh, p->map_bytes);
    free(p);
}

/* Waits for one worker's "done", checking every 100 ms that none has died. */
static int wait_done(struct mr_ep *p, char *err, size_t errlen)
{
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        if (sem_timedwait(&p->sh->done, &ts) == 0) return 0;
        if (errno == EINTR) continue;
        for (int r = 0; r < p->n; r++) {
            int st;
            if (waitpid(p->pid[r], &st, WNOHANG) == p->pid[r]) {
                snprintf(err, errlen, "expert worker %d (pid %d) exited", r, (int)p->pid[r]);
                p->pid[r] = -1;
                return -1;
            }
        }
    }
}

const float *mr_ep_layer(struct mr_ep *p, int layer, const float *xn, const int *cnt, const int *eoff,
                         const int *etok, int T, char *err, size_t errlen)
{
    const struct mr_config *c = &p->m->cfg;
    int d = c->hidden, E = c->experts, pairs = eoff[E];
    if (pairs > p->cap_pairs) {
        snprintf(err, errlen, "expert parallel: %d tokens in a step, more than the %d set up", T, p->cap_pairs / c->top_k);
        return NULL;
    }
    for (int r = 0; r < p->n; r++)
        if (p->pid[r] <= 0) { snprintf(err, errlen, "expert worker %d is gone", r); return NULL; }
    memcpy(p->cnt, cnt, (size_t)E * sizeof *cnt);
    memcpy(p->eoff, eoff, (size_t)(E + 1) * sizeof *eoff);
    for (int i = 0; i < pairs; i++)   /* dispatch: each pair's activation row, grouped by expert */
        memcpy(p->xin + (size_t)i * d, xn + (size_t)etok[i] * d, (size_t)d * sizeof(float));
    p->sh->layer = layer;
    for (int r = 0; r < p->n; r++) sem_post(&p->sh->go[r]);
    for (int r = 0; r < p->n; r++)
        if (wait_done(p, err, errlen)) return NULL;
    return p->yout;
}

int mr_ep_procs(const struct mr_ep *p) { return p->n; }
pid_t mr_ep_pid(const struct mr_ep *p, int rank) { return p->pid[rank]; }
