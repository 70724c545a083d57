/* RAPL/powercap zone discovery and wrap-safe energy accumulation. */
#include "cpuprof_rapl.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t mc_rapl_delta(uint64_t prev, uint64_t cur, uint64_t max_range)
{
    if (cur >= prev) return cur - prev;
    /* Wrapped: from prev up to the top of the range, then from 0 to cur. Without a known
     * range (or a reading above it) the drop cannot be explained: count nothing rather
     * than invent energy. */
    if (!max_range || prev > max_range) return 0;
    return (max_range - prev) + cur;
}

/* Reads a small file as an unsigned integer (or text when txt != NULL). */
static int read_file(const char *path, uint64_t *v, char *txt, size_t txtlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0) { errno = n < 0 ? e : EIO; return -1; }
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (txt) {
        size_t l = strlen(buf) < txtlen - 1 ? strlen(buf) : txtlen - 1;
        memcpy(txt, buf, l);
        txt[l] = 0;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno || end == buf || *end) { errno = EINVAL; return -1; }
    *v = x;
    return 0;
}

static int cmp_zone(const void *a, const void *b)
{
    return strcmp(((const struct mc_rapl_zone *)a)->path, ((const struct mc_rapl_zone *)b)->path);
}

int mc_rapl_scan(const char *root, struct mc_rapl_zone *zones, int max, const char **why)
{
    *why = "no RAPL zones";
    DIR *d = opendir(root);
    if (!d) { *why = "no powercap directory: no RAPL driver, e.g. a VM"; return 0; }
    int n = 0, denied = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        unsigned a, b;
        char tail;
        int sub = sscanf(de->d_name, "intel-rapl:%u:%u%c", &a, &b, &tail);
        if (sub != 2 && sscanf(de->d_name, "intel-rapl:%u%c", &a, &tail) != 1) continue;
        struct mc_rapl_zone *z = &zones[n];
        memset(z, 0, sizeof *z);
        char p[800], name[48] = "";
        snprintf(p, sizeof p, "%s/%s/name", root, de->d_name);
        if (read_file(p, NULL, name, sizeof name) < 0) snprintf(name, sizeof name, "%.47s", de->d_name);
        if (sub == 2) {
            /* Subzone: prefix the parent's name ("package-0.dram"), since "dram"/"core"
             * repeat once per socket. */
            char parent[48] = "";
            snprintf(p, sizeof p, "%s/intel-rapl:%u/name", root, a);
            if (read_file(p, NULL, parent, sizeof parent) < 0) snprintf(parent, sizeof parent, "intel-rapl:%u", a);
            snprintf(z->name, sizeof z->name, "%.31s.%.31s", parent, name);
        } else {
            snprintf(z->name, sizeof z->name, "%s", name);
        }
        snprintf(z->path, sizeof z->path, "%s/%s/energy_uj", root, de->d_name);
        snprintf(p, sizeof p, "%s/%s/max_energy_range_uj", root, de->d_name);
        if (read_file(p, &z->max_range_uj, NULL, 0) < 0) z->max_range_uj = 0;
        uint64_t v;
        if (read_file(z->path, &v, NULL, 0) < 0) {
            if (errno == EACCES || errno == EPERM) denied++;
            continue;
        }
        n++;
    }
    closedir(d);
    if (!n && denied) *why = "energy_uj not readable: permission denied, root only since Linux 5.10";
    qsort(zones, (size_t)n, sizeof *zones, cmp_zone);
    return n;
}

int mc_rapl_read(struct mc_rapl_zone *z)
{
    uint64_t v;
    if (read_file(z->path, &v, NULL, 0) < 0) return -1;
    if (z->primed) z->total_uj += mc_rapl_delta(z->last_uj, v, z->max_range_uj);
    z->last_uj = v;
    z->primed = 1;
    return 0;
}
