/* MC_REC_MAPPING definitions: the process's executable mappings (from /proc/self/maps),
 * so the post-processor can symbolise call-site return addresses offline. Rescanned only
 * when the dynamic loader reports that objects were added (dl_iterate_phdr's dlpi_adds),
 * checked by the writer thread, at exit and when a symbol is resolved late. */
#include "shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct seen { uint64_t start, end, off; };
static struct seen *g_seen;
static size_t g_nseen, g_capseen;
static unsigned long long g_last_adds = ~0ull;
static pthread_mutex_t g_maps_mutex = PTHREAD_MUTEX_INITIALIZER;

static int adds_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(unsigned long long *)arg = info->dlpi_adds;
    return 1;
}

static int was_seen(uint64_t s, uint64_t e, uint64_t o)
{
    for (size_t i = 0; i < g_nseen; i++)
        if (g_seen[i].start == s && g_seen[i].end == e && g_seen[i].off == o) return 1;
    return 0;
}

static uint64_t hex(const char **p)
{
    uint64_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
        else return v;
    }
}

static void handle_line(const char *l)
{
    const char *p = l;
    uint64_t start = hex(&p);
    if (*p++ != '-') return;
    uint64_t end = hex(&p);
    if (*p++ != ' ') return;
    char perms[5] = {0};
    for (int i = 0; i < 4 && *p && *p != ' '; i++) perms[i] = *p++;
    if (perms[2] != 'x') return;
    while (*p == ' ') p++;
    uint64_t off = hex(&p);
    /* skip dev and inode */
    for (int f = 0; f < 2; f++) { while (*p == ' ') p++; while (*p && *p != ' ') p++; }
    while (*p == ' ') p++;
    if (!*p) return;
    if (was_seen(start, end, off)) return;
    if (g_nseen == g_capseen) {
        size_t cap = g_capseen ? g_capseen * 2 : 256;
        struct seen *n = realloc(g_seen, cap * sizeof *n);
        if (!n) return;
        g_seen = n;
        g_capseen = cap;
    }
    g_seen[g_nseen++] = (struct seen){start, end, off};
    struct mc_rec_mapping m;
    memset(&m, 0, sizeof m);
    m.h.type = MC_REC_MAPPING;
    m.start = start;
    m.end = end;
    m.file_offset = off;
    m.path_str = mc_intern(p);
    m.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) | PROT_EXEC;
    mc_def_record(&m, sizeof m);
}

void mc_maps_refresh(int force)
{
    if (!mc_capture_enabled()) return;
    unsigned long long adds = 0;
    dl_iterate_phdr(adds_cb, &adds);
    pthread_mutex_lock(&g_maps_mutex);
    if (!force && adds == g_last_adds) { pthread_mutex_unlock(&g_maps_mutex); return; }
    g_last_adds = adds;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { pthread_mutex_unlock(&g_maps_mutex); return; }
    char buf[8192];
    char line[4608];
    size_t ll = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n') { line[ll] = 0; handle_line(line); ll = 0; }
            else if (ll < sizeof line - 1) line[ll++] = buf[i];
        }
    }
    close(fd);
    pthread_mutex_unlock(&g_maps_mutex);
}

/* Held across fork: the child inherits the address space, and the recorded mappings are
 * replayed into its file with the other definitions. */
void mc_maps_fork_lock(void) { pthread_mutex_lock(&g_maps_mutex); }
void mc_maps_fork_unlock(void) { pthread_mutex_unlock(&g_maps_mutex); }
void mc_maps_after_fork(void) { mc_maps_fork_unlock(); }
