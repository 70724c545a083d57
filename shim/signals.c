/* SIGINT/SIGTERM: flush the trace, then behave exactly as the program asked.
 *
 * The shim installs its own handler for SIGINT and SIGTERM (unless they are ignored) and
 * interposes sigaction()/signal() so that handlers the program installs later are stored
 * rather than installed: the shim's handler flushes and then calls the program's handler
 * (with the program's mask and flags), or — when the program wants the default action —
 * restores SIG_DFL and re-raises, so the exit status is the one it would have been
 * without the shim. SIG_IGN requests are passed through (an ignored signal never ends
 * the process, nothing to flush). */
#include "shim_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static struct mc_real real_sigaction = MC_REAL_INIT("sigaction");

int mc_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    sigaction_fn f = (sigaction_fn)mc_real(&real_sigaction);
    if (!f) { errno = ENOSYS; return -1; }
    return f(sig, act, old);
}

#define NSIG_OURS 2
static const int our_sigs[NSIG_OURS] = {SIGINT, SIGTERM};
/* Per signal: whether our handler is installed, and what the program asked for. */
static _Atomic int installed[NSIG_OURS];
static struct sigaction app_action[NSIG_OURS];
static pthread_mutex_t sig_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_up_signals_ok; /* core is up and capturing: take over handlers */

static int slot_of(int sig)
{
    for (int i = 0; i < NSIG_OURS; i++) if (our_sigs[i] == sig) return i;
    return -1;
}

static void our_handler(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    int i = slot_of(sig);
    mc_core_flush_from_signal();
    if (i < 0) { errno = saved; return; }
    struct sigaction app = app_action[i];
    if (app.sa_flags & SA_RESETHAND) {
        app_action[i].sa_handler = SIG_DFL;
        app_action[i].sa_flags &= ~(SA_RESETHAND | SA_SIGINFO);
    }
    if (app.sa_flags & SA_SIGINFO) {
        if (app.sa_sigaction) app.sa_sigaction(sig, info, ctx);
    } else if (app.sa_handler == SIG_DFL) {
        /* Default action (terminate): die by the same signal, as without the shim. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        mc_real_sigaction(sig, &dfl, NULL);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, sig);
        pthread_sigmask(SIG_UNBLOCK, &s, NULL);
        raise(sig);
        /* Still alive (blocked elsewhere?): put ours back. */
        struct sigaction ours;
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = our_handler;
        ours.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&ours.sa_mask);
        mc_real_sigaction(sig, &ours, NULL);
    } else if (app.sa_handler != SIG_IGN) {
        app.sa_handler(sig);
    }
    errno = saved;
}

/* Installs our handler for slot i carrying the program's mask and flags. */
static int install_ours(int i, const struct sigaction *app)
{
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = our_handler;
    ours.sa_mask = app->sa_mask;
    ours.sa_flags = (app->sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
    return mc_real_sigaction(our_sigs[i], &ours, NULL);
}

void mc_signals_install(void)
{
    pthread_mutex_lock(&sig_mutex);
    for (int i = 0; i < NSIG_OURS; i++) {
        struct sigaction cur;
        if (mc_real_sigaction(our_sigs[i], NULL, &cur) < 0) continue;
        if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN) continue;
        app_action[i] = cur;
        if (install_ours(i, &cur) == 0) atomic_store(&installed[i], 1);
    }
    atomic_store(&g_up_signals_ok, 1);
    pthread_mutex_unlock(&sig_mutex);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int i = slot_of(sig);
    if (i < 0 || mc_cfg.disabled) return mc_real_sigaction(sig, act, old);
    pthread_mutex_lock(&sig_mutex);
    int rc = 0;
    if (!atomic_load(&installed[i])) {
        /* Not ours right now (ignored, or before start-up): pass through, and take over
         * again when the program installs a real handler. */
        struct sigaction prev;
        rc = mc_real_sigaction(sig, act, &prev);
        if (rc == 0) {
            if (old) *old = prev;
            int ign = act && !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_IGN;
            if (act && !ign && atomic_load(&g_up_signals_ok)) {
                app_action[i] = *act;
                if (install_ours(i, act) == 0) atomic_store(&installed[i], 1);
            }
        }
        pthread_mutex_unlock(&sig_mutex);
        return rc;
    }
    struct sigaction prev = app_action[i];
    if (act) {
        int ign = !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_IGN;
        if (ign) {
            rc = mc_real_sigaction(sig, act, NULL);
            if (rc == 0) { atomic_store(&installed[i], 0); app_action[i] = *act; }
        } else {
            rc = install_ours(i, act);
            if (rc == 0) app_action[i] = *act;
        }
    }
    if (rc == 0 && old) *old = prev;
    pthread_mutex_unlock(&sig_mutex);
    return rc;
}

/* glibc's signal() does not go through the sigaction symbol: interpose it as well, with
 * its BSD semantics (SA_RESTART, handler stays installed). */
typedef void (*sighandler_fn)(int);
sighandler_fn signal(int sig, sighandler_fn handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    if (sig < 1 || sig >= NSIG) { errno = EINVAL; return SIG_ERR; }
    if (sigaction(sig, &act, &old) < 0) return SIG_ERR;
    return old.sa_handler;
}

/* Held across fork so a child never inherits it locked by another thread. */
void mc_signals_fork_lock(void) { pthread_mutex_lock(&sig_mutex); }
void mc_signals_fork_unlock(void) { pthread_mutex_unlock(&sig_mutex); }
