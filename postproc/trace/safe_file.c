/* Safe input and output files (see safe_file.h). */
#include "trace/safe_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


int mc_open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

char *mc_read_file(const char *path, size_t max, size_t *len)
{
    int fd = mc_open_regular(path);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return NULL; }
    if ((uint64_t)st.st_size > max) { close(fd); errno = EFBIG; return NULL; }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = malloc(n + 1);
    if (!buf) { close(fd); return NULL; }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;   /* shrank while read: keep what is there */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    if (len) *len = got;
    return buf;
}

int mc_out_open(struct mc_out *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (strlen(path) >= sizeof o->path - 1) { errno = ENAMETOOLONG; return -1; }
    snprintf(o->path, sizeof o->path, "%s", path);
    /* a name nobody else uses: O_EXCL refuses anything already there, symlinks included */
    for (unsigned i = 0; i < 100; i++) {
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld.%u", path, (long)getpid(), i);
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return -1;
        }
        o->f = fdopen(fd, "w");
        if (!o->f) { int e = errno; close(fd); unlink(o->tmp); errno = e; return -1; }
        return 0;
    }
    errno = EEXIST;
    return -1;
}

int mc_out_close(struct mc_out *o, int ok)
{
    if (!o->f) return -1;
    int bad = ferror(o->f) || fflush(o->f) != 0;
    int e = errno;
    if (fclose(o->f) != 0 && !bad) { bad = 1; e = errno; }
    o->f = NULL;
    if (!ok || bad || rename(o->tmp, o->path) != 0) {
        if (ok && !bad) e = errno;
        unlink(o->tmp);
        errno = ok ? e : 0;
        return -1;
    }
    return 0;
}
