/* Cost of getting trace bytes into the page cache on this machine, per 4 KiB page, for
 * bench/shim-hotpath.sh: the first write to a fresh page of a shared file mapping (what a
 * thread writing records in place into new file pages pays), the same after the page was
 * faulted in with MADV_POPULATE_WRITE (what a ring made ahead pays) and the populate
 * itself, a second write to a page already written (a ring's later laps), the first write
 * to fresh anonymous memory, and pwrite of the same bytes (what the writer thread pays to
 * copy a ring out).  usage: page-touch DIR [MIB (default 64)] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void report(const char *what, double w0, double c0, size_t pages)
{
    printf("| %s | %.2f | %.2f |\n", what, (now(CLOCK_MONOTONIC) - w0) / 1e3 / (double)pages,
           (now(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e3 / (double)pages);
}

static void touch(const char *what, unsigned char *p, size_t len)
{
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (size_t o = 0; o < len; o += 4096) p[o] = 1;
    report(what, w0, c0, len / 4096);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: page-touch DIR [MIB]\n"); return 2; }
    size_t len = (size_t)(argc > 2 ? atol(argv[2]) : 64) << 20;
    if (!len) { fprintf(stderr, "page-touch: MIB must be > 0\n"); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/page-touch.tmp", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror(path); return 1; }
    unlink(path);
    if (fallocate(fd, 0, 0, (off_t)(len * 3)) != 0) { perror("fallocate"); return 1; }
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)len);
    unsigned char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || q == MAP_FAILED || a == MAP_FAILED) { perror("mmap"); return 1; }
    printf("| per 4 KiB page | wall us | CPU us |\n| --- | --- | --- |\n");
    touch("shared file mapping, fallocate'd, first write", p, len);
    touch("same pages, second write", p, len);
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    madvise(q, len, MADV_POPULATE_WRITE);
    report("MADV_POPULATE_WRITE of fresh file pages", w0, c0, len / 4096);
    touch("first write after MADV_POPULATE_WRITE", q, len);
    touch("anonymous memory, first write", a, len);
    static unsigned char buf[65536];
    memset(buf, 1, sizeof buf);
    w0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (size_t o = 0; o < len; o += sizeof buf)
        if (pwrite(fd, buf, sizeof buf, (off_t)(2 * len + o)) != (ssize_t)sizeof buf) { perror("pwrite"); return 1; }
    report("pwrite of 64 KiB blocks to fresh file space", w0, c0, len / 4096);
    return 0;
}
