/* The set of host address ranges that hold weight-file bytes (API and rules: filemap.h).
 *
 * A sorted array of disjoint ranges (address, end, file offset, path id, how) under one
 * mutex: updates come from mmap/munmap/read/pread of weight files and lookups from
 * host->device copies, none of them on the BLAS hot path. Adding a range first cuts
 * whatever overlaps it (the bytes there are now the new ones), so a copy that covers part
 * of a range, or several, is named piece by piece with exact file offsets.
 *
 * Read buffers have no end of life we can see (free() is not hooked, and the allocator
 * may hand the memory out again), so a stale range could give a later copy of unrelated
 * heap data a weight name. Missing a name is preferred to a wrong one: each read/pread
 * range keeps 8 content samples (8 bytes each, spread over the range, first and last
 * included) taken right after the read, and a lookup names its bytes only if every
 * sample still matches memory, read with process_vm_readv (a freed large buffer that is
 * unmapped fails cleanly instead of faulting). free() itself overwrites the first bytes
 * of a block with allocator links, so a buffer read at its start and then freed stops
 * matching at once. Mappings need no samples: munmap, mremap and every mmap placed over
 * a range are seen.
 *
 * Memory is bounded: at most MC_FILEMAP_MAX ranges (the oldest read range, else the
 * oldest range, is evicted), in one block reserved with a raw mmap syscall on first use.
 * Nothing under the mutex allocates or calls an interposed function (a malloc that maps
 * through our mmap would re-enter), so it is the innermost lock of the shim. */
#include "filemap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define NSAMP 8
#define SAMP_BYTES 8u
#define NO_SLOT UINT32_MAX

struct fm_ent {
    uint64_t addr, end;        /* [addr, end) */
    uint64_t off;              /* file offset of addr */
    uint64_t seq;              /* insertion order (eviction) */
    uint32_t path, how;
    uint32_t slot;             /* samples (read/pread ranges), NO_SLOT for mappings */
    uint32_t pad;
};

struct fm_samp {
    uint64_t a[NSAMP], v[NSAMP];  /* sample address and the 8 bytes found there */
    uint32_t n;
    uint32_t next_free;
};

static pthread_mutex_t g_mx = PTHREAD_MUTEX_INITIALIZER;
static struct fm_ent *g_ent;           /* sorted by addr, disjoint */
static struct fm_samp *g_samp;         /* MC_FILEMAP_MAX slots */
static size_t g_n;
static uint32_t g_slot_top, g_slot_free = NO_SLOT;
static uint64_t g_seq;
static int g_nomem;                    /* reserving the block failed: never retry */
static _Atomic size_t g_count;         /* = g_n, for lock-free fast paths */
static _Atomic uint64_t g_lo = UINT64_MAX, g_hi; /* every range lies in [g_lo, g_hi) */
static _Atomic uint64_t g_evicted;
static _Atomic int g_unverifiable;

/* ---------------------------------------------------------------- storage (lock held) */

static int storage_l(void)
{
    if (g_ent) return 0;
    if (g_nomem) return -1;
    size_t bytes = (size_t)MC_FILEMAP_MAX * (sizeof(struct fm_ent) + sizeof(struct fm_samp));
    /* The raw syscall: our own mmap interposer would take this mutex again. */
    void *p = (void *)syscall(SYS_mmap, NULL, bytes, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { g_nomem = 1; return -1; }
    g_ent = p;
    g_samp = (struct fm_samp *)(g_ent + MC_FILEMAP_MAX);
    return 0;
}

static uint32_t slot_alloc_l(void)
{
    if (g_slot_free != NO_SLOT) {
        uint32_t s = g_slot_free;
        g_slot_free = g_samp[s].next_free;
        return s;
    }
    return g_slot_top < MC_FILEMAP_MAX ? g_slot_top++ : NO_SLOT;
}

static void slot_free_l(uint32_t s)
{
    if (s == NO_SLOT) return;
    g_samp[s].next_free = g_slot_free;
    g_slot_free = s;
}

static void bounds_after_change_l(void)
{
    atomic_store_explicit(&g_count, g_n, memory_order_relaxed);
    if (g_n == 0) {
        atomic_store_explicit(&g_lo, UINT64_MAX, memory_order_relaxed);
        atomic_store_explicit(&g_hi, 0, memory_order_relaxed);
    }
}

static void erase_l(size_t i)
{
    slot_free_l(g_ent[i].slot);
    memmove(&g_ent[i], &g_ent[i + 1], (g_n - i - 1) * sizeof *g_ent);
    g_n--;
}

/* Make room at index i (caller checked g_n < MC_FILEMAP_MAX). */
static void open_gap_l(size_t i)
{
    memmove(&g_ent[i + 1], &g_ent[i], (g_n - i) * sizeof *g_ent);
    g_n++;
}

/* First index whose range ends after `a`. */
static size_t first_after_l(uint64_t a)
{
    size_t lo = 0, hi = g_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g_ent[mid].end <= a) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* Keep only the samples that lie wholly inside [addr, end) of slot s; returns how many. */
static uint32_t filter_samples_l(uint32_t s, uint64_t addr, uint64_t end)
{
    struct fm_samp *sp = &g_samp[s];
    uint32_t k = 0;
    for (uint32_t j = 0; j < sp->n; j++) {
        if (sp->a[j] < addr || sp->a[j] + SAMP_BYTES > end) continue;
        sp->a[k] = sp->a[j];
        sp->v[k] = sp->v[j];
        k++;
    }
    sp->n = k;
    return k;
}

/* Shrink entry i to [addr, end) (inside its old range). 0 = it no longer holds a sample
 * and must go (a read range we cannot verify is never named). */
static int shrink_l(size_t i, uint64_t addr, uint64_t end)
{
    struct fm_ent *e = &g_ent[i];
    e->off += addr - e->addr;
    e->addr = addr;
    e->end = end;
    return e->slot == NO_SLOT || filter_samples_l(e->slot, addr, end) > 0;
}

/* Cut [a, b) out of the set. Needs one free entry when a range strictly contains [a, b). */
static void remove_l(uint64_t a, uint64_t b)
{
    size_t i = first_after_l(a);
    while (i < g_n && g_ent[i].addr < b) {
        struct fm_ent *e = &g_ent[i];
        if (e->addr < a && e->end > b) {            /* split: left [addr, a), right [b, end) */
            if (g_n >= MC_FILEMAP_MAX) { erase_l(i); return; }
            uint32_t rslot = NO_SLOT;
            if (e->slot != NO_SLOT) {
                rslot = slot_alloc_l();
                if (rslot != NO_SLOT) g_samp[rslot] = g_samp[e->slot];
            }
            open_gap_l(i + 1);
            e = &g_ent[i];
            g_ent[i + 1] = *e;
            g_ent[i + 1].slot = rslot;
            int keep_right = (e->slot == NO_SLOT || rslot != NO_SLOT) && shrink_l(i + 1, b, e->end);
            int keep_left = shrink_l(i, e->addr, a);
            if (!keep_right) erase_l(i + 1);
            if (!keep_left) erase_l(i);
            return;
        }
        if (e->addr < a) {                          /* overlaps our start: keep its head */
            if (shrink_l(i, e->addr, a)) i++; else erase_l(i);
        } else if (e->end > b) {                    /* overlaps our end: keep its tail */
            if (!shrink_l(i, b, e->end)) erase_l(i);
            return;
        } else {
            erase_l(i);                             /* wholly inside */
        }
    }
}

/* Drop the oldest read range, else the oldest range. */
static void evict_one_l(void)
{
    size_t best = g_n, best_any = g_n;
    for (size_t i = 0; i < g_n; i++) {
        if (best_any == g_n || g_ent[i].seq < g_ent[best_any].seq) best_any = i;
        if (g_ent[i].slot != NO_SLOT && (best == g_n || g_ent[i].seq < g_ent[best].seq)) best = i;
    }
    if (best == g_n) best = best_any;
    if (best < g_n) {
        erase_l(best);
        atomic_fetch_add_explicit(&g_evicted, 1, memory_order_relaxed);
    }
}

/* ---------------------------------------------------------------- verification */

/* Do the samples of slot s still match memory? One process_vm_readv on ourselves: bytes
 * that are no longer mapped give EFAULT or a short count, never a fault. */
static int verify_l(uint32_t s)
{
    if (atomic_load_explicit(&g_unverifiable, memory_order_relaxed)) return 0;
    const struct fm_samp *sp = &g_samp[s];
    if (sp->n == 0) return 0;
    uint64_t got[NSAMP];
    struct iovec local[NSAMP], remote[NSAMP];
    for (uint32_t j = 0; j < sp->n; j++) {
        local[j].iov_base = &got[j];
        local[j].iov_len = SAMP_BYTES;
        remote[j].iov_base = (void *)(uintptr_t)sp->a[j];
        remote[j].iov_len = SAMP_BYTES;
    }
    int saved = errno;
    ssize_t r = process_vm_readv(getpid(), local, sp->n, remote, sp->n, 0);
    if (r < 0 && (errno == ENOSYS || errno == EPERM))
        atomic_store_explicit(&g_unverifiable, 1, memory_order_relaxed);
    errno = saved;
    if (r != (ssize_t)(sp->n * SAMP_BYTES)) return 0;
    for (uint32_t j = 0; j < sp->n; j++)
        if (got[j] != sp->v[j]) return 0;
    return 1;
}

/* ---------------------------------------------------------------- API */

static uint64_t clamp_end(uint64_t addr, uint64_t len)
{
    return len > UINT64_MAX - addr ? UINT64_MAX : addr + len;
}

void mc_filemap_add(uint64_t addr, uint64_t len, uint64_t file_offset, uint32_t path_str, uint32_t how)
{
    if (len == 0) return;
    uint64_t end = clamp_end(addr, len);
    struct fm_samp smp;
    int is_read = how != 0;
    if (is_read) {
        if (len < SAMP_BYTES) { mc_filemap_remove(addr, len); return; }
        /* Samples now, outside the lock: the caller's buffer was just filled by the read. */
        smp.n = NSAMP;
        for (uint32_t j = 0; j < NSAMP; j++) {
            smp.a[j] = addr + (len - SAMP_BYTES) * j / (NSAMP - 1);
            memcpy(&smp.v[j], (const void *)(uintptr_t)smp.a[j], SAMP_BYTES);
        }
        smp.next_free = 0;
    }
    pthread_mutex_lock(&g_mx);
    if (storage_l() < 0) { pthread_mutex_unlock(&g_mx); return; }
    /* Room for a split in remove_l and for the new entry; a read range also needs a slot. */
    while (g_n + 2 > MC_FILEMAP_MAX) evict_one_l();
    remove_l(addr, end);
    uint32_t slot = NO_SLOT;
    if (is_read) {
        slot = slot_alloc_l();
        if (slot == NO_SLOT) {   /* every slot held by read ranges: free the oldest one */
            evict_one_l();
            slot = slot_alloc_l();
        }
        if (slot == NO_SLOT) { bounds_after_change_l(); pthread_mutex_unlock(&g_mx); return; }
        g_samp[slot] = smp;
    }
    size_t i = first_after_l(addr);
    open_gap_l(i);
    g_ent[i] = (struct fm_ent){addr, end, file_offset, g_seq++, path_str, how, slot, 0};
    if (addr < atomic_load_explicit(&g_lo, memory_order_relaxed)) atomic_store_explicit(&g_lo, addr, memory_order_relaxed);
    if (end > atomic_load_explicit(&g_hi, memory_order_relaxed)) atomic_store_explicit(&g_hi, end, memory_order_relaxed);
    bounds_after_change_l();
    pthread_mutex_unlock(&g_mx);
}

static int outside(uint64_t a, uint64_t b)
{
    return atomic_load_explicit(&g_count, memory_order_relaxed) == 0 ||
           b <= atomic_load_explicit(&g_lo, memory_order_relaxed) ||
           a >= atomic_load_explicit(&g_hi, memory_order_relaxed);
}

void mc_filemap_remove(uint64_t addr, uint64_t len)
{
    if (len == 0) return;
    uint64_t end = clamp_end(addr, len);
    if (outside(addr, end)) return;
    pthread_mutex_lock(&g_mx);
    if (g_ent) {
        remove_l(addr, end);
        bounds_after_change_l();
    }
    pthread_mutex_unlock(&g_mx);
}

int mc_filemap_lookup(uint64_t addr, uint64_t len, struct mc_filemap_piece *out, int max)
{
    if (len == 0 || max <= 0 || !out) return 0;
    uint64_t end = clamp_end(addr, len);
    if (outside(addr, end)) return 0;
    int n = 0;
    pthread_mutex_lock(&g_mx);
    if (g_ent) {
        size_t i = first_after_l(addr);
        while (i < g_n && g_ent[i].addr < end && n < max) {
            const struct fm_ent *e = &g_ent[i];
            if (e->slot != NO_SLOT && !verify_l(e->slot)) {
                erase_l(i);   /* stale: freed, reused or overwritten */
                continue;
            }
            uint64_t a = e->addr > addr ? e->addr : addr;
            uint64_t b = e->end < end ? e->end : end;
            out[n].addr = a;
            out[n].length = b - a;
            out[n].file_offset = e->off + (a - e->addr);
            out[n].path_str = e->path;
            out[n].how = e->how;
            n++;
            i++;
        }
        bounds_after_change_l();
    }
    pthread_mutex_unlock(&g_mx);
    return n;
}

void mc_filemap_fork_lock(void) { pthread_mutex_lock(&g_mx); }
void mc_filemap_fork_unlock(void) { pthread_mutex_unlock(&g_mx); }

size_t mc_filemap_count(void) { return atomic_load_explicit(&g_count, memory_order_relaxed); }
uint64_t mc_filemap_evicted(void) { return atomic_load_explicit(&g_evicted, memory_order_relaxed); }
int mc_filemap_unverifiable(void) { return atomic_load_explicit(&g_unverifiable, memory_order_relaxed); }
