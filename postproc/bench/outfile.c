/* Symlink-safe output files (see outfile.h). */
#include "outfile.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int mc_outfile_open(struct mc_outfile *o, const char *dir, const char *name)
{
    if ((size_t)snprintf(o->path, sizeof o->path, "%s/%s", dir, name) >= sizeof o->path ||
        (size_t)snprintf(o->tmp, sizeof o->tmp, "%s/.%s.XXXXXX", dir, name) >= sizeof o->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(o->tmp);               /* O_CREAT | O_EXCL: never an existing file or link */
    if (fd < 0) return -1;
    fchmod(fd, 0644);
    o->f = fdopen(fd, "w");
    if (!o->f) { int e = errno; close(fd); unlink(o->tmp); errno = e; return -1; }
    return 0;
}

int mc_outfile_commit(struct mc_outfile *o)
{
    int bad = ferror(o->f) != 0;
    bad |= fflush(o->f) != 0;
    bad |= fsync(fileno(o->f)) != 0 && errno != EINVAL;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad || rename(o->tmp, o->path)) {
        int e = errno;
        unlink(o->tmp);
        errno = e;
        return -1;
    }
    return 0;
}

int mc_outfile_write(const char *dir, const char *name, const char *text)
{
    struct mc_outfile o;
    if (mc_outfile_open(&o, dir, name)) return -1;
    fputs(text, o.f);
    fputc('\n', o.f);
    return mc_outfile_commit(&o);
}
