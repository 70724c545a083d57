/* The trace file of this process: a record stream appended with write(), and the record
 * rings of the recording threads, kept in the file itself.
 *
 * A thread writes its records into its ring (shim_core.c, ring.h), a region of this file
 * mapped shared and faulted in when the ring is made: the hot path touches only those
 * pages, again and again, so it takes no page fault and makes no system call. A record is
 * committed when the ring's head has passed it, and since the kernel keeps a shared
 * mapping's pages when the process dies, a SIGKILL at any instant leaves every committed
 * record in the file. The writer thread (or a thread whose ring is full) copies committed
 * records to the end of the file with one write per ring (a MC_REC_RING_COPY, then the
 * bytes) and advances the ring's tail; the reader returns what a killed process's rings
 * hold beyond what was copied after the rest of the file (docs/trace-format.md).
 *
 * Writes go to explicit offsets (g_end) under the file lock; a write that fails part way
 * (disk full) is cut back off, so the stream never ends in a torn record written by a
 * live process, and capture stops with one stderr line. A ring's disk blocks are reserved
 * with fallocate before it is mapped: a full disk never shows up as a SIGBUS.
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
#include <sys/uio.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int mc_tsc_ok;

static _Atomic int32_t g_file_lock;   /* tid of the holder, 0 = free */
static _Atomic int g_fd = -1;
static char g_path[4600];
static dev_t g_fd_dev;                 /* identity of the trace file, to notice a program */
static ino_t g_fd_ino;                 /* that closed our descriptor and reused the number */
static uint64_t g_end;                 /* end of the file: where the next append goes */
static uint32_t g_rings;               /* rings made in this file (their ids are 1..g_rings) */

/* Every mapping of the file (the clock's page, the rings), for a fork child to drop. */
#define MAX_MAPS 16384
static struct { void *addr; size_t len; } g_maps[MAX_MAPS];
static int g_nmaps;

static struct mc_rec_clock *g_clock;   /* mapped: updated in place */
static uint64_t g_tsc0, g_ns0;         /* calibration anchor taken at start-up */

int mc_core_trace_fd(void) { return atomic_load_explicit(&g_fd, memory_order_relaxed); }
int mc_tf_is_open(void) { return atomic_load_explicit(&g_fd, memory_order_relaxed) >= 0; }

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

/* ---------------------------------------------------------------- writing */

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

/* Writes iov[0..n) at g_end, whole. On failure the part written is cut off again (the
 * stream keeps ending with a whole record) and capture stops. */
static int append_v(struct iovec *iov, int n)
{
    if (fd_check() < 0) return -1;
    uint64_t off = g_end, total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    for (uint64_t done = 0; done < total;) {
        ssize_t w = syscall(SYS_pwritev, g_fd, iov, n, (long)(off + done), 0L);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = ENOSPC;
            int saved = errno;
            if (syscall(SYS_ftruncate, g_fd, (off_t)off) < 0) { /* nothing more we can do */ }
            errno = saved;
            say_disable("cannot write trace file");
            return -1;
        }
        done += (uint64_t)w;
        /* skip what was written */
        for (size_t left = (size_t)w; left && n;) {
            if (left >= iov[0].iov_len) { left -= iov[0].iov_len; iov++; n--; }
            else { iov[0].iov_base = (char *)iov[0].iov_base + left; iov[0].iov_len -= left; left = 0; }
        }
    }
    g_end = off + total;
    return 0;
}

int mc_tf_append(const void *rec, uint32_t size)
{
    struct iovec iov = {(void *)rec, size};
    return append_v(&iov, 1);
}

/* ---------------------------------------------------------------- rings */

static size_t ring_map_len(uint32_t bytes)
{
    return ((size_t)sizeof(struct mc_rec_ring) + bytes + 4095) & ~(size_t)4095;
}

/* A new ring of `bytes` (a power of two) at the end of the file, its pages faulted in.
 * NULL: the disk is full or the file cannot grow (capture is then off). */
struct mc_rec_ring *mc_tf_ring_new(uint32_t bytes)
{
    if (fd_check() < 0) return NULL;
    uint64_t start = g_end;
    /* The ring record starts a page (mmap offsets are page multiples): a PAD before it. */
    static const unsigned char zeros[4096];
    struct mc_rec_header pad = {MC_REC_PAD, 0, (uint32_t)((4096 - g_end % 4096) % 4096)};
    struct iovec iov[2] = {{&pad, sizeof pad}, {(void *)zeros, pad.size - sizeof pad}};
    if (pad.size && append_v(iov, 2) < 0) return NULL;
    struct mc_rec_ring r;
    memset(&r, 0, sizeof r);
    r.h.type = MC_REC_RING;
    r.h.size = (uint32_t)sizeof r + bytes;
    r.ring_id = ++g_rings;
    r.ring_bytes = bytes;
    uint64_t off = g_end;
    struct iovec one = {&r, sizeof r};
    if (append_v(&one, 1) < 0) return NULL;
    if (reserve_disk(g_fd, off + sizeof r, bytes) < 0) {
        int saved = errno;
        if (syscall(SYS_ftruncate, g_fd, (off_t)start) == 0) g_end = start;
        errno = saved;
        say_disable("cannot extend trace file");
        return NULL;
    }
    g_end = off + sizeof r + bytes;
    size_t len = ring_map_len(bytes);
    struct mc_rec_ring *m = mc_sys_mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, (off_t)off);
    if (m == MAP_FAILED) { say_disable("cannot map trace file"); return NULL; }
    remember_map(m, len);
    /* Write-fault the pages now, here, not on the thread's records (kernels before 5.14
     * ignore this: the pages then fault on first use). */
    syscall(SYS_madvise, m, len, MADV_POPULATE_WRITE);
    return m;
}

/* Copies the committed records of ring r that are not in the stream yet to the end of
 * the file, then advances its tail. 0, or -1 when the file cannot grow (capture off;
 * what was not copied stays in the ring, where the reader finds it). */
int mc_tf_ring_copy(struct mc_rec_ring *r)
{
    uint64_t head = atomic_load_explicit((_Atomic uint64_t *)&r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit((_Atomic uint64_t *)&r->tail, memory_order_relaxed);
    if (head == tail) return 0;
    uint32_t bytes = r->ring_bytes;
    unsigned char *data = (unsigned char *)(r + 1);
    struct mc_rec_ring_copy c;
    memset(&c, 0, sizeof c);
    c.h.type = MC_REC_RING_COPY;
    c.h.size = sizeof c;
    c.ring_id = r->ring_id;
    c.pos = tail;
    c.len = head - tail;
    uint32_t pos = (uint32_t)(tail & (bytes - 1));
    uint64_t first = head - tail < (uint64_t)(bytes - pos) ? head - tail : bytes - pos;
    struct iovec iov[3] = {{&c, sizeof c}, {data + pos, (size_t)first}, {data, (size_t)(head - tail - first)}};
    if (append_v(iov, iov[2].iov_len ? 3 : 2) < 0) return -1;
    atomic_store_explicit((_Atomic uint64_t *)&r->tail, head, memory_order_release);
    return 0;
}

/* Writer thread, now and then: write-fault the ring's pages again. Writeback of a shared
 * file page write-protects it, and the next store would take the fault on the recording
 * thread. */
void mc_tf_ring_refault(struct mc_rec_ring *r)
{
    syscall(SYS_madvise, r, ring_map_len(r->ring_bytes), MADV_POPULATE_WRITE);
}

/* ---------------------------------------------------------------- the file */

/* Creates <out>/<host>-<pid>.mct (or .1.mct, ... when that name exists: an exec'd image
 * reusing the pid of a forked child), 0600 (argv and paths are private), and writes the
 * header, `process` (the PROCESS record, `process_bytes`) and the clock record, which
 * stays mapped to be updated in place. Caller holds the file lock. Returns 0 or -1
 * (capture is then off). */
int mc_tf_create(const char *out_dir, const char *host, const void *process, uint32_t process_bytes)
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
    g_end = 0;
    g_rings = 0;

    struct mc_file_header fh = mc_file_header_make(MC_FILE_RINGS);
    struct mc_rec_clock c;
    memset(&c, 0, sizeof c);
    c.h.type = MC_REC_CLOCK;
    c.h.size = sizeof c;
    c.tsc0 = g_tsc0;
    c.ns0 = g_ns0;
    c.pair[0].tsc = g_tsc0;
    c.pair[0].ns = g_ns0;
    struct iovec iov[3] = {{&fh, sizeof fh}, {(void *)process, process_bytes}, {&c, sizeof c}};
    uint64_t clock_off = sizeof fh + process_bytes;
    uint64_t map_off = clock_off & ~(uint64_t)4095;
    size_t map_len = (size_t)((clock_off + sizeof c - map_off + 4095) & ~(uint64_t)4095);
    unsigned char *p = MAP_FAILED;
    if (append_v(iov, 3) == 0) {
        p = mc_sys_mmap(map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_off);
        if (p == MAP_FAILED) say_disable("cannot map trace file");
    }
    if (p == MAP_FAILED) {
        if (g_fd >= 0) syscall(SYS_close, g_fd);
        g_fd = -1;
        syscall(SYS_unlink, path);  /* nothing in it: leave no empty file behind */
        return -1;
    }
    remember_map(p, map_len);
    g_clock = (struct mc_rec_clock *)(p + (clock_off - map_off));
    mc_tf_clock_update();
    if (mc_cfg.log_level >= 1) {
        char line[4700];
        snprintf(line, sizeof line, "moecap[%d]: tracing to %s\n", (int)pid, path);
        ssize_t w = write(2, line, strlen(line));
        (void)w;
    }
    return 0;
}

/* Fork child: the parent's file and mappings stay the parent's. Only this thread exists. */
void mc_tf_forget_after_fork(void)
{
    for (int i = 0; i < g_nmaps; i++) syscall(SYS_munmap, g_maps[i].addr, g_maps[i].len);
    g_nmaps = 0;
    g_clock = NULL;
    g_end = 0;
    g_rings = 0;
    int inherited = g_fd;
    g_fd = -1; /* first: close() of the trace descriptor is ignored while it is ours */
    if (inherited >= 0) syscall(SYS_close, inherited);
    atomic_store(&g_file_lock, 0);
}
