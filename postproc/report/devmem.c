/* Device memory ranges over time (see devmem.h): who held which device bytes when, so that
 * a weight name given to an address ends when that memory is freed or reused. Linear scans:
 * the ranges are allocations and weight-sized copies, hundreds to a few thousand per run
 * (bounded: beyond MAX_COPIES copies and MAX_RANGES ranges they are not kept, and names
 * then simply last longer). */
#include "report/devmem.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RANGES 65536       /* allocations and copies together */
#define MAX_COPIES 16384       /* copies among them (allocations are few; copies can be per tensor) */
#define MAX_FREES 65536

struct free_ev { int32_t pid; uint64_t ptr, t, b, e; };   /* [b, e): what it released (mc_devmem_finish) */

struct mc_devmem {
    struct mc_devmem_range *r; size_t n, cap, n_copies;
    struct free_ev *f; size_t nf, capf;
};

struct mc_devmem *mc_devmem_new(void) { return calloc(1, sizeof(struct mc_devmem)); }

void mc_devmem_free(struct mc_devmem *d)
{
    if (!d) return;
    free(d->r); free(d->f); free(d);
}

size_t mc_devmem_count(const struct mc_devmem *d) { return d ? d->n : 0; }

static void add_range(struct mc_devmem *d, int32_t pid, int32_t device, uint64_t b, uint64_t bytes, uint64_t t,
                      uint8_t kind, uint64_t tag)
{
    if (!bytes || b + bytes < b || d->n >= MAX_RANGES || (kind == MC_DEVMEM_COPY && d->n_copies >= MAX_COPIES)) return;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 256;
        void *p = realloc(d->r, nc * sizeof *d->r);
        if (!p) return;
        d->r = p; d->cap = nc;
    }
    d->r[d->n++] = (struct mc_devmem_range){pid, device, b, b + bytes, t, UINT64_MAX, kind, tag};
    if (kind == MC_DEVMEM_COPY) d->n_copies++;
}

void mc_devmem_alloc(struct mc_devmem *d, int32_t pid, int32_t device, uint64_t ptr, uint64_t bytes, uint64_t t)
{
    if (device >= 0) add_range(d, pid, device, ptr, bytes, t, MC_DEVMEM_ALLOC, 0);
}

void mc_devmem_copy(struct mc_devmem *d, int32_t pid, int32_t device, uint64_t dst, uint64_t bytes, uint64_t t,
                    uint64_t tag)
{
    add_range(d, pid, device, dst, bytes, t, MC_DEVMEM_COPY, tag);
}

void mc_devmem_release(struct mc_devmem *d, int32_t pid, uint64_t ptr, uint64_t t)
{
    if (d->nf >= MAX_FREES) return;
    if (d->nf == d->capf) {
        size_t nc = d->capf ? d->capf * 2 : 256;
        void *p = realloc(d->f, nc * sizeof *d->f);
        if (!p) return;
        d->f = p; d->capf = nc;
    }
    d->f[d->nf++] = (struct free_ev){pid, ptr, t, ptr, ptr + 1};
}

/* The allocation that a free of ptr at time t releases: the latest one at ptr made before t. */
static const struct mc_devmem_range *alloc_at(const struct mc_devmem *d, int32_t pid, uint64_t ptr, uint64_t t)
{
    const struct mc_devmem_range *best = NULL;
    for (size_t i = 0; i < d->n; i++) {
        const struct mc_devmem_range *x = &d->r[i];
        if (x->kind != MC_DEVMEM_ALLOC || x->pid != pid || x->b != ptr || x->t_from > t) continue;
        if (!best || x->t_from >= best->t_from) best = x;
    }
    return best;
}

static uint64_t frees_end(const struct mc_devmem *d, int32_t pid, uint64_t b, uint64_t e, uint64_t t)
{
    uint64_t end = UINT64_MAX;
    for (size_t i = 0; i < d->nf; i++) {
        const struct free_ev *f = &d->f[i];
        if (f->pid != pid || f->t <= t || f->t >= end) continue;
        if (f->b < e && f->e > b) end = f->t;
    }
    return end;
}

uint64_t mc_devmem_end(const struct mc_devmem *d, int32_t pid, uint64_t b, uint64_t e, uint64_t t, uint64_t tag)
{
    uint64_t end = frees_end(d, pid, b, e, t);
    for (size_t i = 0; i < d->n; i++) {
        const struct mc_devmem_range *x = &d->r[i];
        if (x->pid != pid || x->t_from <= t || x->t_from >= end || x->b >= e || x->e <= b) continue;
        if (x->kind == MC_DEVMEM_COPY && tag && x->tag == tag && x->b == b && x->e == e) continue;  /* the same bytes again */
        end = x->t_from;
    }
    return end;
}

void mc_devmem_finish(struct mc_devmem *d)
{
    for (size_t j = 0; j < d->nf; j++) {   /* once: the allocation each free released */
        const struct mc_devmem_range *a = alloc_at(d, d->f[j].pid, d->f[j].ptr, d->f[j].t);
        if (a) { d->f[j].b = a->b; d->f[j].e = a->e; }
    }
    for (size_t i = 0; i < d->n; i++) {
        struct mc_devmem_range *x = &d->r[i];
        if (x->kind == MC_DEVMEM_COPY) {
            x->t_until = mc_devmem_end(d, x->pid, x->b, x->e, x->t_from, x->tag);
            continue;
        }
        /* an allocation lives until it is freed or another allocation takes its memory */
        uint64_t end = UINT64_MAX;
        for (size_t j = 0; j < d->nf; j++)
            if (d->f[j].pid == x->pid && d->f[j].ptr == x->b && d->f[j].t > x->t_from && d->f[j].t < end) end = d->f[j].t;
        for (size_t j = 0; j < d->n; j++) {
            const struct mc_devmem_range *y = &d->r[j];
            if (y->kind == MC_DEVMEM_ALLOC && y->pid == x->pid && y->t_from > x->t_from && y->t_from < end &&
                y->b < x->e && y->e > x->b)
                end = y->t_from;
        }
        x->t_until = end;
    }
}

int mc_devmem_has_size(const struct mc_devmem *d, int32_t pid, uint64_t size)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->r[i].pid == pid && d->r[i].e - d->r[i].b == size) return 1;
    return 0;
}

const struct mc_devmem_range *mc_devmem_find(const struct mc_devmem *d, int32_t pid, uint64_t addr, uint64_t t,
                                             uint64_t size)
{
    if (!d) return NULL;
    for (size_t i = 0; i < d->n; i++) {
        const struct mc_devmem_range *x = &d->r[i];
        if (x->pid == pid && x->b <= addr && addr < x->e && x->e - x->b == size && x->t_from <= t && t < x->t_until)
            return x;
    }
    return NULL;
}
