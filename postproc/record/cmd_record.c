/* `moecap record [options] -- CMD ARGS...`: runs CMD under the capture shim the way a user
 * would by hand (LD_PRELOAD=libmoecap.so MOECAP_OUT=DIR), so one command profiles any
 * program: the shim is prepended to an existing LD_PRELOAD, CUDA's CUPTI injection points
 * at the collector when it was built, CMD's children inherit both (each writes its own
 * trace), signals sent to `moecap record` reach CMD, and CMD's exit status becomes ours.
 * Afterwards: a one-line summary of the traces, and optionally the report. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "record/run_dir.h"

static void usage(FILE *o)
{
    fprintf(o,
        "usage: moecap record [-o DIR] [--report --model M --hw H [--format LIST]] [options] -- CMD [ARGS...]\n"
        "\n"
        "Runs CMD with the capture shim (libmoecap.so) preloaded and writes its traces\n"
        "(one .mct per process that records something) into a fresh run directory. The\n"
        "shim is put in front of an existing LD_PRELOAD (which is kept); CUDA's CUPTI\n"
        "injection (CUDA_INJECTION64_PATH) is set to libmoecap-cupti.so when it was built;\n"
        "child processes inherit both. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to\n"
        "`moecap record` are passed on to CMD (a Ctrl-C in the terminal reaches CMD\n"
        "directly and is not sent twice); the shim flushes the trace before CMD acts on\n"
        "them. At the end one line says records, dropped events and files.\n"
        "\n"
        "  -o, --out DIR    run directory (default: moecap-YYYYmmdd-HHMMSS in the current\n"
        "                   directory); created, must not already hold traces\n"
        "  --force          allow a DIR that already holds .mct traces (they are kept)\n"
        "  --report         write the report right after CMD ends (needs --model, --hw)\n"
        "  --model PATH     model directory or config.json, passed to `moecap report`\n"
        "  --hw NAME|FILE   hardware profile, passed to `moecap report`\n"
        "  --format LIST    report formats (json,md,html,perfetto; default json,md,html)\n"
        "  --shim FILE      libmoecap.so to preload (default: ../lib/libmoecap.so next to\n"
        "                   this moecap binary)\n"
        "  --no-cupti       do not set CUDA_INJECTION64_PATH (the shim still loads the\n"
        "                   collector itself on the first CUDA call unless MOECAP_CUPTI=0)\n"
        "  --quiet          no summary line\n"
        "\n"
        "Other settings of the shim are its environment variables (MOECAP_STACK,\n"
        "MOECAP_BUF_KB, MOECAP_SAMPLE_MS, ...: docs/shim.md); they pass through.\n"
        "\n"
        "Profiling a server: record the server, drive it with `moecap bench` into the\n"
        "same directory, stop the server, report:\n"
        "  moecap record -o runs/s -- moe-ref serve --model M --port 8000 &\n"
        "  moecap bench --url http://127.0.0.1:8000/v1 -n 30 --out runs/s\n"
        "  kill -INT %%1; wait\n"
        "  moecap report runs/s --model M --hw h100-sxm --format json,md,html,perfetto\n"
        "\n"
        "Exit status: CMD's own (128+N when it was killed by signal N, like a shell);\n"
        "2 for a usage error; 127 when CMD cannot be run. With --report, a failing\n"
        "report turns a 0 into the report's status.\n");
}

/* Directory of this executable, for the default shim path. */
static int self_dir(char *out, size_t n)
{
    char p[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", p, sizeof p - 1);
    if (l <= 0) return -1;
    p[l] = 0;
    char *slash = strrchr(p, '/');
    if (!slash) return -1;
    *slash = 0;
    snprintf(out, n, "%s", p);
    return 0;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* LD_PRELOAD with `shim` added. An AddressSanitizer runtime must stay the first entry (it
 * refuses to start otherwise), so the shim goes right after one; else it goes first. An
 * entry that is already the shim is not repeated. */
static char *preload_with(const char *shim, const char *old)
{
    size_t n = strlen(shim) + (old ? strlen(old) : 0) + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    if (!old || !*old) { snprintf(s, n, "%s", shim); return s; }
    if (strstr(old, shim)) { snprintf(s, n, "%s", old); return s; }
    size_t first = strcspn(old, ": ");
    if (first && strstr(old, "libasan") && strstr(old, "libasan") < old + first)
        snprintf(s, n, "%.*s:%s%s", (int)first, old, shim, old + first);
    else
        snprintf(s, n, "%s:%s", shim, old);
    return s;
}

/* ---------- signal forwarding ---------- */

static volatile sig_atomic_t child_pid;

/* A signal that the kernel sent to the whole foreground process group (a Ctrl-C in the
 * terminal) has already reached CMD; one sent to us alone (kill PID, a supervisor) is
 * passed on. si_code tells the two apart: SI_USER/SI_QUEUE come from kill()/sigqueue(). */
static void forward(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    if (child_pid <= 0) return;
    int from_process = si && (si->si_code == SI_USER || si->si_code == SI_QUEUE);
    if (from_process && si->si_pid != child_pid) kill(child_pid, sig);
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void install_forwarding(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
}

static void restore_defaults(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
}

/* ---------- the command ---------- */

struct record_opts {
    const char *out, *model, *hw, *formats, *shim;
    int report, force, no_cupti, quiet;
    char **cmd;
};

/* 0 ok, 1 --help printed, 2 usage error (message printed). */
static int parse(int argc, char **argv, struct record_opts *o)
{
    memset(o, 0, sizeof *o);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 1; }
        else if (!strcmp(a, "--report")) o->report = 1;
        else if (!strcmp(a, "--force")) o->force = 1;
        else if (!strcmp(a, "--no-cupti")) o->no_cupti = 1;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (i + 1 < argc && (!strcmp(a, "-o") || !strcmp(a, "--out"))) o->out = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--model")) o->model = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--hw")) o->hw = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--format")) o->formats = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--shim")) o->shim = argv[++i];
        else if (a[0] == '-') {
            fprintf(stderr, "moecap record: unknown or incomplete option '%s'\n", a);
            goto bad;
        } else break;   /* CMD without "--" */
    }
    if (i >= argc) { fprintf(stderr, "moecap record: no command given (moecap record [options] -- CMD [ARGS...])\n"); goto bad; }
    o->cmd = argv + i;
    if (o->report && (!o->model || !o->hw)) { fprintf(stderr, "moecap record: --report needs --model and --hw\n"); goto bad; }
    if (!o->report && (o->model || o->hw || o->formats)) {
        fprintf(stderr, "moecap record: --model, --hw and --format go with --report\n");
        goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "usage: moecap record [-o DIR] [--report --model M --hw H] [options] -- CMD [ARGS...]   (--help for details)\n");
    return 2;
}

/* Environment of CMD: MOECAP_OUT, LD_PRELOAD and (when built) CUDA_INJECTION64_PATH. */
static int set_capture_env(const struct record_opts *o, const char *dir)
{
    char here[PATH_MAX], shim[PATH_MAX + 32], cupti[PATH_MAX + 32];
    int have_here = self_dir(here, sizeof here) == 0;
    if (o->shim) snprintf(shim, sizeof shim, "%s", o->shim);
    else if (have_here) snprintf(shim, sizeof shim, "%s/../lib/libmoecap.so", here);
    else { fprintf(stderr, "moecap record: cannot locate libmoecap.so (give --shim FILE)\n"); return -1; }
    char real[PATH_MAX];
    if (!file_exists(shim) || !realpath(shim, real)) {
        fprintf(stderr, "moecap record: shim %s not found (build it with `make`, or give --shim FILE)\n", shim);
        return -1;
    }
    char *pre = preload_with(real, getenv("LD_PRELOAD"));
    if (!pre || setenv("LD_PRELOAD", pre, 1) != 0) { free(pre); return -1; }
    free(pre);
    if (setenv("MOECAP_OUT", dir, 1) != 0) return -1;
    /* the collector sits next to the shim */
    snprintf(cupti, sizeof cupti, "%s", real);
    char *slash = strrchr(cupti, '/');
    if (slash) snprintf(slash + 1, sizeof cupti - (size_t)(slash + 1 - cupti), "libmoecap-cupti.so");
    if (!o->no_cupti && slash && file_exists(cupti) && !getenv("CUDA_INJECTION64_PATH"))
        setenv("CUDA_INJECTION64_PATH", cupti, 1);
    return 0;
}

static int run_report(const struct record_opts *o, const char *dir)
{
    char *av[12];
    int n = 0;
    av[n++] = "report"; av[n++] = (char *)dir;
    av[n++] = "--model"; av[n++] = (char *)o->model;
    av[n++] = "--hw"; av[n++] = (char *)o->hw;
    if (o->formats) { av[n++] = "--format"; av[n++] = (char *)o->formats; }
    if (o->quiet) av[n++] = "--quiet";
    av[n] = NULL;
    return mc_cmd_report(n, av);
}

int mc_cmd_record(int argc, char **argv)
{
    struct record_opts o;
    int prc = parse(argc, argv, &o);
    if (prc) return prc == 1 ? 0 : 2;

    char dir[PATH_MAX];
    char err[512];
    if (record_make_run_dir(o.out, o.force, dir, sizeof dir, err, sizeof err) != 0) {
        fprintf(stderr, "moecap record: %s\n", err);
        return 2;
    }
    if (set_capture_env(&o, dir) != 0) return 2;

    fflush(NULL);
    install_forwarding();
    /* signals that arrive before child_pid is known wait until it is */
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaddset(&block, forwarded[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) { fprintf(stderr, "moecap record: fork: %s\n", strerror(errno)); return 2; }
    if (pid == 0) {
        restore_defaults();
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(o.cmd[0], o.cmd);
        fprintf(stderr, "moecap record: cannot run %s: %s\n", o.cmd[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) { fprintf(stderr, "moecap record: waitpid: %s\n", strerror(errno)); return 2; }
    }
    child_pid = 0;
    restore_defaults();
    int rc;
    char how[64];
    if (WIFSIGNALED(st)) {
        rc = 128 + WTERMSIG(st);
        snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        rc = WEXITSTATUS(st);
        snprintf(how, sizeof how, "exited with status %d", rc);
    }

    struct record_summary sum;   /* reads every trace back: skipped when nobody looks */
    memset(&sum, 0, sizeof sum);
    if (!o.quiet || o.report) record_summarise(dir, &sum);
    if (!o.quiet) {
        fprintf(stderr, "moecap record: %s %s; %d trace file%s, %" PRIu64 " records, %" PRIu64 " dropped",
                o.cmd[0], how, sum.files, sum.files == 1 ? "" : "s", sum.records, sum.dropped);
        if (sum.truncated) fprintf(stderr, ", %d truncated", sum.truncated);
        if (sum.unreadable) fprintf(stderr, ", %d unreadable", sum.unreadable);
        fprintf(stderr, " -> %s\n", dir);
    }
    if (o.report) {
        if (!sum.files) {
            fprintf(stderr, "moecap record: no traces were written, no report (did CMD load a BLAS or CUDA?)\n");
            return rc ? rc : 2;
        }
        int rrc = run_report(&o, dir);
        if (!rc) rc = rrc;
    }
    return rc;
}
