/* Unit tests of shim/filemap.c (the weight-file host ranges behind device FILE_MAP
 * records): exact pieces for partial and straddling lookups, cuts by new ranges and
 * removals, content verification of read ranges, eviction bound, concurrent use.
 * Expected pieces are derived by hand from the ranges each case adds. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "filemap.h"
#include "mc_test.h"

/* Synthetic addresses for mapping ranges (never dereferenced: mappings are not sampled). */
#define A 0x100000000000ull

static void clear_all(void) { mc_filemap_remove(0, UINT64_MAX); }

static int piece_is(const struct mc_filemap_piece *p, uint64_t addr, uint64_t len, uint64_t off, uint32_t path)
{
    return p->addr == addr && p->length == len && p->file_offset == off && p->path_str == path;
}

static void partial_copies_name_only_covered_bytes(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    mc_filemap_add(A, 1000, 5000, 7, 0);
    int n = mc_filemap_lookup(A + 100, 50, p, 4);
    MC_CHECK(n == 1 && piece_is(&p[0], A + 100, 50, 5100, 7), "n=%d off=%llu", n, (unsigned long long)p[0].file_offset);
    n = mc_filemap_lookup(A - 10, 20, p, 4);              /* starts before the range */
    MC_CHECK(n == 1 && piece_is(&p[0], A, 10, 5000, 7), "n=%d", n);
    n = mc_filemap_lookup(A + 990, 100, p, 4);            /* runs past its end */
    MC_CHECK(n == 1 && piece_is(&p[0], A + 990, 10, 5990, 7), "n=%d", n);
    MC_CHECK(mc_filemap_lookup(A - 100, 100, p, 4) == 0, "just before");
    MC_CHECK(mc_filemap_lookup(A + 1000, 10, p, 4) == 0, "just after");
    MC_CHECK(mc_filemap_lookup(A + 5, 0, p, 4) == 0, "empty copy");
}

static void straddling_copy_gives_one_piece_per_range(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    mc_filemap_add(A, 100, 0, 1, 0);
    mc_filemap_add(A + 100, 100, 9000, 2, 0);
    int n = mc_filemap_lookup(A + 90, 20, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[0], A + 90, 10, 90, 1) && piece_is(&p[1], A + 100, 10, 9000, 2), "n=%d", n);
    /* A gap between ranges is simply not named. */
    mc_filemap_add(A + 300, 100, 20000, 3, 0);
    n = mc_filemap_lookup(A + 150, 200, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[0], A + 150, 50, 9050, 2) && piece_is(&p[1], A + 300, 50, 20000, 3), "n=%d", n);
}

static void new_mapping_over_a_range_cuts_it(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    mc_filemap_add(A, 300, 0, 1, 0);
    mc_filemap_add(A + 100, 100, 7000, 2, 0);            /* MAP_FIXED over the middle */
    int n = mc_filemap_lookup(A, 300, p, 4);
    MC_CHECK(n == 3 && piece_is(&p[0], A, 100, 0, 1) && piece_is(&p[1], A + 100, 100, 7000, 2) &&
             piece_is(&p[2], A + 200, 100, 200, 1), "n=%d", n);
    mc_filemap_add(A + 50, 200, 100000, 3, 0);           /* over the head of one, tail of another */
    n = mc_filemap_lookup(A, 300, p, 4);
    MC_CHECK(n == 3 && piece_is(&p[0], A, 50, 0, 1) && piece_is(&p[1], A + 50, 200, 100000, 3) &&
             piece_is(&p[2], A + 250, 50, 250, 1), "n=%d", n);
    MC_CHECK(mc_filemap_count() == 3, "count %zu", mc_filemap_count());
}

static void munmap_removes_and_trims(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    mc_filemap_add(A, 4096 * 4, 4096, 5, 0);
    mc_filemap_remove(A + 4096, 4096);                    /* a hole in the middle */
    int n = mc_filemap_lookup(A, 4096 * 4, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[0], A, 4096, 4096, 5) && piece_is(&p[1], A + 8192, 8192, 4096 * 3, 5), "n=%d", n);
    mc_filemap_remove(A + 12288, 1 << 20);                /* the tail and beyond */
    n = mc_filemap_lookup(A, 4096 * 4, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[1], A + 8192, 4096, 4096 * 3, 5), "n=%d", n);
    mc_filemap_remove(A, 4096 * 4);
    MC_CHECK(mc_filemap_lookup(A, 4096 * 4, p, 4) == 0 && mc_filemap_count() == 0, "count %zu", mc_filemap_count());
}

static void more_pieces_than_room_continue(void)
{
    clear_all();
    struct mc_filemap_piece p[16];
    for (int i = 0; i < 20; i++) mc_filemap_add(A + 10 * (uint64_t)i, 10, 1000 * (uint64_t)i, 1, 0);
    int n = mc_filemap_lookup(A, 200, p, 16);
    MC_CHECK(n == 16 && piece_is(&p[15], A + 150, 10, 15000, 1), "n=%d", n);
    n = mc_filemap_lookup(p[15].addr + p[15].length, A + 200 - (p[15].addr + p[15].length), p, 16);
    MC_CHECK(n == 4 && piece_is(&p[0], A + 160, 10, 16000, 1) && piece_is(&p[3], A + 190, 10, 19000, 1), "n=%d", n);
}

static unsigned char rbuf[8192];

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) ^ seed);
}

static void read_buffer_named_while_its_content_is_unchanged(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    uint64_t b = (uintptr_t)rbuf;
    fill(rbuf, 4096, 1);
    mc_filemap_add(b, 4096, 300, 9, 2);
    int n = mc_filemap_lookup(b + 16, 64, p, 4);
    MC_CHECK(n == 1 && piece_is(&p[0], b + 16, 64, 316, 9) && p[0].how == 2, "n=%d", n);
    /* The program overwrote the buffer (reuse, free + malloc): not named, and forgotten. */
    memset(rbuf + 4088, 0x5a, 8);
    MC_CHECK(mc_filemap_lookup(b + 16, 64, p, 4) == 0, "stale buffer still named");
    MC_CHECK(mc_filemap_count() == 0, "stale range kept (%zu)", mc_filemap_count());
    /* Reads shorter than a sample are not kept. */
    mc_filemap_add(b, 4, 0, 9, 1);
    MC_CHECK(mc_filemap_count() == 0, "4-byte read kept");
}

static void later_read_into_part_of_a_buffer_keeps_the_rest(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    uint64_t b = (uintptr_t)rbuf;
    fill(rbuf, 4096, 2);
    mc_filemap_add(b, 4096, 0, 4, 1);
    fill(rbuf, 1024, 3);                                  /* a second read over its head */
    mc_filemap_add(b, 1024, 50000, 4, 1);
    int n = mc_filemap_lookup(b, 4096, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[0], b, 1024, 50000, 4) && piece_is(&p[1], b + 1024, 3072, 1024, 4), "n=%d", n);
    /* Reading into a buffer made of two reads, straddling the seam. */
    n = mc_filemap_lookup(b + 1000, 48, p, 4);
    MC_CHECK(n == 2 && piece_is(&p[0], b + 1000, 24, 51000, 4) && piece_is(&p[1], b + 1024, 24, 1024, 4), "n=%d", n);
}

static void unmapped_read_buffer_is_not_named_and_does_not_fault(void)
{
    clear_all();
    struct mc_filemap_piece p[4];
    /* Raw syscalls: the allocator's own munmap is invisible to the shim too. */
    unsigned char *m = (unsigned char *)syscall(SYS_mmap, NULL, 8192, PROT_READ | PROT_WRITE,
                                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MC_CHECK(m != MAP_FAILED, "mmap");
    if (m == MAP_FAILED) return;
    fill(m, 8192, 4);
    mc_filemap_add((uintptr_t)m, 8192, 4096, 3, 1);
    MC_CHECK(mc_filemap_lookup((uintptr_t)m, 8192, p, 4) == 1, "live buffer not named");
    syscall(SYS_munmap, m, 8192);
    MC_CHECK(mc_filemap_lookup((uintptr_t)m, 8192, p, 4) == 0, "unmapped buffer named");
    MC_CHECK(!mc_filemap_unverifiable(), "process_vm_readv refused on this machine");
}

static void memory_is_bounded_and_reads_go_first(void)
{
    clear_all();
    uint64_t ev0 = mc_filemap_evicted();
    struct mc_filemap_piece p[2];
    fill(rbuf, 64, 5);
    for (uint64_t i = 0; i < MC_FILEMAP_MAX - 4; i++) mc_filemap_add(A + 64 * i, 64, i, 1, 0);
    mc_filemap_add((uintptr_t)rbuf, 64, 0, 2, 1);        /* newer than every mapping */
    for (uint64_t i = MC_FILEMAP_MAX - 4; i < MC_FILEMAP_MAX + 10; i++) mc_filemap_add(A + 64 * i, 64, i, 1, 0);
    /* MAX - 4 + 1 + 14 ranges added, at most MAX - 1 kept (one entry stays free for a split):
     * 12 evicted, the read range first although it is newer, then mappings 0..10. */
    MC_CHECK(mc_filemap_count() == MC_FILEMAP_MAX - 1, "count %zu", mc_filemap_count());
    MC_CHECK(mc_filemap_evicted() - ev0 == 12, "evicted %llu", (unsigned long long)(mc_filemap_evicted() - ev0));
    MC_CHECK(mc_filemap_lookup((uintptr_t)rbuf, 64, p, 2) == 0, "the read range should have gone first");
    MC_CHECK(mc_filemap_lookup(A, 64, p, 2) == 0, "the oldest mapping should have gone");
    MC_CHECK(mc_filemap_lookup(A + 64 * 10, 64, p, 2) == 0, "mapping 10 should have gone");
    MC_CHECK(mc_filemap_lookup(A + 64 * 11, 64, p, 2) == 1 && p[0].file_offset == 11, "mapping 11 missing");
    uint64_t last = MC_FILEMAP_MAX + 9;
    MC_CHECK(mc_filemap_lookup(A + 64 * last, 64, p, 2) == 1 && p[0].file_offset == last, "newest missing");
    clear_all();
}

/* Threads add/remove their own ranges and look them up, all at once. */
static void *churn(void *arg)
{
    uint64_t base = A + ((uint64_t)(uintptr_t)arg << 32);
    int *bad = calloc(1, sizeof *bad);
    for (int it = 0; it < 20000; it++) {
        uint64_t off = (uint64_t)(it % 97) * 4096;
        mc_filemap_add(base, 1 << 20, off, 1, 0);
        mc_filemap_add(base + 4096, 4096, 999, 2, 0);
        struct mc_filemap_piece p[4];
        int n = mc_filemap_lookup(base + 4000, 200, p, 4);
        if (n != 2 || !piece_is(&p[0], base + 4000, 96, off + 4000, 1) || !piece_is(&p[1], base + 4096, 104, 999, 2)) (*bad)++;
        mc_filemap_remove(base, 1 << 20);
        if (mc_filemap_lookup(base, 1 << 20, p, 4) != 0) (*bad)++;
    }
    return bad;
}

static void concurrent_threads_see_their_own_ranges(void)
{
    clear_all();
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += *(int *)r;
        free(r);
    }
    MC_CHECK(bad == 0, "%d wrong lookups", bad);
    MC_CHECK(mc_filemap_count() == 0, "count %zu", mc_filemap_count());
}

int main(void)
{
    MC_RUN(partial_copies_name_only_covered_bytes);
    MC_RUN(straddling_copy_gives_one_piece_per_range);
    MC_RUN(new_mapping_over_a_range_cuts_it);
    MC_RUN(munmap_removes_and_trims);
    MC_RUN(more_pieces_than_room_continue);
    MC_RUN(read_buffer_named_while_its_content_is_unchanged);
    MC_RUN(later_read_into_part_of_a_buffer_keeps_the_rest);
    MC_RUN(unmapped_read_buffer_is_not_named_and_does_not_fault);
    MC_RUN(memory_is_bounded_and_reads_go_first);
    MC_RUN(concurrent_threads_see_their_own_ranges);
    return MC_TEST_EXIT();
}
