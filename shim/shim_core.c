/* libmoecap.so core: configuration, per-thread record rings, definitions (strings and
 * other facts later records refer to), and the process life cycle (constructor, exit,
 * fork, thread exit, the writer thread). The trace file itself: trace_file.c.
 *
 * Rings: each recording thread owns a single-producer ring that lives in the trace file,
 * mapped shared (ring.h, trace_file.c). Reserve/commit touch only the thread's own ring:
 * no lock, no allocation, no system call, no page fault (its pages were faulted in when
 * it was made). A record never wraps: when it does not fit before the ring's end, a
 * MC_REC_PAD fills the rest. A committed record is in the file at once, so a process
 * killed at any instant keeps every record it committed. The writer thread copies
 * committed records to the file's stream (one write per ring with something new) often
 * enough to keep every ring under half full; a thread whose ring is full anyway (a writer
 * starved of CPU, or none: MOECAP_FLUSH_MS=0) copies its own ring out under the file lock,
 * so no record is lost to a full ring, and only one made while the ring is in use (a
 * signal handler) or after capture stopped is dropped (and counted).
 *
 * Definitions (strings, tensors, mappings, call sites) live in an append-only chunk list
 * in memory and are appended to the file's stream when made, before any record that
 * refers to them is committed; the list is written again at the top of a fork child's
 * file so ids stay valid there. The file is created with the process's first record: a
 * process that records nothing leaves none. */
#include "shim_internal.h"
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct mc_config mc_cfg;

/* ---------------------------------------------------------------- thread buffers */

/* struct mc_tbuf (a thread's buffer) and struct mc_tls: ring.h, shared with the inline
 * fast path of the CPU BLAS interposer. */
__thread struct mc_tls mc_tls_cur __attribute__((tls_model("initial-exec")));
#define tls mc_tls_cur

static struct mc_tbuf *_Atomic g_bufs;
_Atomic int mc_enabled_flag;       /* capture on (read inline by ring.h) */
#define g_enabled mc_enabled_flag
static _Atomic int g_up;           /* constructor finished */
static _Atomic int g_started;      /* a thread of this process has recorded (mc_trace_started) */
static _Atomic int g_disable_said;
static _Atomic uint64_t g_drops;   /* events lost (buffer full, record too large, ...) */
static uint64_t g_drops_written;
static pthread_key_t g_tkey;

/* ---------------------------------------------------------------- process facts */

static pid_t g_owner_pid;              /* the process this state belongs to (set at start-up
                                          and in the fork child handler): a vfork child, or
                                          a raw clone, shares or copies it without owning it */
static char g_host[256];
static uint32_t g_host_str, g_exe_str, g_drop_reason;
static char *g_argv_blob;              /* NUL-separated argv */
static uint32_t g_argc, g_argv_bytes;

/* ---------------------------------------------------------------- definitions */

#define DEF_CHUNK (256u * 1024u)
struct mc_defchunk {
    struct mc_defchunk *_Atomic next;
    _Atomic uint32_t used;
    unsigned char data[DEF_CHUNK];
};
static struct mc_defchunk *g_def_first, *g_def_last;
static pthread_mutex_t g_def_mutex = PTHREAD_MUTEX_INITIALIZER;

/* string table: open addressing, under g_def_mutex */
struct mc_strent { uint64_t hash; uint32_t id; char *text; };
static struct mc_strent *g_strs;
static uint32_t g_strs_cap, g_strs_n, g_next_str_id = 1;

/* ---------------------------------------------------------------- families */

#define MAX_FAMILIES 16
static const struct mc_family *g_families[MAX_FAMILIES];
static _Atomic int g_nfamilies;

/* ---------------------------------------------------------------- small helpers */

uint64_t mc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int32_t mc_tid(void)
{
    if (!tls.tid) tls.tid = (int32_t)syscall(SYS_gettid);
    return tls.tid;
}

int mc_trace_started(void) { return atomic_load_explicit(&g_started, memory_order_relaxed); }

int mc_capture_enabled(void) { return atomic_load_explicit(&g_enabled, memory_order_relaxed); }

/* Async-signal-safe stderr line. */
static void say(const char *msg)
{
    size_t n = strlen(msg);
    while (n) {
        ssize_t w = write(2, msg, n);
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; return; }
        msg += w;
        n -= (size_t)w;
    }
}

static void vlog(int level, const char *fmt, va_list ap)
{
    if (mc_cfg.log_level < level) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "moecap[%d]: ", (int)getpid());
    if (n < 0) return;
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = strlen(line);
    if (len && line[len - 1] != '\n') { line[len] = '\n'; line[len + 1] = 0; }
    say(line);
}
void mc_log_info(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vlog(1, fmt, ap); va_end(ap); }
void mc_log_debug(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vlog(2, fmt, ap); va_end(ap); }

void mc_disable(const char *why)
{
    atomic_store(&g_enabled, 0);
    if (atomic_exchange(&g_disable_said, 1)) return;
    char line[1200];
    snprintf(line, sizeof line, "moecap[%d]: %s; capture disabled, the program continues unaffected\n",
             (int)getpid(), why);
    say(line);
}

static void families_flush(void);
static uint32_t rings_copy_out(struct mc_tbuf *only);

static void wake_writer(void);

/* Appends a whole record (size set, padded) to the file's stream. Caller holds
 * g_def_mutex; takes the file lock. */
static void def_to_file(const void *rec, uint32_t size)
{
    if (!mc_tf_is_open() || mc_tf_lock(0) < 0) return;
    if (mc_tf_is_open()) mc_tf_append(rec, size);
    mc_tf_unlock();
}

/* ---------------------------------------------------------------- definitions */

/* Caller holds g_def_mutex. */
static int def_append_locked(const void *rec, uint32_t size)
{
    uint32_t padded = mc_rec_padded(size);
    if (padded > DEF_CHUNK || padded < sizeof(struct mc_rec_header)) return -1;
    struct mc_defchunk *c = g_def_last;
    if (!c || atomic_load_explicit(&c->used, memory_order_relaxed) + padded > DEF_CHUNK) {
        struct mc_defchunk *n = mc_sys_mmap(sizeof *n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (n == MAP_FAILED) return -1;
        if (c) atomic_store_explicit(&c->next, n, memory_order_release);
        else g_def_first = n;
        g_def_last = c = n;
    }
    uint32_t used = atomic_load_explicit(&c->used, memory_order_relaxed);
    unsigned char *dst = c->data + used;
    memcpy(dst, rec, size);
    memset(dst + size, 0, padded - size);
    ((struct mc_rec_header *)dst)->size = padded;
    atomic_store_explicit(&c->used, used + padded, memory_order_release);
    def_to_file(dst, padded);
    return 0;
}

int mc_def_record(const void *rec, uint32_t size)
{
    if (!mc_capture_enabled()) return -1;
    pthread_mutex_lock(&g_def_mutex);
    int r = def_append_locked(rec, size);
    pthread_mutex_unlock(&g_def_mutex);
    return r;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h | 1;
}

uint32_t mc_intern(const char *text)
{
    if (!text) return 0;
    uint64_t h = str_hash(text);
    pthread_mutex_lock(&g_def_mutex);
    uint32_t id = 0;
    if (g_strs_n * 10 >= g_strs_cap * 7) {
        uint32_t ncap = g_strs_cap ? g_strs_cap * 2 : 1024;
        struct mc_strent *n = calloc(ncap, sizeof *n);
        if (!n) goto out;
        for (uint32_t i = 0; i < g_strs_cap; i++) {
            if (!g_strs[i].hash) continue;
            uint32_t j = (uint32_t)g_strs[i].hash & (ncap - 1);
            while (n[j].hash) j = (j + 1) & (ncap - 1);
            n[j] = g_strs[i];
        }
        free(g_strs);
        g_strs = n;
        g_strs_cap = ncap;
    }
    uint32_t j = (uint32_t)h & (g_strs_cap - 1);
    while (g_strs[j].hash) {
        if (g_strs[j].hash == h && !strcmp(g_strs[j].text, text)) { id = g_strs[j].id; goto out; }
        j = (j + 1) & (g_strs_cap - 1);
    }
    size_t len = strlen(text);
    if (len > 4000) len = 4000; /* paths and names; keeps every definition small */
    char *copy = strdup(text);
    if (!copy) goto out;
    unsigned char rec[sizeof(struct mc_rec_string) + 4008];
    struct mc_rec_string *s = (struct mc_rec_string *)rec;
    memset(s, 0, sizeof *s);
    s->h.type = MC_REC_STRING;
    s->id = g_next_str_id;
    s->len = (uint32_t)len;
    memcpy(rec + sizeof *s, text, len);
    rec[sizeof *s + len] = 0;
    if (def_append_locked(rec, (uint32_t)(sizeof *s + len + 1)) < 0) { free(copy); goto out; }
    id = g_next_str_id++;
    g_strs[j].hash = h;
    g_strs[j].id = id;
    g_strs[j].text = copy;
    g_strs_n++;
out:
    pthread_mutex_unlock(&g_def_mutex);
    return id;
}

void mc_note(int level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (mc_cfg.log_level >= 1 || level >= MC_NOTE_WARNING) {
        char line[1100];
        snprintf(line, sizeof line, "moecap[%d]: %s\n", (int)getpid(), text);
        say(line);
    }
    struct mc_rec_note n;
    memset(&n, 0, sizeof n);
    n.h.type = MC_REC_NOTE;
    n.t_ns = mc_now_ns();
    n.text_str = mc_intern(text);
    n.level = (uint32_t)level;
    if (n.text_str) mc_def_record(&n, sizeof n);
}

/* ---------------------------------------------------------------- the trace file */

static void read_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    while (b) {
        ssize_t r = read(fd, b + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        if (len == cap) {
            if (cap >= (1u << 20)) break; /* argv beyond 1 MiB: keep the start */
            char *n = realloc(b, cap * 2);
            if (!n) break;
            b = n;
            cap *= 2;
        }
    }
    close(fd);
    if (!b) return;
    g_argv_blob = b;
    g_argv_bytes = (uint32_t)len;
    for (size_t i = 0; i < len; i++) if (!b[i]) g_argc++;
}

/* Replays every definition so far into the (new) file. Caller holds g_def_mutex and the
 * file lock. */
static void defs_replay_locked(void)
{
    for (struct mc_defchunk *c = g_def_first; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) {
        uint32_t used = atomic_load_explicit(&c->used, memory_order_acquire);
        for (uint32_t off = 0; off < used;) {
            const struct mc_rec_header *h = (const struct mc_rec_header *)(c->data + off);
            if (mc_tf_append(h, h->size) < 0) return;
            off += h->size;
        }
    }
}

/* Creates the trace file with the process's first record: header, process record, clock,
 * every definition so far. Takes g_def_mutex and the file lock (in that order). */
static int ensure_file(void)
{
    if (mc_tf_is_open()) return 0;
    if (getpid() != g_owner_pid) return -1; /* vfork child or raw clone: not ours to create */
    pthread_mutex_lock(&g_def_mutex);
    if (mc_tf_lock(0) < 0) { pthread_mutex_unlock(&g_def_mutex); return -1; }
    int rc = 0;
    if (!mc_tf_is_open() && mc_capture_enabled()) {
        struct mc_rec_process p;
        uint32_t total = mc_rec_padded((uint32_t)sizeof p + g_argv_bytes);
        unsigned char *rec = malloc(total);
        if (!rec) rc = -1;
        else {
            memset(rec, 0, total);
            memset(&p, 0, sizeof p);
            p.h.type = MC_REC_PROCESS;
            p.h.size = total;
            p.pid = (int32_t)getpid();
            p.ppid = (int32_t)getppid();
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            clock_gettime(CLOCK_REALTIME, &b);
            p.monotonic_ns = (uint64_t)a.tv_sec * 1000000000ull + (uint64_t)a.tv_nsec;
            p.realtime_ns = (uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec;
            p.host_str = g_host_str;
            p.exe_str = g_exe_str;
            p.argc = g_argc;
            p.argv_bytes = g_argv_bytes;
            memcpy(rec, &p, sizeof p);
            if (g_argv_bytes) memcpy(rec + sizeof p, g_argv_blob, g_argv_bytes);
            rc = mc_tf_create(mc_cfg.out_dir, g_host, rec, total);
            free(rec);
            if (rc == 0) defs_replay_locked();
        }
    } else if (!mc_tf_is_open()) {
        rc = -1;
    }
    mc_tf_unlock();
    pthread_mutex_unlock(&g_def_mutex);
    return rc;
}

/* Events lost since the last call, as a MC_REC_DROPPED in the definitions' stream (not
 * kept for a fork child). Caller holds g_def_mutex. */
static void write_dropped_locked(void)
{
    uint64_t d = atomic_load(&g_drops);
    if (d == g_drops_written || !mc_tf_is_open()) return;
    struct mc_rec_dropped r;
    memset(&r, 0, sizeof r);
    r.h.type = MC_REC_DROPPED;
    r.h.size = sizeof r;
    r.t_ns = mc_now_ns();
    r.count = d - g_drops_written;
    r.reason_str = g_drop_reason;
    def_to_file(&r, sizeof r);
    g_drops_written = d;
}

/* A flush point (writer thread period, exit, fork, exec): the drop count and a fresh clock
 * pair (the records are in the file already, in the stream or in a ring). */
static void checkpoint(void)
{
    if (!mc_tf_is_open() || getpid() != g_owner_pid) return;
    pthread_mutex_lock(&g_def_mutex);
    write_dropped_locked();
    pthread_mutex_unlock(&g_def_mutex);
    if (mc_tf_lock(0) == 0) {
        mc_tf_clock_update();
        mc_tf_unlock();
    }
}

/* Before execve replaces the image (no exit handlers run then). */
void mc_core_flush_before_exec(void)
{
    if (!atomic_load(&g_up) || getpid() != g_owner_pid) return;
    if (mc_capture_enabled()) families_flush();
    rings_copy_out(NULL);
    checkpoint();
}

/* From a signal handler (async-signal-safe: no mutex): a fresh clock pair. */
void mc_core_flush_from_signal(void)
{
    int saved = errno;
    if (atomic_load(&g_up) && getpid() == g_owner_pid && mc_tf_lock(1) == 0) {
        mc_tf_clock_update();
        mc_tf_unlock();
    }
    errno = saved;
}

/* ---------------------------------------------------------------- reserve / commit */

static struct mc_tbuf *new_buf(void)
{
    /* Reuse the ring of a thread that has exited. */
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        int exp = 0;
        if (atomic_compare_exchange_strong(&b->in_use, &exp, 1)) return b;
    }
    struct mc_tbuf *b = mc_sys_mmap(sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    atomic_store(&b->in_use, 1);
    struct mc_tbuf *old = atomic_load(&g_bufs);
    do b->next = old; while (!atomic_compare_exchange_weak(&g_bufs, &old, b));
    return b;
}

static _Atomic int g_writer_running;

/* Gives b a ring in the trace file (creating the file with the process's first record),
 * its pages faulted in now: the cost (64 fresh pages for 256 KiB, 0.1-1 ms) lands on the
 * thread's first record instead of on the records of its first lap around the ring.
 * -1: capture is off. */
static int give_ring(struct mc_tbuf *b)
{
    if (ensure_file() < 0 || mc_tf_lock(0) < 0) return -1;
    struct mc_rec_ring *r = mc_tf_is_open() ? mc_tf_ring_new(mc_cfg.buf_bytes) : NULL;
    if (r) {
        b->data = (unsigned char *)(r + 1);
        b->size = r->ring_bytes;
        b->head = 0;
        b->ring = r;
    }
    mc_tf_unlock();
    return r ? 0 : -1;
}

static void *reserve_in(struct mc_tbuf *b, uint16_t type, uint32_t size);

/* First record of a thread: get a ring, announce the thread. */
static struct mc_tbuf *attach_thread(void)
{
    if (tls.dead || !atomic_load(&g_up)) return NULL;
    struct mc_tbuf *b = new_buf();
    if (!b) return NULL;
    if (!b->ring && give_ring(b) < 0) {
        atomic_store(&b->in_use, 0);
        return NULL;
    }
    atomic_store(&g_started, 1);
    tls.buf = b;
    pthread_setspecific(g_tkey, b); /* run the exit hook for this thread */
    char name[17] = {0};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    uint32_t name_str = mc_intern(name);
    struct mc_rec_thread *t = reserve_in(b, MC_REC_THREAD, sizeof *t);
    if (t) {
        t->tid = mc_tid();
        t->name_str = name_str;
        t->start_ns = mc_now_ns();
        mc_rec_commit(t);
    }
    return b;
}

static void drop(void) { atomic_fetch_add_explicit(&g_drops, 1, memory_order_relaxed); }

/* The writer thread sleeps on this word: a thread whose ring crosses half full (the writer
 * fell behind) bumps it. */
static _Atomic uint32_t g_wake_seq;

static void wake_writer(void)
{
    if (!atomic_load_explicit(&g_writer_running, memory_order_relaxed)) return;
    atomic_fetch_add_explicit(&g_wake_seq, 1, memory_order_release);
    syscall(SYS_futex, &g_wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Copies the committed records of b's ring (every ring: b NULL) to the file's stream.
 * Returns how full the fullest ring was, in 1/1024 of its size. Takes the file lock. */
static uint32_t rings_copy_out(struct mc_tbuf *only)
{
    if (getpid() != g_owner_pid || mc_tf_lock(0) < 0) return 0;
    uint32_t fullest = 0;
    for (struct mc_tbuf *b = only ? only : atomic_load(&g_bufs); b && mc_tf_is_open(); b = only ? NULL : b->next) {
        struct mc_rec_ring *r = b->ring;
        if (!r) continue;
        uint64_t used = atomic_load_explicit((_Atomic uint64_t *)&r->head, memory_order_acquire) - r->tail;
        uint32_t fill = (uint32_t)(used * 1024 / r->ring_bytes);
        if (fill > fullest) fullest = fill;
        if (used) mc_tf_ring_copy(r);
    }
    mc_tf_unlock();
    return fullest;
}

/* Records larger than this are dropped. */
#define MAX_RECORD (16u << 20)

/* A record larger than a quarter of the ring: built in a private buffer of the thread and
 * appended to the stream at commit (a system call, but such records are rare: large
 * router taps). */
static void *reserve_big(struct mc_tbuf *b, uint16_t type, uint32_t size)
{
    if (b->big_cap < size) {
        size_t cap = 65536;
        while (cap < size) cap *= 2;
        unsigned char *n = mc_sys_mmap(cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (n == MAP_FAILED) return NULL;
        if (b->big) syscall(SYS_munmap, b->big, b->big_cap);
        b->big = n;
        b->big_cap = cap;
    }
    struct mc_rec_header *h = (struct mc_rec_header *)b->big;
    memset(h, 0, size);
    h->type = type;
    h->size = size;
    b->res_end = size;
    b->res_big = 1;
    return h;
}

void mc_rec_commit_big_h(struct mc_tbuf *b)
{
    /* The thread's ring first: its records stay in the order it made them. */
    if (mc_tf_lock(0) == 0) {
        if (mc_tf_is_open() && (!b->ring || mc_tf_ring_copy(b->ring) == 0)) mc_tf_append(b->big, (uint32_t)b->res_end);
        mc_tf_unlock();
    } else {
        drop();
    }
    b->res_big = 0;
    atomic_signal_fence(memory_order_seq_cst);
    b->reserved = 0;
}

static void *reserve_in(struct mc_tbuf *b, uint16_t type, uint32_t size)
{
    if (b->reserved) return NULL; /* re-entry (BLAS calling BLAS, a signal handler) */
    /* Claimed before head is read: a signal handler that records between here and the
     * return finds the ring reserved (and records nothing) rather than taking the same
     * bytes. */
    b->reserved = 1;
    atomic_signal_fence(memory_order_seq_cst);
    size = mc_rec_padded(size);
    if (size > MAX_RECORD || size < sizeof(struct mc_rec_header)) goto fail;
    if (size > b->size / 4) {
        void *p = reserve_big(b, type, size);
        if (!p) goto fail;
        return p;
    }
    for (int attempt = 0;; attempt++) {
        uint64_t head = b->head;
        uint32_t pos = (uint32_t)(head & (b->size - 1));
        uint32_t pad = pos + size > b->size ? b->size - pos : 0;
        uint64_t tail = atomic_load_explicit((_Atomic uint64_t *)&b->ring->tail, memory_order_acquire);
        uint64_t used_after = head + pad + size - tail;
        if (used_after <= b->size) {
            /* Crossing half full: the writer thread is behind (or asleep for its whole
             * period); wake it. */
            if (used_after > b->size / 2 && head - tail <= b->size / 2) wake_writer();
            if (pad) {
                struct mc_rec_header *p = (struct mc_rec_header *)(b->data + pos);
                p->type = MC_REC_PAD;
                p->flags = 0;
                p->size = pad;
                head += pad;
                b->head = head;
                atomic_store_explicit((_Atomic uint64_t *)&b->ring->head, head, memory_order_release);
                pos = 0;
            }
            struct mc_rec_header *h = (struct mc_rec_header *)(b->data + pos);
            memset(h, 0, size);
            h->type = type;
            h->size = size;
            b->res_end = head + size;
            return h;
        }
        if (attempt == 1) goto fail;
        /* Ring full (the writer is starved of CPU, or there is none): copy it out here,
         * a write() on this thread, rare and amortised over the ring. Still reserved: no
         * nested records meanwhile. */
        rings_copy_out(b);
        if (!mc_capture_enabled()) {
            atomic_signal_fence(memory_order_seq_cst);
            b->reserved = 0;
            return NULL;
        }
    }
fail:
    drop();
    atomic_signal_fence(memory_order_seq_cst);
    b->reserved = 0;
    return NULL;
}

void *mc_rec_reserve(uint16_t type, uint32_t size)
{
    if (!atomic_load_explicit(&g_enabled, memory_order_relaxed)) return NULL;
    struct mc_tbuf *b = tls.buf;
    if (__builtin_expect(!b, 0)) {
        b = attach_thread();
        if (!b) return NULL;
    }
    return reserve_in(b, type, size);
}

void mc_rec_commit(void *rec)
{
    if (rec) mc_ring_commit();
}

/* Hidden aliases: the interposers in this library call these directly, not through the
 * PLT (the exported names stay interposable for nobody's benefit but cost an indirect
 * jump per call). */
extern __typeof(mc_rec_reserve) mc_rec_reserve_h __attribute__((alias("mc_rec_reserve"), visibility("hidden")));
extern __typeof(mc_tid) mc_tid_h __attribute__((alias("mc_tid"), visibility("hidden")));

void mc_rec_cancel(void *rec)
{
    struct mc_tbuf *b = tls.buf;
    if (!b || !rec || !b->reserved) return;
    b->res_big = 0; /* the ring's head never moved: its bytes are free space again */
    atomic_signal_fence(memory_order_seq_cst);
    b->reserved = 0;
}

/* ---------------------------------------------------------------- families */

void mc_family_register(const struct mc_family *f)
{
    int i = atomic_fetch_add(&g_nfamilies, 1);
    if (i >= MAX_FAMILIES) {
        atomic_fetch_sub(&g_nfamilies, 1);
        mc_note(MC_NOTE_ERROR, "more than %d interposer families, %s ignored", MAX_FAMILIES, f->name);
        return;
    }
    g_families[i] = f;
    if (atomic_load(&g_up) && mc_capture_enabled() && f->init) f->init();
}

/* Runs one hook (offsetof(struct mc_family, hook)) of every family that has it, in
 * registration order or reversed. */
static void family_hooks(size_t hook, int reversed)
{
    int n = atomic_load(&g_nfamilies);
    if (n > MAX_FAMILIES) n = MAX_FAMILIES;
    for (int k = 0; k < n; k++) {
        const struct mc_family *f = g_families[reversed ? n - 1 - k : k];
        if (!f) continue;
        void (*fn)(void);
        memcpy(&fn, (const char *)f + hook, sizeof fn);
        if (fn) fn();
    }
}
#define FAMILY_HOOKS(hook, reversed) family_hooks(offsetof(struct mc_family, hook), reversed)

static void families_flush(void) { FAMILY_HOOKS(flush, 0); }

/* ---------------------------------------------------------------- writer thread */

static pthread_t g_writer;

/* Write-faults the pages of every ring that writeback cleaned and write-protected since,
 * so the recording threads do not take those faults. Rings are unmapped only in a fork
 * child (one thread): no lock needed. */
static void rings_refault(void)
{
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        struct mc_rec_ring *r = b->ring;
        if (r) mc_tf_ring_refault(r);
    }
}

static void *writer_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "moecap-writer", 0, 0, 0);
    /* Background priority: at nice 0, woken by a thread whose ring crossed half full, it
     * would preempt that thread on its own core; at nice 19 it runs on a free core. The
     * price, on a machine whose every core is busy: a ring may fill up and its thread then
     * copies it out itself. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    tls.dead = 1; /* this thread never records */
    mc_callsite_warm_up(); /* here, not in the constructor: the program's start is not delayed */
    unsigned period = mc_cfg.flush_ms, poll = period;
    uint64_t last_period = mc_now_ns();
    while (atomic_load(&g_writer_running)) {
        struct timespec ts = {(time_t)(poll / 1000), (long)(poll % 1000) * 1000000L};
        uint32_t seen = atomic_load_explicit(&g_wake_seq, memory_order_acquire);
        /* Sleep until the poll interval ends or a thread wakes us. */
        syscall(SYS_futex, &g_wake_seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
        if (!mc_capture_enabled()) continue;
        /* Copy out, and poll more often while rings fill fast (so that they stay well
         * under half full: no thread then wakes us or copies its own ring), less often
         * when they do not (1 ms .. MOECAP_FLUSH_MS): at once down to 1 ms when a ring
         * was over a quarter full, halving while over 1/8, doubling while under 1/32. */
        uint32_t fullest = rings_copy_out(NULL);
        if (fullest > 1024 / 4) poll = 1;   /* a thread woke us at half full: far behind */
        else if (fullest > 1024 / 8) poll = poll / 2 > 1 ? poll / 2 : 1;
        else if (fullest < 1024 / 32) poll = poll * 2 < period ? poll * 2 : period;
        uint64_t now = mc_now_ns();
        if (now - last_period >= (uint64_t)period * 1000000u) {
            last_period = now;
            rings_refault();
            mc_maps_refresh(0);
            checkpoint();
        }
    }
    return NULL;
}

static void start_writer(void)
{
    if (!mc_cfg.flush_ms) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals go to the program's threads */
    atomic_store(&g_writer_running, 1);
    if (pthread_create(&g_writer, NULL, writer_main, NULL) != 0) atomic_store(&g_writer_running, 0);
    else pthread_detach(g_writer);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---------------------------------------------------------------- life cycle */

static void thread_exit(void *arg)
{
    struct mc_tbuf *b = arg;
    tls.dead = 1;
    if (!b) return;
    tls.buf = NULL;
    mc_callsite_thread_exit();
    atomic_store(&b->in_use, 0);
}

static _Atomic int g_finished;

static void finish(void)
{
    if (!atomic_load(&g_up) || atomic_exchange(&g_finished, 1)) return;
    if (mc_capture_enabled()) {
        families_flush();
        FAMILY_HOOKS(exit, 1);
        mc_maps_refresh(0);
    }
    rings_copy_out(NULL);
    checkpoint();
    /* Keep recording: later destructors may still call BLAS (their records stay in the
     * rings, in the file, where the reader finds them). */
}

static int g_fork_locked;

/* Lock order (shim_core.h): call-site unwinders -> maps -> signal table -> families ->
 * definitions -> trace file. */
static void at_fork_prepare(void)
{
    if (!atomic_load(&g_up)) return;
    if (mc_capture_enabled()) families_flush();
    mc_callsite_fork_lock();
    mc_maps_fork_lock();
    mc_signals_fork_lock();
    FAMILY_HOOKS(fork_prepare, 0);
    pthread_mutex_lock(&g_def_mutex);
    write_dropped_locked();
    g_fork_locked = mc_tf_lock(0) == 0;
    if (g_fork_locked) mc_tf_clock_update();
}

static void at_fork_parent(void)
{
    if (!atomic_load(&g_up)) return;
    if (g_fork_locked) mc_tf_unlock();
    pthread_mutex_unlock(&g_def_mutex);
    FAMILY_HOOKS(fork_parent, 1);
    mc_signals_fork_unlock();
    mc_maps_fork_unlock();
    mc_callsite_fork_unlock();
}

static void at_fork_child(void)
{
    if (!atomic_load(&g_up)) return;
    g_owner_pid = getpid();
    tls.tid = 0;
    /* The parent's rings are in the parent's file: the child forgets them (they are
     * unmapped), and every buffer gets a ring of the child's file when it next records.
     * Buffers of threads that do not exist in the child become free for reuse. */
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        b->ring = NULL;
        b->data = NULL;
        b->size = 0;
        b->head = b->res_end = 0;
        b->res_big = 0;
        if (b != tls.buf) { b->reserved = 0; atomic_store(&b->in_use, 0); }
    }
    mc_tf_forget_after_fork();
    atomic_store(&g_drops, 0);
    g_drops_written = 0;
    atomic_store(&g_finished, 0);
    pthread_mutex_unlock(&g_def_mutex);
    /* Families release their locks only after the core's own state is the child's: their
     * fork_child hooks may record. */
    mc_signals_fork_unlock();
    mc_maps_after_fork();
    mc_callsite_after_fork();
    /* The child has recorded nothing yet: its thread attaches again (THREAD record) with
     * its first record, and a child that records nothing (fork + exec of a helper) leaves
     * no file. */
    if (tls.buf) {
        tls.buf->reserved = 0;
        atomic_store(&tls.buf->in_use, 0);
        tls.buf = NULL;
        pthread_setspecific(g_tkey, NULL);
    }
    atomic_store(&g_started, 0);
    FAMILY_HOOKS(fork_child, 1);
    if (mc_capture_enabled()) start_writer();
}

static unsigned long env_ulong(const char *name, unsigned long dflt, unsigned long max)
{
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    if (*end || x > max) {
        char line[300];
        snprintf(line, sizeof line, "moecap: ignoring %s=%s (want an integer <= %lu), using %lu\n", name, v, max, dflt);
        say(line);
        return dflt;
    }
    return x;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0777) < 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    if (access(dir, W_OK | X_OK) < 0) return -1;
    return 0;
}

static void read_config(void)
{
    const char *d = getenv("MOECAP_DISABLE");
    mc_cfg.disabled = d && *d && strcmp(d, "0") != 0;
    const char *l = getenv("MOECAP_LOG");
    mc_cfg.log_level = 0;
    if (l && !strcmp(l, "info")) mc_cfg.log_level = 1;
    else if (l && !strcmp(l, "debug")) mc_cfg.log_level = 2;
    else if (l && *l && strcmp(l, "quiet") != 0)
        say("moecap: MOECAP_LOG must be quiet, info or debug; using quiet\n");
    mc_cfg.stack_depth = (int)env_ulong("MOECAP_STACK", 8, 64);
    mc_cfg.stack_exact = (int)env_ulong("MOECAP_STACK_EXACT", 0, 1);
    /* A thread's ring (in the trace file): a power of two, 64 KiB .. 64 MiB. */
    unsigned long kb = env_ulong("MOECAP_BUF_KB", 256, 1u << 20);
    uint32_t bytes = 64 * 1024;
    while (bytes < kb * 1024 && bytes < (64u << 20)) bytes <<= 1;
    mc_cfg.buf_bytes = bytes;
    mc_cfg.flush_ms = (unsigned)env_ulong("MOECAP_FLUSH_MS", 500, 3600000);
    const char *o = getenv("MOECAP_OUT");
    snprintf(mc_cfg.out_dir, sizeof mc_cfg.out_dir, "%s", o && *o ? o : "./moecap-out");
}

__attribute__((constructor(101))) static void mc_core_init(void)
{
    if (atomic_load(&g_up)) return;
    read_config();
    if (mc_cfg.disabled) return;
    if (mkdir_p(mc_cfg.out_dir) < 0) {
        char why[4400];
        snprintf(why, sizeof why, "MOECAP_OUT=%s is not a writable directory (%s)", mc_cfg.out_dir, strerror(errno));
        mc_disable(why);
        return;
    }
    /* Make the directory absolute, once: the program may chdir before the file is
     * created, and children it starts elsewhere (with this environment) must write to the
     * same run directory, so the absolute path is exported too. */
    char *abs = realpath(mc_cfg.out_dir, NULL);
    if (abs) {
        snprintf(mc_cfg.out_dir, sizeof mc_cfg.out_dir, "%s", abs);
        free(abs);
        setenv("MOECAP_OUT", mc_cfg.out_dir, 1);
    }
    if (gethostname(g_host, sizeof g_host - 1) < 0 || !g_host[0]) strcpy(g_host, "host");
    for (char *c = g_host; *c; c++) if (*c == '/') *c = '_';
    pthread_key_create(&g_tkey, thread_exit);
    g_owner_pid = getpid();
    read_cmdline();
    g_host_str = mc_intern(g_host);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    g_exe_str = mc_intern(exe);
    g_drop_reason = mc_intern("record too large, trace file could not grow (disk full), or a record made "
                              "while the thread's buffer was in use (signal handler)");
    mc_tf_clock_init();
    atomic_store(&g_enabled, 1);
    mc_maps_refresh(1);
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
    atexit(finish);
    mc_signals_install();
    atomic_store(&g_up, 1);
    FAMILY_HOOKS(init, 0);
    start_writer();
    if (!atomic_load(&g_writer_running)) mc_callsite_warm_up(); /* no writer thread to do it */
    mc_log_info("capture on: MOECAP_OUT=%s stack=%d buffer=%u KiB flush=%u ms", mc_cfg.out_dir,
                mc_cfg.stack_depth, mc_cfg.buf_bytes / 1024, mc_cfg.flush_ms);
}

__attribute__((destructor)) static void mc_core_fini(void) { finish(); }
