/* A weight loader for tests/cuda/test_filemap.py: opens a *.safetensors file, maps or
 * reads parts of it as the commands on its command line say, and copies host bytes to a
 * (fake, libfakecuda.so) device with cudaMemcpy / cudaMemcpyAsync. It prints what it did
 * (addresses, and the bytes each copy sent) so the test can check the FILE_MAP records
 * libmoecap.so writes against the file itself.
 *
 *   filemap_prog FILE CMD...      regions are numbered in creation order
 *     map OFF LEN                 mmap LEN bytes (0 = to the end) of FILE at OFF
 *     mapfixed R PAGE OFF NPAGES  mmap NPAGES pages of FILE at OFF, MAP_FIXED over page PAGE of region R
 *     unmap R                     munmap region R
 *     pread OFF LEN               malloc a buffer, pread LEN bytes at OFF into it
 *     preadat R REL OFF LEN       pread LEN bytes at OFF into region R at REL
 *     read OFF LEN                malloc a buffer, lseek + read
 *     scribble R REL LEN          overwrite bytes of region R (the program reuses its buffer)
 *     copy R REL N | copya R REL N   H2D copy of N bytes at region R + REL (sync / async)
 *     copystack N                 H2D copy from a stack buffer (memory no file ever touched)
 *     fork                        the child runs the remaining commands, the parent waits
 *     churn N                     3 threads map/unmap/pread the file while this one makes N
 *                                 copies from region 0 (checked: those copies stay exact)
 * Output: "region R ADDR", "copy DST SRC N HEX" (HEX "-" for an unmapped region), "forked",
 * "churn COPIES". */
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd;
static long page;
static off_t fsize;
static unsigned char *reg[64];
static size_t reg_len[64];
static int reg_gone[64];
static int nreg;
static char *dev;
static size_t dev_off;

static void add_region(void *p, size_t len)
{
    reg[nreg] = p;
    reg_len[nreg] = len;
    printf("region %d %p\n", nreg, p);
    nreg++;
}

static void copy(int r, size_t rel, size_t n, int async)
{
    unsigned char *src = reg[r] + rel;
    char *dst = dev + dev_off;
    dev_off += (n + 255) & ~(size_t)255;
    if (async) cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, NULL);
    else cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice);
    printf("copy %p %p %zu ", (void *)dst, (void *)src, n);
    if (reg_gone[r]) printf("-");
    else for (size_t i = 0; i < n; i++) printf("%02x", src[i]);
    printf("\n");
}

static void copy_stack(size_t n)
{
    unsigned char buf[4096];
    if (n > sizeof buf) n = sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 7);
    char *dst = dev + dev_off;
    dev_off += (n + 255) & ~(size_t)255;
    cudaMemcpy(dst, buf, n, cudaMemcpyHostToDevice);
    printf("copystack %p %zu\n", (void *)dst, n);
}

static volatile int stop;

static void *churner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!stop) {
        seed = seed * 1103515245u + 12345u;
        off_t off = (off_t)((seed >> 8) % (unsigned)(fsize / page)) * page;
        size_t len = (size_t)(fsize - off);
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, off);
        if (m != MAP_FAILED) munmap(m, len);
        size_t n = 1 + (seed >> 4) % 8192;
        unsigned char *b = malloc(n);
        if (b && pread(fd, b, n, (off_t)((seed >> 12) % (unsigned)(fsize - (off_t)n))) < 0) perror("pread");
        free(b);
    }
    return NULL;
}

static void churn(int n)
{
    pthread_t t[3];
    for (uintptr_t i = 0; i < 3; i++) pthread_create(&t[i], NULL, churner, (void *)(i + 1));
    int copies;
    for (copies = 0; copies < n; copies++) {
        /* Fixed spots so the test knows what each copy must name. */
        copy(0, (size_t)(copies % 7) * 1000, 64, copies & 1);
        if (copies % 16 == 0) usleep(1000);   /* let the churners run in between */
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("churn %d\n", copies);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: filemap_prog FILE CMD...\n"); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    page = sysconf(_SC_PAGESIZE);
    fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror(argv[1]); return 1; }
    fsize = st.st_size;
    if (cudaMalloc((void **)&dev, (size_t)1 << 30) != cudaSuccess) return 1;
    for (int i = 2; i < argc; i++) {
        const char *c = argv[i];
#define ARG(k) strtoull(argv[i + (k)], NULL, 0)
        if (!strcmp(c, "map")) {
            size_t len = ARG(2) ? ARG(2) : (size_t)(fsize - (off_t)ARG(1));
            void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)ARG(1));
            if (m == MAP_FAILED) { perror("mmap"); return 1; }
            add_region(m, len);
            i += 2;
        } else if (!strcmp(c, "mapfixed")) {
            unsigned char *at = reg[ARG(1)] + ARG(2) * (size_t)page;
            void *m = mmap(at, ARG(4) * (size_t)page, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, (off_t)ARG(3));
            if (m != at) { perror("mmap fixed"); return 1; }
            i += 4;
        } else if (!strcmp(c, "unmap")) {
            munmap(reg[ARG(1)], reg_len[ARG(1)]);
            reg_gone[ARG(1)] = 1;
            i += 1;
        } else if (!strcmp(c, "pread") || !strcmp(c, "read")) {
            size_t len = ARG(2);
            unsigned char *b = malloc(len);
            ssize_t r;
            if (c[0] == 'p') r = pread(fd, b, len, (off_t)ARG(1));
            else { lseek(fd, (off_t)ARG(1), SEEK_SET); r = read(fd, b, len); }
            if (r != (ssize_t)len) { perror("read"); return 1; }
            add_region(b, len);
            i += 2;
        } else if (!strcmp(c, "preadat")) {
            if (pread(fd, reg[ARG(1)] + ARG(2), ARG(4), (off_t)ARG(3)) != (ssize_t)ARG(4)) { perror("pread"); return 1; }
            i += 4;
        } else if (!strcmp(c, "scribble")) {
            memset(reg[ARG(1)] + ARG(2), 0x5a, ARG(3));
            i += 3;
        } else if (!strcmp(c, "copy") || !strcmp(c, "copya")) {
            copy((int)ARG(1), ARG(2), ARG(3), c[4] == 'a');
            i += 3;
        } else if (!strcmp(c, "copystack")) {
            copy_stack(ARG(1));
            i += 1;
        } else if (!strcmp(c, "fork")) {
            fflush(stdout);
            pid_t p = fork();
            if (p < 0) { perror("fork"); return 1; }
            if (p > 0) {
                int status = 0;
                waitpid(p, &status, 0);
                printf("forked %d\n", (int)p);
                return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            }
        } else if (!strcmp(c, "churn")) {
            churn((int)ARG(1));
            i += 1;
        } else {
            fprintf(stderr, "unknown command %s\n", c);
            return 2;
        }
#undef ARG
    }
    return 0;
}
