/* A minimal libmicrohttpd server with the HTTP behaviour `moe-ref serve` needs, to measure
 * what adopting libmicrohttpd would give before deciding (docs/serve.md, "HTTP layer").
 * Not part of the build; bench/serve-mhd-probe.sh compiles and drives it.
 *   serve-mhd-probe PORT_FILE CONNECTION_LIMIT epoll|thread
 * GET /health -> 200 {"status":"ok"}; GET /slow -> 200 after 300 ms (an answer that takes
 * longer than a hang-up check); POST -> reads the body (at most 1 MiB, else 413), then 400
 * with a JSON error (the hostile-body case); connections beyond the limit are left to
 * libmicrohttpd (MHD_OPTION_CONNECTION_LIMIT). Links OpenBLAS like moe-ref, so a thread
 * carries the same thread-local storage. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void openblas_set_num_threads(int);

struct upload { size_t got; int too_big; };

static ssize_t slow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos > 0) return MHD_CONTENT_READER_END_OF_STREAM;
    usleep(300 * 1000);
    const char *s = "{\"slow\":\"done\"}";
    size_t n = strlen(s) < max ? strlen(s) : max;
    memcpy(buf, s, n);
    return (ssize_t)n;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **state)
{
    (void)cls; (void)version; (void)data;
    if (!strcmp(method, "GET")) {
        if (!strcmp(url, "/slow")) {
            struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, slow_reader, NULL, NULL);
            enum MHD_Result ret = MHD_queue_response(c, 200, r);
            MHD_destroy_response(r);
            return ret;
        }
        return answer(c, 200, "{\"status\":\"ok\"}");
    }
    struct upload *u = *state;
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        *state = u;
        return MHD_YES;
    }
    if (*size) {
        u->got += *size;
        if (u->got > (1u << 20)) u->too_big = 1;
        *size = 0;
        return MHD_YES;
    }
    return answer(c, u->too_big ? 413 : 400, "{\"error\":{\"message\":\"invalid body\",\"code\":400}}");
}

static void done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
    (void)cls; (void)c; (void)why;
    free(*state);
    *state = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: serve-mhd-probe PORT_FILE CONNECTION_LIMIT epoll|thread\n"); return 2; }
    openblas_set_num_threads(1);
    unsigned limit = (unsigned)atoi(argv[2]);
    unsigned flags = !strcmp(argv[3], "thread") ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                                                 : MHD_USE_EPOLL_INTERNAL_THREAD;
    struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
                                            MHD_OPTION_CONNECTION_LIMIT, limit,
                                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                            MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
    if (!d) { fprintf(stderr, "serve-mhd-probe: cannot start\n"); return 1; }
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "%u\n", i->port);
    fclose(f);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int sig;
    sigwait(&s, &sig);
    MHD_stop_daemon(d);
    return 0;
}
