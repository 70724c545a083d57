/* The trace file of this process, written in place through shared file mappings.
 *
 * Threads (and the definitions) write their records straight into the file's pages, in
 * segments of MOECAP_BUF_KB that each of them fills alone: there is no copy and no write()
 * per record, and since the kernel keeps a shared mapping's pages after the process dies,
 * a SIGKILL at any instant loses none of the records committed before it. A record's
 * size is stored last (ring.h), so space reserved but not committed reads as a header of
 * size 0, which the reader skips to the next segment boundary, like space never written.
 *
 * The file grows by extents (64 segments): each is reserved with fallocate before it is
 * mapped, so a full disk shows up as a failed fallocate (capture stops, the file stays
 * whole) and never as a SIGBUS on a page the file system cannot back. The writer thread
 * keeps one extent mapped and its pages populated ahead of need, so the program's threads
 * do not take the page faults of fresh file pages.
 *
 * Every function here except mc_tf_clock_* runs under the file lock (mc_tf_lock). Only raw
 * system calls: the file family's interposers (open, mmap, close) are never entered while
 * the lock is held. */
#include "shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int mc_tsc_ok;

static _Atomic int32_t g_file_lock;   /* tid of the holder, 0 = free */
static _Atomic int g_fd = -1;
static char g_path[4600];
static dev_t g_fd_dev;                 /* identity of the trace file, to notice a program */
static ino_t g_fd_ino;                 /* that closed our descriptor and reused the number */
static uint32_t g_seg;                 /* segment bytes (power of two) */
static uint64_t g_file_bytes;          /* bytes reserved in the file (fallocate'd or claimed) */
static unsigned char *g_ext_pos, *g_ext_end; /* unclaimed, mapped part of the current extent */
static uint64_t g_ext_off;             /* file offset of g_ext_pos */

/* Every mapping of the file, for a fork child to drop (16384 x 4 MiB and more). */
#define MAX_MAPS 16384
static struct { void *addr; size_t len; } g_maps[MAX_MAPS];
static int g_nmaps;

/* An extent a program thread mapped itself (no spare was ready): the writer thread faults
 * its pages in ahead of the thread's writes. */
static unsigned char *g_unpopulated;
static size_t g_unpopulated_len;

/* The extent the writer thread prepared ahead (mapped, pages populated). */
static unsigned char *g_spare;
static size_t g_spare_len;
static uint64_t g_spare_off;

static struct mc_rec_clock *g_clock;   /* in the file's first region */
static uint64_t g_tsc0, g_ns0;         /* calibration anchor taken at start-up */

int mc_core_trace_fd(void) { return atomic_load_explicit(&g_fd, memory_order_relaxed); }
int mc_tf_is_open(void) { return atomic_load_explicit(&g_fd, memory_order_relaxed) >= 0; }
uint32_t mc_tf_segment_bytes(void) { return g_seg; }

/* ---------------------------------------------------------------- lock */

/* Normal context: wait. Signal context: give up after ~0.2 s, or at once when this
 * thread already holds it (the signal interrupted our own work). */
int mc_tf_lock(int from_signal)
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
void mc_tf_unlock(void) { atomic_store(&g_file_lock, 0); }

/* ---------------------------------------------------------------- clock */

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

static int tsc_usable(void)
{
    const char *e = getenv("MOECAP_TSC");
    if (e && !strcmp(e, "0")) return 0;
    /* 1: use it anyway (tests of the tick conversion on a machine whose kernel keeps time
     * with another clocksource; only right where the TSC is invariant: constant_tsc). */
    if (e && !strcmp(e, "1")) return 1;
    /* Only where the kernel trusts the TSC as its clock source (then it is invariant and
     * synchronised across CPUs). */
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[32] = {0};
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    return r >= 3 && !strncmp(buf, "tsc", 3) && (buf[3] == '\n' || buf[3] == 0);
}

void mc_tf_clock_init(void)
{
    if (tsc_usable()) { tsc_pair(&g_tsc0, &g_ns0); mc_tsc_ok = 1; }
}

/* A new (tsc, ns) pair into the file's clock record: the slot readers do not use, then
 * `latest`. Caller holds the file lock. Async-signal-safe. */
void mc_tf_clock_update(void)
{
    struct mc_rec_clock *c = g_clock;
    if (!c || !mc_tsc_ok) return;
    uint32_t next = (atomic_load_explicit((_Atomic uint32_t *)&c->latest, memory_order_relaxed) + 1) & 1;
    tsc_pair(&c->pair[next].tsc, &c->pair[next].ns);
    atomic_store_explicit((_Atomic uint32_t *)&c->latest, next, memory_order_release);
}
#else
void mc_tf_clock_init(void) {}
void mc_tf_clock_update(void) {}
#endif

/* ---------------------------------------------------------------- space */

static void say_disable(const char *what)
{
    char why[4800];
    snprintf(why, sizeof why, "%s %s: %s", what, g_path, strerror(errno));
    mc_disable(why);
}

/* Reserve [off, off + len) on disk. fallocate where the file system has it, else write
 * zeros (either way every page the mapping will touch has its blocks). */
static int reserve_disk(int fd, uint64_t off, uint64_t len)
{
    if (syscall(SYS_fallocate, fd, 0, (off_t)off, (off_t)len) == 0) return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS) return -1;
    static const unsigned char zeros[65536];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
        ssize_t w = syscall(SYS_pwrite64, fd, zeros, n, (off_t)(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (w == 0) errno = ENOSPC; return -1; }
        done += (uint64_t)w;
    }
    return 0;
}

/* The program may have closed our descriptor (close_range, closefrom of a raw syscall)
 * and reused the number: reopen our own file by its path. */
static int fd_check(void)
{
    int fd = g_fd;
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == g_fd_dev && st.st_ino == g_fd_ino) return 0;
    fd = (int)syscall(SYS_openat, AT_FDCWD, g_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    int hi = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 40) : -1;
    if (hi >= 0) { syscall(SYS_close, fd); fd = hi; }
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != g_fd_dev || st.st_ino != g_fd_ino) {
        if (fd >= 0) syscall(SYS_close, fd);
        g_fd = -1;
        mc_disable("the program closed the trace file's descriptor and the file cannot be reopened");
        return -1;
    }
    g_fd = fd;
    return 0;
}

static void remember_map(void *addr, size_t len)
{
    if (g_nmaps < MAX_MAPS) { g_maps[g_nmaps].addr = addr; g_maps[g_nmaps].len = len; g_nmaps++; }
}

/* Reserves and maps [off, off + len) of the file. */
static unsigned char *map_region(uint64_t off, size_t len, int populate)
{
    if (g_nmaps >= MAX_MAPS) { errno = EFBIG; return NULL; }
    if (reserve_disk(g_fd, off, len) < 0) return NULL;
    unsigned char *p = mc_sys_mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, (off_t)off);
    if (p == MAP_FAILED) return NULL;
    /* Write-fault every page now (kernels before 5.14 ignore this: the pages then fault on
     * first use). */
    if (populate) syscall(SYS_madvise, p, len, MADV_POPULATE_WRITE);
    return p;
}

static size_t extent_bytes(void)
{
    size_t e = (size_t)g_seg * 64;
    return e < (1u << 20) ? (1u << 20) : e > (64u << 20) ? (64u << 20) : e;
}

/* A region of `bytes` (a multiple of the segment size) for one writer. Caller holds the
 * file lock; the file is open. *used_spare = 1 when the prepared extent was taken (the
 * caller wakes the writer thread to prepare the next; also when this call mapped an
 * extent itself, for the writer to fault its pages in). NULL: the disk is full or the file
 * cannot grow; capture is then off. */
unsigned char *mc_tf_region(uint32_t bytes, int *used_spare)
{
    *used_spare = 0;
    if ((size_t)(g_ext_end - g_ext_pos) < bytes) {
        if (g_spare && g_spare_len >= bytes) {
            g_ext_pos = g_spare;
            g_ext_end = g_spare + g_spare_len;
            g_ext_off = g_spare_off;
            remember_map(g_spare, g_spare_len);
            g_spare = NULL;
            *used_spare = 1;
        } else {
            if (fd_check() < 0) return NULL;
            size_t len = extent_bytes();
            if (len < bytes) len = bytes;
            uint64_t off = g_file_bytes;
            unsigned char *p = map_region(off, len, 0);
            /* Short of space for a whole extent: the last segments still fit one by one. */
            if (!p && len > bytes && (errno == ENOSPC || errno == EFBIG || errno == EDQUOT)) p = map_region(off, len = bytes, 0);
            if (!p) { say_disable("cannot extend trace file"); return NULL; }
            g_file_bytes = off + len;
            remember_map(p, len);
            g_ext_pos = p;
            g_ext_end = p + len;
            g_ext_off = off;
            g_unpopulated = p;
            g_unpopulated_len = len;
            *used_spare = 1;   /* the writer: populate it, prepare the next */
        }
    }
    unsigned char *r = g_ext_pos;
    g_ext_pos += bytes;
    g_ext_off += bytes;
    return r;
}

/* Writer thread: map and populate the next extent while nobody waits for it. Takes and
 * releases the file lock itself (the slow part runs without it). */
void mc_tf_prepare_spare(void)
{
    if (mc_tf_lock(0) < 0) return;
    /* First the extent a thread is writing now, if it mapped it itself: faulting its pages
     * in here takes most of the cost of a fresh page off that thread (concurrent writes to
     * those pages are unaffected: a populate only maps pages). Only mappings that live
     * until exit (every extent does) are touched outside the lock. */
    unsigned char *pop = g_unpopulated;
    size_t pop_len = g_unpopulated_len;
    g_unpopulated = NULL;
    mc_tf_unlock();
    if (pop) syscall(SYS_madvise, pop, pop_len, MADV_POPULATE_WRITE);
    if (mc_tf_lock(0) < 0) return;
    if (g_fd < 0 || g_spare || fd_check() < 0) { mc_tf_unlock(); return; }
    size_t len = extent_bytes();
    uint64_t off = g_file_bytes;
    g_file_bytes += len;   /* claimed: nobody else maps it */
    int fd = g_fd;
    mc_tf_unlock();
    if (reserve_disk(fd, off, len) < 0) {
        /* No room for a whole extent (disk or quota nearly full): give the claim back if
         * nothing came after it; the program's threads then grow the file segment by
         * segment themselves until it is really full. */
        if (mc_tf_lock(0) == 0) {
            if (g_file_bytes == off + len) g_file_bytes = off;
            mc_tf_unlock();
        }
        return;
    }
    unsigned char *p = mc_sys_mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
    if (p == MAP_FAILED) return;
    syscall(SYS_madvise, p, len, MADV_POPULATE_WRITE);
    if (mc_tf_lock(0) < 0) return;
    if (g_fd == fd && !g_spare) { g_spare = p; g_spare_len = len; g_spare_off = off; p = NULL; }
    mc_tf_unlock();
    if (p) syscall(SYS_munmap, p, len);
}

/* ---------------------------------------------------------------- the file */

/* Creates <out>/<host>-<pid>.mct (or .1.mct, ... when that name exists: an exec'd image
 * reusing the pid of a forked child), 0600 (argv and paths are private), and writes its
 * first region: the header, `process` (the PROCESS record, `process_bytes`) and the clock
 * record; [*rest, *rest_end) is the region's unused rest, for the definitions. Caller
 * holds the file lock. Returns 0 or -1 (capture is then off). */
int mc_tf_create(const char *out_dir, const char *host, const void *process, uint32_t process_bytes,
                 unsigned char **rest, unsigned char **rest_end)
{
    pid_t pid = getpid();
    int fd = -1;
    char path[4600];
    for (int n = 0; n < 100 && fd < 0; n++) {
        if (n == 0) snprintf(path, sizeof path, "%s/%s-%d.mct", out_dir, host, (int)pid);
        else snprintf(path, sizeof path, "%s/%s-%d.%d.mct", out_dir, host, (int)pid, n);
        fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    memcpy(g_path, path, sizeof g_path);
    if (fd < 0) {
        char why[4800];
        snprintf(why, sizeof why, "cannot create trace file %s: %s (set MOECAP_OUT to a writable directory)",
                 path, strerror(errno));
        mc_disable(why);
        return -1;
    }
    /* Keep the descriptor out of the low numbers programs close or dup2 over, but inside
     * the initial descriptor table (64 entries): growing the table in a threaded process
     * waits for an RCU grace period, ~15 ms here. */
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 40);
    if (hi >= 0) { syscall(SYS_close, fd); fd = hi; }
    struct stat st;
    if (fstat(fd, &st) == 0) { g_fd_dev = st.st_dev; g_fd_ino = st.st_ino; }
    g_fd = fd;

    uint32_t seg_shift = 0;
    while ((1u << seg_shift) < g_seg) seg_shift++;
    uint64_t first = sizeof(struct mc_file_header) + process_bytes + sizeof(struct mc_rec_clock);
    size_t len = (size_t)((first + g_seg - 1) / g_seg * g_seg);
    unsigned char *p = map_region(0, len, 0);
    if (!p) {
        say_disable("cannot write trace file");
        syscall(SYS_close, fd);
        g_fd = -1;
        syscall(SYS_unlink, path);  /* nothing in it: leave no empty file behind */
        return -1;
    }
    remember_map(p, len);
    g_file_bytes = len;
    struct mc_file_header *fh = (struct mc_file_header *)p;
    memcpy(fh->magic, MC_TRACE_MAGIC, 8);
    fh->version_major = MC_TRACE_VERSION_MAJOR;
    fh->version_minor = MC_TRACE_VERSION_MINOR;
    fh->header_size = sizeof *fh;
    fh->flags = MC_FILE_SEGMENTED | (uint64_t)seg_shift << 8;
    mc_tf_put(p + sizeof *fh, process, process_bytes);
    struct mc_rec_clock c;
    memset(&c, 0, sizeof c);
    c.h.type = MC_REC_CLOCK;
    c.h.size = sizeof c;
    c.tsc0 = g_tsc0;
    c.ns0 = g_ns0;
    c.pair[0].tsc = g_tsc0;
    c.pair[0].ns = g_ns0;
    g_clock = (struct mc_rec_clock *)(p + sizeof *fh + process_bytes);
    mc_tf_put(g_clock, &c, sizeof c);
    mc_tf_clock_update();
    *rest = (unsigned char *)(g_clock + 1);
    *rest_end = p + len;
    if (mc_cfg.log_level >= 1) {
        char line[4700];
        snprintf(line, sizeof line, "moecap[%d]: tracing to %s\n", (int)pid, path);
        ssize_t w = write(2, line, strlen(line));
        (void)w;
    }
    return 0;
}

/* Copies a whole record (its size field set) to dst in the file, the size last. */
void mc_tf_put(void *dst, const void *rec, uint32_t size)
{
    struct mc_rec_header h;
    memcpy(&h, rec, sizeof h);
    memcpy((unsigned char *)dst + sizeof h, (const unsigned char *)rec + sizeof h, size - sizeof h);
    struct mc_rec_header *d = dst;
    d->type = h.type;
    d->flags = h.flags;
    atomic_store_explicit((_Atomic uint32_t *)&d->size, size, memory_order_release);
}

/* Exit: give back the space no segment was handed out of (the prepared extent, the rest
 * of the current one) so a finished file ends after its last segment. Later records (a
 * destructor's) map a new extent at the new end. */
void mc_tf_trim(void)
{
    if (g_fd < 0 || fd_check() < 0) return;
    if (g_spare) {
        syscall(SYS_munmap, g_spare, g_spare_len);
        if (g_spare_off + g_spare_len == g_file_bytes) g_file_bytes = g_spare_off;
        g_spare = NULL;
    }
    uint64_t cut = g_file_bytes;
    if (g_ext_pos && g_ext_off + (uint64_t)(g_ext_end - g_ext_pos) == g_file_bytes) cut = g_ext_off;
    if (syscall(SYS_ftruncate, g_fd, (off_t)cut) == 0) {
        g_file_bytes = cut;
        g_ext_pos = g_ext_end = NULL;
    }
}

/* Fork child: the parent's file and mappings stay the parent's. Only this thread exists. */
void mc_tf_forget_after_fork(void)
{
    for (int i = 0; i < g_nmaps; i++) syscall(SYS_munmap, g_maps[i].addr, g_maps[i].len);
    if (g_spare) syscall(SYS_munmap, g_spare, g_spare_len);
    g_nmaps = 0;
    g_unpopulated = NULL;
    g_spare = NULL;
    g_spare_len = 0;
    g_ext_pos = g_ext_end = NULL;
    g_clock = NULL;
    g_file_bytes = 0;
    int inherited = g_fd;
    g_fd = -1; /* first: close() of the trace descriptor is ignored while it is ours */
    if (inherited >= 0) syscall(SYS_close, inherited);
    atomic_store(&g_file_lock, 0);
}

void mc_tf_set_segment_bytes(uint32_t bytes) { g_seg = bytes; }
