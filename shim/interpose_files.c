/* Weight-file tracking: open/openat(64)/fopen of *.safetensors and *.gguf, and
 * mmap/read/pread/close on those descriptors.
 *
 * When a safetensors file is opened, its header (8-byte LE length + JSON) is read once
 * with pread (the program's file offset is untouched) and every tensor becomes a
 * MC_REC_TENSOR definition with absolute file offsets. Each mmap of, read from or pread
 * from a tracked descriptor becomes a MC_REC_FILE_MAP (address, file offset, length), so
 * the post-processor can name the weight behind a GEMM operand. GGUF files are tracked for
 * mappings and reads, and their tensor table is parsed the same way (shim/gguf_hdr.c).
 *
 * The cost for every other descriptor is one array load: fds are looked up in a fixed
 * table (fds >= MC_MAX_FD are not tracked). fopen'ed files get their tensor table parsed
 * but no read tracking (stdio reads bypass these symbols).
 *
 * Host FILE_MAP records are definitions (mc_def_record): a fork child's trace starts with
 * them, as with the tensor table, and the parent's trace has each once. The same ranges
 * go to shim/filemap.c, which host->device copies look up (shim/cuda/cuda_common.c);
 * munmap, mremap and any mmap placed over a range take it out of that set. */
#include "shim_internal.h"
#include "filemap.h"
#include "gguf_hdr.h"
#include "safetensors_hdr.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define MC_MAX_FD 65536
static _Atomic uint32_t g_fd_path[MC_MAX_FD]; /* fd -> path string id, 0 = not tracked */

static struct mc_real r_open = MC_REAL_INIT("open"),
    r_open64 = MC_REAL_INIT("open64"),
    r_openat = MC_REAL_INIT("openat"),
    r_openat64 = MC_REAL_INIT("openat64"),
    r_open_2 = MC_REAL_INIT("__open_2"),
    r_open64_2 = MC_REAL_INIT("__open64_2"),
    r_mmap = MC_REAL_INIT("mmap"),
    r_mmap64 = MC_REAL_INIT("mmap64"),
    r_read = MC_REAL_INIT("read"),
    r_pread = MC_REAL_INIT("pread"),
    r_pread64 = MC_REAL_INIT("pread64"),
    r_close = MC_REAL_INIT("close"),
    r_fopen = MC_REAL_INIT("fopen"),
    r_fopen64 = MC_REAL_INIT("fopen64"),
    r_munmap = MC_REAL_INIT("munmap"),
    r_mremap = MC_REAL_INIT("mremap");

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef int (*close_fn)(int);
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t m = strlen(suf);
    return n >= m && !memcmp(s + n - m, suf, m);
}

/* 1 = safetensors, 2 = gguf, 0 = not a weight file */
static int weight_kind(const char *path)
{
    if (!path) return 0;
    size_t n = strlen(path);
    if (ends_with(path, n, ".safetensors")) return 1;
    if (ends_with(path, n, ".gguf")) return 2;
    return 0;
}

static ssize_t raw_pread(int fd, void *buf, size_t n, off_t off)
{
    pread_fn f = (pread_fn)mc_real(&r_pread);
    return f ? f(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
}

/* ---------------------------------------------------------------- tensor tables */

static pthread_mutex_t g_parsed_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *g_parsed;   /* path ids whose table is already in the trace */
static size_t g_nparsed, g_capparsed;

struct emit_ctx { uint32_t path_str; uint64_t data_start; };

static void emit_tensor(void *arg, const struct mc_st_tensor *t)
{
    const struct emit_ctx *c = arg;
    struct mc_rec_tensor r;
    memset(&r, 0, sizeof r);
    r.h.type = MC_REC_TENSOR;
    r.file_begin = c->data_start + t->begin;
    r.file_end = c->data_start + t->end;
    r.ndim = t->ndim > 8 ? 8 : t->ndim;
    for (uint32_t i = 0; i < r.ndim; i++) r.shape[i] = t->shape[i];
    r.path_str = c->path_str;
    r.name_str = mc_intern(t->name);
    r.dtype = (uint16_t)t->dtype;
    mc_def_record(&r, sizeof r);
}

/* 1 the first time a path is seen (its table is ours to record), else 0. */
static int claim_parse(uint32_t path_str)
{
    pthread_mutex_lock(&g_parsed_mutex);
    for (size_t i = 0; i < g_nparsed; i++)
        if (g_parsed[i] == path_str) { pthread_mutex_unlock(&g_parsed_mutex); return 0; }
    if (g_nparsed == g_capparsed) {
        size_t cap = g_capparsed ? g_capparsed * 2 : 64;
        uint32_t *n = realloc(g_parsed, cap * sizeof *n);
        if (!n) { pthread_mutex_unlock(&g_parsed_mutex); return 0; }
        g_parsed = n;
        g_capparsed = cap;
    }
    g_parsed[g_nparsed++] = path_str;
    pthread_mutex_unlock(&g_parsed_mutex);
    return 1;
}

static void parse_safetensors(int fd, uint32_t path_str, const char *path)
{
    if (!claim_parse(path_str)) return;

    unsigned char lenb[8];
    if (raw_pread(fd, lenb, 8, 0) != 8) return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
    if (hlen == 0 || hlen > (100u << 20)) {
        mc_note(MC_NOTE_WARNING, "weight file %s: implausible safetensors header length %llu, tensor table not recorded",
                path, (unsigned long long)hlen);
        return;
    }
    char *json = malloc(hlen);
    if (!json) return;
    size_t got = 0;
    while (got < hlen) {
        ssize_t r = raw_pread(fd, json + got, hlen - got, (off_t)(8 + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == hlen) {
        struct emit_ctx c = {path_str, 8 + hlen};
        int n = mc_st_parse(json, hlen, emit_tensor, &c);
        if (n < 0) mc_note(MC_NOTE_WARNING, "weight file %s: malformed safetensors header, tensor table incomplete", path);
        else mc_log_debug("%s: %d tensors", path, n);
    }
    free(json);
}

static void parse_gguf(int fd, uint32_t path_str, const char *path)
{
    if (!claim_parse(path_str)) return;
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    struct emit_ctx c = {path_str, 0}; /* offsets from the GGUF parser are absolute */
    int n = mc_gguf_parse(fd, raw_pread, size, emit_tensor, &c);
    if (n < 0) mc_note(MC_NOTE_WARNING, "weight file %s: GGUF header not understood (v2/v3 expected), tensor table not recorded", path);
    else mc_log_debug("%s: %d tensors", path, n);
}

/* A weight file was opened as fd: remember it, record its tensor table once. */
static void track(int fd, const char *path, int kind, int track_fd)
{
    if (!mc_capture_enabled() || fd < 0) return;
    int saved = errno;
    char *abs = realpath(path, NULL);
    uint32_t id = mc_intern(abs ? abs : path);
    if (id) {
        if (kind == 1) parse_safetensors(fd, id, abs ? abs : path);
        else if (kind == 2) parse_gguf(fd, id, abs ? abs : path);
        if (track_fd && fd < MC_MAX_FD) atomic_store_explicit(&g_fd_path[fd], id, memory_order_relaxed);
    }
    free(abs);
    errno = saved;
}

static inline void after_open(int fd, const char *path)
{
    if (fd < 0) return;
    int kind = weight_kind(path);
    if (kind) track(fd, path, kind, 1);
    else if (fd < MC_MAX_FD && atomic_load_explicit(&g_fd_path[fd], memory_order_relaxed))
        atomic_store_explicit(&g_fd_path[fd], 0, memory_order_relaxed); /* stale: closed behind our back */
}

static inline uint32_t tracked(int fd)
{
    if ((unsigned)fd >= MC_MAX_FD) return 0;
    return atomic_load_explicit(&g_fd_path[fd], memory_order_relaxed);
}

/* Host FILE_MAP records kept as definitions (56 bytes each, repeated in every fork
 * child's file); beyond this many a program reading a weight file in small pieces gets
 * plain records, which a fork child does not inherit. */
#define MC_MAX_DEF_MAPS 65536u
static _Atomic uint32_t g_def_maps;

/* `len` bytes of the file now sit at `addr`: one FILE_MAP record, and the range joins
 * the set that host->device copies are looked up in. Called without any shim lock. */
static void record_map(uint32_t path_str, const void *addr, uint64_t off, uint64_t len, uint32_t how)
{
    if (!mc_capture_enabled()) return;
    mc_filemap_add((uintptr_t)addr, len, off, path_str, how);
    struct mc_rec_file_map m;
    memset(&m, 0, sizeof m);
    m.h.type = MC_REC_FILE_MAP;
    m.h.size = sizeof m;
    m.t_ns = mc_now_ns();
    m.addr = (uintptr_t)addr;
    m.file_offset = off;
    m.length = len;
    m.path_str = path_str;
    m.device = -1;
    m.how = how;
    uint32_t k = atomic_fetch_add_explicit(&g_def_maps, 1, memory_order_relaxed);
    if (k < MC_MAX_DEF_MAPS) {
        if (mc_def_record(&m, sizeof m) == 0) {
            /* The core opens a trace file only once a ring holds something: a filler
             * record (skipped by readers) so a process that only maps weights has one. */
            void *pad = mc_rec_reserve(MC_REC_PAD, sizeof(struct mc_rec_header));
            if (pad) mc_rec_commit(pad);
            return;
        }
    } else if (k == MC_MAX_DEF_MAPS) {
        mc_note(MC_NOTE_INFO, "more than %u weight-file reads/maps: later ones are not repeated in fork children's traces",
                MC_MAX_DEF_MAPS);
    }
    struct mc_rec_file_map *r = mc_rec_reserve(MC_REC_FILE_MAP, sizeof *r);
    if (!r) return;
    memcpy((char *)r + sizeof r->h, (const char *)&m + sizeof m.h, sizeof m - sizeof m.h);
    mc_rec_commit(r);
}

static uint64_t page_round(uint64_t len)
{
    static uint64_t page;
    if (!page) { long p = sysconf(_SC_PAGESIZE); page = p > 0 ? (uint64_t)p : 4096; }
    return len > UINT64_MAX - (page - 1) ? UINT64_MAX : (len + page - 1) & ~(page - 1);
}

/* ---------------------------------------------------------------- open family */

static int mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, int) : 0;
}

/* Each pair below (open/open64, openat/openat64, __open_2/__open64_2, fopen/fopen64, and
 * mmap/mmap64 further down) differs only in the real symbol it forwards to (on LP64 the
 * 64 variants take the same arguments): one static inline body per pair, inlined into
 * both, as pread/pread64 share pread_common. */
static inline int open_common(struct mc_real *rf, const char *path, int flags,
                              int mode)
{
    open_fn f = (open_fn)mc_real(rf);
    int fd = f ? f(path, flags, mode) : (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
    after_open(fd, path);
    return fd;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return open_common(&r_open, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return open_common(&r_open64, path, flags, mode);
}

static inline int openat_common(struct mc_real *rf, int dirfd, const char *path,
                                int flags, int mode)
{
    openat_fn f = (openat_fn)mc_real(rf);
    int fd = f ? f(dirfd, path, flags, mode) : (int)syscall(SYS_openat, dirfd, path, flags, mode);
    /* Relative to another directory: the recorded path is resolved from the cwd by
     * realpath, which is right only for AT_FDCWD; good enough to name weights. */
    after_open(fd, path);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return openat_common(&r_openat, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return openat_common(&r_openat64, dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE variants */
static inline int open2_common(struct mc_real *rf, const char *path, int flags)
{
    open2_fn f = (open2_fn)mc_real(rf);
    int fd = f ? f(path, flags) : (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
    after_open(fd, path);
    return fd;
}

int __open_2(const char *path, int flags) { return open2_common(&r_open_2, path, flags); }
int __open64_2(const char *path, int flags) { return open2_common(&r_open64_2, path, flags); }

static inline FILE *fopen_common(struct mc_real *rf, const char *path,
                                 const char *mode)
{
    fopen_fn f = (fopen_fn)mc_real(rf);
    if (!f) { errno = ENOSYS; return NULL; }
    FILE *r = f(path, mode);
    int kind = r ? weight_kind(path) : 0;
    if (kind) track(fileno(r), path, kind, 0);
    return r;
}

FILE *fopen(const char *path, const char *mode) { return fopen_common(&r_fopen, path, mode); }
FILE *fopen64(const char *path, const char *mode) { return fopen_common(&r_fopen64, path, mode); }

/* ---------------------------------------------------------------- mmap / read / close */

static inline void *mmap_common(struct mc_real *rf, void *addr, size_t len,
                                int prot, int flags, int fd, off_t off)
{
    mmap_fn f = (mmap_fn)mc_real(rf);
    void *r = f ? f(addr, len, prot, flags, fd, off) : (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    if (r == MAP_FAILED) return r;
    uint32_t id = tracked(fd);
    int saved = errno;
    /* Whatever was recorded at these addresses is gone (MAP_FIXED over it, or unmapped
     * behind our back, e.g. a freed read buffer); the mapping covers whole pages. */
    mc_filemap_remove((uintptr_t)r, page_round(len));
    if (id && !(flags & MAP_ANONYMOUS)) record_map(id, r, (uint64_t)off, len, 0);
    errno = saved;
    return r;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap_common(&r_mmap, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap_common(&r_mmap64, addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
    munmap_fn f = (munmap_fn)mc_real(&r_munmap);
    int rc = f ? f(addr, len) : (int)syscall(SYS_munmap, addr, len);
    if (rc == 0) {
        int saved = errno;
        mc_filemap_remove((uintptr_t)addr, page_round(len));
        errno = saved;
    }
    return rc;
}

/* A remapped range is forgotten (old and new place): names are dropped, never moved. */
void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    mremap_fn f = (mremap_fn)mc_real(&r_mremap);
    void *r = f ? f(old, old_len, new_len, flags, want)
                : (void *)syscall(SYS_mremap, old, old_len, new_len, flags, want);
    if (r != MAP_FAILED) {
        int saved = errno;
        mc_filemap_remove((uintptr_t)old, page_round(old_len));
        mc_filemap_remove((uintptr_t)r, page_round(new_len));
        errno = saved;
    }
    return r;
}

ssize_t read(int fd, void *buf, size_t n)
{
    read_fn f = (read_fn)mc_real(&r_read);
    uint32_t id = tracked(fd);
    if (__builtin_expect(!id, 1)) return f ? f(fd, buf, n) : syscall(SYS_read, fd, buf, n);
    int saved = errno;
    off_t off = lseek(fd, 0, SEEK_CUR);
    errno = saved;
    ssize_t r = f ? f(fd, buf, n) : syscall(SYS_read, fd, buf, n);
    if (r > 0 && off >= 0) {
        saved = errno;
        record_map(id, buf, (uint64_t)off, (uint64_t)r, 1);
        errno = saved;
    }
    return r;
}

static ssize_t pread_common(struct mc_real *rf, int fd, void *buf, size_t n, off_t off)
{
    pread_fn f = (pread_fn)mc_real(rf);
    ssize_t r = f ? f(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
    uint32_t id;
    if (r > 0 && (id = tracked(fd)) != 0) {
        int saved = errno;
        record_map(id, buf, (uint64_t)off, (uint64_t)r, 2);
        errno = saved;
    }
    return r;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) { return pread_common(&r_pread, fd, buf, n, off); }
ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread_common(&r_pread64, fd, buf, n, off); }

int close(int fd)
{
    /* Programs that close every descriptor (daemons, close_fds loops) would take the
     * trace with them and might reuse the number: the shim keeps its own. */
    if (fd >= 0 && fd == mc_core_trace_fd()) return 0;
    if ((unsigned)fd < MC_MAX_FD && atomic_load_explicit(&g_fd_path[fd], memory_order_relaxed))
        atomic_store_explicit(&g_fd_path[fd], 0, memory_order_relaxed);
    close_fn f = (close_fn)mc_real(&r_close);
    return f ? f(fd) : (int)syscall(SYS_close, fd);
}

/* close_range()/closefrom() (glibc >= 2.34; Python's os.closerange, subprocess) would
 * close the trace descriptor behind our back: split the range around it. */
typedef int (*close_range_fn)(unsigned, unsigned, int);
typedef void (*closefrom_fn)(int);
static struct mc_real r_close_range = MC_REAL_INIT("close_range"),
    r_closefrom = MC_REAL_INIT("closefrom");

int close_range(unsigned lo, unsigned hi, int flags)
{
    close_range_fn f = (close_range_fn)mc_real(&r_close_range);
    int ours = mc_core_trace_fd();
    if (!f) { errno = ENOSYS; return -1; }
    if (ours < 0 || (unsigned)ours < lo || (unsigned)ours > hi || (flags & CLOSE_RANGE_CLOEXEC))
        return f(lo, hi, flags);
    int rc = 0;
    if ((unsigned)ours > lo) rc = f(lo, (unsigned)ours - 1, flags);
    if (rc == 0 && (unsigned)ours < hi) rc = f((unsigned)ours + 1, hi, flags);
    return rc;
}

void closefrom(int lo)
{
    int ours = mc_core_trace_fd();
    if (ours >= 0 && ours >= lo) {
        if (ours > lo) close_range((unsigned)lo, (unsigned)ours - 1, 0);
        close_range((unsigned)ours + 1, ~0u, 0);
        return;
    }
    closefrom_fn f = (closefrom_fn)mc_real(&r_closefrom);
    if (f) f(lo);
    else close_range((unsigned)(lo < 0 ? 0 : lo), ~0u, 0);
}

/* Both locks are held across fork so a child never inherits one locked by another thread;
 * the weight-file range table's is a leaf (every mmap takes it), so it is taken last. */
static void files_fork_prepare(void)
{
    pthread_mutex_lock(&g_parsed_mutex);
    mc_filemap_fork_lock();
}
static void files_fork_release(void)
{
    mc_filemap_fork_unlock();
    pthread_mutex_unlock(&g_parsed_mutex);
}

static const struct mc_family files_family = {
    .name = "files",
    .fork_prepare = files_fork_prepare,
    .fork_parent = files_fork_release,
    .fork_child = files_fork_release,
};

/* Resolve the real functions early, while the process is still single-threaded. */
__attribute__((constructor(102))) static void files_init(void)
{
    mc_family_register(&files_family);
    mc_real(&r_open); mc_real(&r_open64); mc_real(&r_openat);
    mc_real(&r_openat64); mc_real(&r_mmap); mc_real(&r_mmap64);
    mc_real(&r_read); mc_real(&r_pread); mc_real(&r_pread64);
    mc_real(&r_close); mc_real(&r_fopen); mc_real(&r_fopen64);
    mc_real(&r_munmap); mc_real(&r_mremap);
}
