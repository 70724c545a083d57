/* libmoecap.so core: configuration, per-thread record buffers, definitions (strings and
 * other facts later records refer to), the trace writer, and the process life cycle
 * (constructor, exit, fork, thread exit, periodic flushing).
 *
 * Buffers: each thread owns a single-producer ring (mmap'ed, never freed, reused after the
 * thread exits). Reserve/commit touch only the thread's own ring: no lock, no allocation.
 * A record never wraps: when it does not fit before the ring's end, a MC_REC_PAD fills the
 * rest. Whoever flushes (writer thread, a thread whose ring is full, exit, fork, a signal)
 * takes the file lock and writes whole committed records only, so a killed process leaves
 * a file that reads up to its last whole record.
 *
 * Definitions (strings, tensors, mappings, call sites) live in an append-only chunk list
 * that is written to the file before any ring data committed after them, and replayed at
 * the top of a fork child's file so ids stay valid there. */
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
int mc_tsc_ok;
static uint64_t g_tsc0, g_ns0;  /* calibration anchor taken at start-up */

/* ---------------------------------------------------------------- thread buffers */

/* struct mc_tbuf (a thread's ring) and struct mc_tls: ring.h, shared with the inline
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

/* ---------------------------------------------------------------- trace file state */

static _Atomic int32_t g_file_lock;   /* tid of the holder, 0 = free */
static _Atomic int g_fd = -1;
static pid_t g_fd_pid;                 /* the process g_fd belongs to */
static pid_t g_owner_pid;              /* the process this state belongs to (set at start-up
                                          and in the fork child handler): a vfork child, or
                                          a raw clone, shares or copies it without owning it */
static char g_path[4600];              /* the trace file */
static dev_t g_fd_dev;                 /* identity of the trace file, to notice a program */
static ino_t g_fd_ino;                 /* that closed our descriptor and reused the number */

int mc_core_trace_fd(void) { return atomic_load_explicit(&g_fd, memory_order_relaxed); }
static int g_file_failed;
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
static struct mc_defchunk *g_def_wchunk;   /* write position (under file lock) */
static uint32_t g_def_woff;
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

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        if (w == 0) { errno = ENOSPC; return -1; }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---------------------------------------------------------------- file lock */

/* Normal context: wait. Signal context: give up after ~0.2 s, or at once when this
 * thread already holds it (the signal interrupted our own flush). */
static int file_lock(int from_signal)
{
    int32_t me = mc_tid(), exp = 0;
    if (atomic_load(&g_file_lock) == me) return -1;
    for (long spins = 0;; spins++) {
        exp = 0;
        if (atomic_compare_exchange_weak(&g_file_lock, &exp, me)) return 0;
        if (from_signal && spins > 2000) return -1;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}
static void file_unlock(void) { atomic_store(&g_file_lock, 0); }

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

/* Writes definitions appended since the last call. Caller holds the file lock. */
static int defs_write_pending(void)
{
    if (!g_def_wchunk) {
        if (!g_def_first) return 0;
        g_def_wchunk = g_def_first;
        g_def_woff = 0;
    }
    for (;;) {
        struct mc_defchunk *c = g_def_wchunk;
        uint32_t used = atomic_load_explicit(&c->used, memory_order_acquire);
        if (used > g_def_woff) {
            if (write_all(g_fd, c->data + g_def_woff, used - g_def_woff) < 0) return -1;
            g_def_woff = used;
        }
        struct mc_defchunk *n = atomic_load_explicit(&c->next, memory_order_acquire);
        /* Move on only once this chunk is final (a successor exists): then `used` of c
         * cannot grow any more, but re-read it to pick up a last append. */
        if (!n) return 0;
        used = atomic_load_explicit(&c->used, memory_order_acquire);
        if (used > g_def_woff) continue;
        g_def_wchunk = n;
        g_def_woff = 0;
    }
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

/* Creates <out>/<host>-<pid>.mct (or .1.mct, ... when that name exists: an exec'd image
 * reusing the pid of a forked child), writes the header, the process record and every
 * definition so far. Caller holds the file lock. Async-signal-safe. */
static int open_trace_file(void)
{
    char path[4600];
    pid_t pid = getpid();
    int fd = -1;
    for (int n = 0; n < 100 && fd < 0; n++) {
        if (n == 0) snprintf(path, sizeof path, "%s/%s-%d.mct", mc_cfg.out_dir, g_host, (int)pid);
        else snprintf(path, sizeof path, "%s/%s-%d.%d.mct", mc_cfg.out_dir, g_host, (int)pid, n);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        char why[4800];
        snprintf(why, sizeof why, "cannot create trace file %s: %s (set MOECAP_OUT to a writable directory)",
                 path, strerror(errno));
        g_file_failed = 1;
        mc_disable(why);
        return -1;
    }
    struct mc_file_header fh;
    memset(&fh, 0, sizeof fh);
    memcpy(fh.magic, MC_TRACE_MAGIC, 8);
    fh.version_major = MC_TRACE_VERSION_MAJOR;
    fh.version_minor = MC_TRACE_VERSION_MINOR;
    fh.header_size = sizeof fh;
    struct mc_rec_process p;
    memset(&p, 0, sizeof p);
    p.h.type = MC_REC_PROCESS;
    p.h.size = mc_rec_padded((uint32_t)sizeof p + g_argv_bytes);
    p.pid = (int32_t)pid;
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
    static const unsigned char zeros[8];
    if (write_all(fd, &fh, sizeof fh) < 0 || write_all(fd, &p, sizeof p) < 0 ||
        (g_argv_bytes && write_all(fd, g_argv_blob, g_argv_bytes) < 0) ||
        write_all(fd, zeros, p.h.size - sizeof p - g_argv_bytes) < 0) {
        char why[4800];
        snprintf(why, sizeof why, "cannot write trace file %s: %s", path, strerror(errno));
        close(fd);
        g_file_failed = 1;
        mc_disable(why);
        return -1;
    }
    /* Keep the descriptor out of the low numbers programs close or dup2 over, but inside
     * the initial descriptor table (64 entries): growing the table in a threaded process
     * waits for an RCU grace period, ~15 ms here. */
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 40);
    if (hi >= 0) { close(fd); fd = hi; }
    struct stat st;
    if (fstat(fd, &st) == 0) { g_fd_dev = st.st_dev; g_fd_ino = st.st_ino; }
    memcpy(g_path, path, sizeof g_path);
    g_fd = fd;
    g_fd_pid = pid;
    g_def_wchunk = NULL; /* replay every definition into this file */
    g_def_woff = 0;
    if (mc_cfg.log_level >= 1) {
        char line[4700];
        snprintf(line, sizeof line, "moecap[%d]: tracing to %s\n", (int)pid, path);
        say(line);
    }
    return 0;
}

static void write_failed(void)
{
    char why[256];
    snprintf(why, sizeof why, "cannot write the trace (%s)", strerror(errno));
    g_file_failed = 1;
    mc_disable(why);
}

#if defined(__x86_64__)
/* TSC and CLOCK_MONOTONIC read back to back (the pair whose read took least). */
static void tsc_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t a = __rdtsc(), n = mc_now_ns(), b = __rdtsc();
        if (b - a < best) { best = b - a; *tsc = a + (b - a) / 2; *ns = n; }
    }
}

/* Converts tick-stamped records of [p, p+n) (whole records) to ns in place. Linear
 * interpolation between the start-up anchor and a pair taken now: exact at both ends
 * (within the ~20 ns a pair takes) for an invariant TSC. */
static void convert_ticks(unsigned char *p, size_t n)
{
    uint64_t tsc1 = 0, ns1 = 0;
    int have = 0;
    double slope = 0;
    for (size_t off = 0; off + sizeof(struct mc_rec_header) <= n;) {
        struct mc_rec_header *h = (struct mc_rec_header *)(p + off);
        if (h->size < sizeof *h || off + h->size > n) break;
        if ((h->flags & MC_RECF_TICKS) && h->type == MC_REC_GEMM_CPU && h->size >= sizeof(struct mc_rec_gemm_cpu)) {
            if (!have) {
                tsc_pair(&tsc1, &ns1);
                slope = tsc1 > g_tsc0 ? (double)(ns1 - g_ns0) / (double)(tsc1 - g_tsc0) : 0;
                have = 1;
            }
            struct mc_rec_gemm_cpu *g = (struct mc_rec_gemm_cpu *)h;
            g->t_begin_ns = g_ns0 + (uint64_t)((double)(g->t_begin_ns - g_tsc0) * slope);
            g->t_end_ns = g_ns0 + (uint64_t)((double)(g->t_end_ns - g_tsc0) * slope);
        }
        h->flags &= (uint16_t)~MC_RECF_TICKS;
        off += h->size;
    }
}

static int tsc_usable(void)
{
    const char *e = getenv("MOECAP_TSC");
    if (e && !strcmp(e, "0")) return 0;
    /* Only where the kernel trusts the TSC as its clock source (then it is invariant and
     * synchronised across CPUs). */
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[32] = {0};
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    return r >= 3 && !strncmp(buf, "tsc", 3) && (buf[3] == '\n' || buf[3] == 0);
}
#else
static void convert_ticks(unsigned char *p, size_t n) { (void)p; (void)n; }
static int tsc_usable(void) { return 0; }
#endif

/* Writes one ring's committed records. Caller holds the file lock; the file is open. */
static void flush_buf_locked(struct mc_tbuf *b)
{
    int exp = 0;
    if (!atomic_compare_exchange_strong(&b->flushing, &exp, 1)) return;
    uint64_t head = atomic_load_explicit(&b->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
    /* Definitions the committed records may refer to were appended before their commit,
     * so reading the definitions after `head` includes them. */
    if (head != tail && defs_write_pending() < 0) { write_failed(); goto out; }
    while (tail < head) {
        uint32_t pos = (uint32_t)(tail & (b->size - 1));
        uint64_t n = head - tail;
        if (n > b->size - pos) n = b->size - pos;
        if (mc_tsc_ok) convert_ticks(b->data + pos, (size_t)n);
        if (write_all(g_fd, b->data + pos, (size_t)n) < 0) { write_failed(); break; }
        tail += n;
        atomic_store_explicit(&b->tail, tail, memory_order_release);
    }
out:
    atomic_store(&b->flushing, 0);
}

static int any_pending(void)
{
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next)
        if (atomic_load(&b->head) != atomic_load(&b->tail)) return 1;
    return 0;
}

static void write_dropped_locked(void)
{
    uint64_t d = atomic_load(&g_drops);
    if (d == g_drops_written || g_fd < 0) return;
    struct mc_rec_dropped r;
    memset(&r, 0, sizeof r);
    r.h.type = MC_REC_DROPPED;
    r.h.size = sizeof r;
    r.t_ns = mc_now_ns();
    r.count = d - g_drops_written;
    r.reason_str = g_drop_reason;
    if (write_all(g_fd, &r, sizeof r) == 0) g_drops_written = d;
}

/* Flush everything. Opens the file on first need (lazily, so processes that never record
 * anything, e.g. shell utilities that inherit LD_PRELOAD, leave no file). */
static void flush_all_locked(void)
{
    if (g_file_failed) return;
    /* Not the owner (vfork child before exec, clone without fork handlers): writing would
     * put the parent's events in the wrong file or change the parent's state. */
    if (getpid() != g_owner_pid) return;
    if (g_fd >= 0) {
        struct stat st;
        if (fstat(g_fd, &st) < 0 || st.st_dev != g_fd_dev || st.st_ino != g_fd_ino) {
            /* The program closed our descriptor (close_range syscall, ...), perhaps reusing
             * the number: leave that one alone and reopen our own file. */
            int fd = open(g_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
            int hi = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 40) : -1;
            if (hi >= 0) { close(fd); fd = hi; }
            if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != g_fd_dev || st.st_ino != g_fd_ino) {
                if (fd >= 0) close(fd);
                g_fd = -1;
                g_file_failed = 1;
                mc_disable("the program closed the trace file's descriptor and the file cannot be reopened");
                return;
            }
            g_fd = fd;
        }
    }
    if (g_fd < 0) {
        if (!any_pending() && atomic_load(&g_drops) == 0) return;
        if (open_trace_file() < 0) return;
    }
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next)
        if (atomic_load(&b->head) != atomic_load(&b->tail)) flush_buf_locked(b);
    if (!g_file_failed && defs_write_pending() < 0) write_failed();
    write_dropped_locked();
}

static void flush_all(void)
{
    if (file_lock(0) < 0) return;
    flush_all_locked();
    file_unlock();
}

/* Before execve replaces the image (no exit handlers run then). */
void mc_core_flush_before_exec(void)
{
    if (!atomic_load(&g_up) || getpid() != g_owner_pid) return;
    if (mc_capture_enabled()) families_flush();
    flush_all();
}

void mc_core_flush_from_signal(void)
{
    int saved = errno;
    if (!atomic_load(&g_up) || getpid() != g_owner_pid) { errno = saved; return; } /* vfork child */
    if (file_lock(1) == 0) {
        flush_all_locked();
        file_unlock();
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
    size_t bytes = sizeof(struct mc_tbuf) + mc_cfg.buf_bytes;
    /* Populated now: first-touch page faults would otherwise land on the program's calls. */
    struct mc_tbuf *b = mc_sys_mmap(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (b == MAP_FAILED) return NULL;
    b->size = mc_cfg.buf_bytes;
    b->data = (unsigned char *)(b + 1);
    atomic_store(&b->in_use, 1);
    struct mc_tbuf *old = atomic_load(&g_bufs);
    do b->next = old; while (!atomic_compare_exchange_weak(&g_bufs, &old, b));
    return b;
}

static void *reserve_in(struct mc_tbuf *b, uint16_t type, uint32_t size);

/* First record of a thread: get a ring, announce the thread. */
static struct mc_tbuf *attach_thread(void)
{
    if (tls.dead || !atomic_load(&g_up)) return NULL;
    struct mc_tbuf *b = new_buf();
    if (!b) return NULL;
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

/* The writer thread sleeps on this word; a producer whose ring crosses half full bumps it
 * and wakes the writer, so the cost of write() lands on the writer thread rather than on
 * the program's thread (which flushes itself only when its ring is completely full). */
static _Atomic uint32_t g_wake_seq;
static _Atomic int g_writer_running;

static void wake_writer(void)
{
    atomic_fetch_add_explicit(&g_wake_seq, 1, memory_order_release);
    syscall(SYS_futex, &g_wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
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
    if (size > b->size / 4 || size < sizeof(struct mc_rec_header)) goto fail;
    uint64_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    for (int attempt = 0;; attempt++) {
        uint32_t pos = (uint32_t)(head & (b->size - 1));
        uint32_t pad = pos + size > b->size ? b->size - pos : 0;
        uint64_t tail = atomic_load_explicit(&b->tail, memory_order_acquire);
        uint64_t used_after = head + pad + size - tail;
        if (used_after <= b->size) {
            if (used_after >= b->size / 2 && head - tail < b->size / 2 &&
                atomic_load_explicit(&g_writer_running, memory_order_relaxed))
                wake_writer();
            if (pad) {
                struct mc_rec_header *p = (struct mc_rec_header *)(b->data + pos);
                p->type = MC_REC_PAD;
                p->flags = 0;
                p->size = pad;
                head += pad;
                pos = 0;
            }
            struct mc_rec_header *h = (struct mc_rec_header *)(b->data + pos);
            memset(h, 0, size);
            h->type = type;
            h->size = size;
            b->res_end = head + size;
            if (pad) atomic_store_explicit(&b->head, head, memory_order_release);
            return h;
        }
        if (attempt == 1) goto fail;
        /* Ring full: flush it ourselves (rare; amortised over the whole ring). Still
         * reserved: no nested records while we are in the writer. */
        flush_all();
        if (!mc_capture_enabled()) { b->reserved = 0; return NULL; }
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
    if (!b || !rec) return;
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

static void *writer_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "moecap-writer", 0, 0, 0);
    /* Background priority. At nice 0, woken by a producer whose ring crossed half full,
     * this thread preempted that producer on its own core and wrote there (+240-280 us in
     * the moe-ref decode step that crossed it, measured with the other core idle); at
     * nice 19 it does not preempt the program's threads and runs on a free core. The
     * price, on a machine whose every core is busy: it gets a small share, so a program
     * thread that needs the file lock while it writes (its own ring full, exit, fork)
     * may wait longer. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    tls.dead = 1; /* this thread never records */
    mc_callsite_warm_up(); /* here, not in the constructor: the program's start is not delayed */
    while (atomic_load(&g_writer_running)) {
        struct timespec ts = {(time_t)(mc_cfg.flush_ms / 1000), (long)(mc_cfg.flush_ms % 1000) * 1000000L};
        uint32_t seen = atomic_load_explicit(&g_wake_seq, memory_order_acquire);
        /* Sleep until the period ends or a ring crosses half full. */
        syscall(SYS_futex, &g_wake_seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
        if (!mc_capture_enabled()) continue;
        mc_maps_refresh(0);
        flush_all();
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
    if (mc_capture_enabled()) flush_all();
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
    flush_all();
    /* Keep recording: later destructors may still call BLAS; a later finish is a no-op,
     * so those records are flushed only by the writer thread if it is still running. */
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
    g_fork_locked = file_lock(0) == 0;
    if (g_fork_locked) flush_all_locked();
}

static void at_fork_parent(void)
{
    if (!atomic_load(&g_up)) return;
    if (g_fork_locked) file_unlock();
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
    /* The parent's buffered events belong to the parent's file: drop them here. Rings of
     * threads that do not exist in the child become free for reuse. */
    for (struct mc_tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        atomic_store(&b->tail, atomic_load(&b->head));
        atomic_store(&b->flushing, 0);
        if (b != tls.buf) { b->reserved = 0; atomic_store(&b->in_use, 0); }
    }
    int inherited = g_fd;
    g_fd = -1; /* first: close() of the trace descriptor is ignored while it is ours */
    if (inherited >= 0) close(inherited);
    g_file_failed = 0;
    atomic_store(&g_drops, 0);
    g_drops_written = 0;
    atomic_store(&g_finished, 0);
    atomic_store(&g_file_lock, 0);
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
    unsigned long kb = env_ulong("MOECAP_BUF_KB", 1024, 1u << 20);
    uint32_t bytes = 64 * 1024;
    while (bytes < kb * 1024 && bytes < (1u << 30)) bytes <<= 1;
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
    /* Make the directory absolute: the program may chdir before the file is created. */
    char *abs = realpath(mc_cfg.out_dir, NULL);
    if (abs) { snprintf(mc_cfg.out_dir, sizeof mc_cfg.out_dir, "%s", abs); free(abs); }
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
    g_drop_reason = mc_intern("thread ring full while the trace could not be written fast enough, or record too large");
#if defined(__x86_64__)
    if (tsc_usable()) { tsc_pair(&g_tsc0, &g_ns0); mc_tsc_ok = 1; }
#else
    (void)tsc_usable;
#endif
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
