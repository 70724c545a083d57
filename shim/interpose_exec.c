/* exec family and _exit: an image replaced by execve, or a process leaving through
 * _exit (Python's os._exit in multiprocessing children), runs no exit handlers, so the
 * rings are flushed first (the new image, same pid, writes <host>-<pid>.1.mct). glibc's own
 * execvp/execl... call execve internally without the PLT, hence one wrapper each.
 * In a vfork child the core does nothing (it shares the parent's memory). */
#include "shim_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void syscall_exit_group(int status) { syscall(SYS_exit_group, status); }

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
static struct mc_real r_execve = MC_REAL_INIT("execve"),
    r_execvpe = MC_REAL_INIT("execvpe"),
    r_fexecve = MC_REAL_INIT("fexecve");

int execve(const char *path, char *const argv[], char *const envp[])
{
    execve_fn f = (execve_fn)mc_real(&r_execve);
    if (!f) { errno = ENOSYS; return -1; }
    mc_core_flush_before_exec();
    return f(path, argv, envp);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    execvpe_fn f = (execvpe_fn)mc_real(&r_execvpe);
    if (!f) { errno = ENOSYS; return -1; }
    mc_core_flush_before_exec();
    return f(file, argv, envp);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    fexecve_fn f = (fexecve_fn)mc_real(&r_fexecve);
    if (!f) { errno = ENOSYS; return -1; }
    mc_core_flush_before_exec();
    return f(fd, argv, envp);
}

int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* execl family: collect the variadic list (on the stack: these may run in a vfork child). */
/* Declares `char *argv[]` holding arg and the non-NULL arguments that follow it in ap, then
 * NULL; ap is left just past that NULL (where execle's envp is). */
#define ARGV_FROM_VA(argv, arg, ap)                                            \
    size_t n_ = 1;                                                             \
    {                                                                          \
        va_list c_;                                                            \
        va_copy(c_, ap);                                                       \
        while (va_arg(c_, char *)) n_++;                                       \
        va_end(c_);                                                            \
    }                                                                          \
    char *argv[n_ + 1];                                                        \
    argv[0] = (char *)(arg);                                                   \
    for (size_t i_ = 1; i_ <= n_; i_++) argv[i_] = va_arg(ap, char *)

int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_VA(argv, arg, ap);
    va_end(ap);
    return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_VA(argv, arg, ap);
    va_end(ap);
    return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_VA(argv, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

/* _exit/_Exit may be called from signal handlers: the signal-safe flush (it gives up
 * rather than wait on a lock held by the interrupted code). */
typedef void (*exit_fn)(int);
static struct mc_real r__exit = MC_REAL_INIT("_exit"),
    r__Exit = MC_REAL_INIT("_Exit");

void _exit(int status)
{
    exit_fn f = (exit_fn)mc_real(&r__exit);
    mc_core_flush_from_signal();
    if (f) f(status);
    for (;;) syscall_exit_group(status);
}

void _Exit(int status)
{
    exit_fn f = (exit_fn)mc_real(&r__Exit);
    mc_core_flush_from_signal();
    if (f) f(status);
    for (;;) syscall_exit_group(status);
}
