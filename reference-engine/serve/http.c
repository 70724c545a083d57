/* HTTP/1.1 request reading and response writing for `moe-ref serve` (see http.h).
 * Every read is bounded by a deadline so a slow or silent client (slowloris) ties up
 * one connection thread for at most that long, never the scheduler. */
#include "http.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* recv with the remaining time; returns bytes, 0 on EOF, -1 on error, -2 on timeout. */
static ssize_t recv_deadline(int fd, char *buf, size_t n, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return -2;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int k = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) continue;
        ssize_t r = recv(fd, buf, n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        return r;
    }
}

static const char *find_header(const char *hdr, const char *name)
{
    size_t nl = strlen(name);
    const char *p = strstr(hdr, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            return v;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

int http_read_request(int fd, struct http_req *r, int deadline_ms)
{
    memset(r->method, 0, sizeof r->method);
    r->path[0] = 0;
    r->body = NULL;
    r->body_len = 0;
    long long deadline = now_ms() + deadline_ms;
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len >= SRV_MAX_HEADER) return 431;
        ssize_t k = recv_deadline(fd, r->hdr + len, SRV_MAX_HEADER - len, deadline);
        if (k == -2) return len ? 408 : -1;
        if (k <= 0) return -1;
        len += (size_t)k;
        r->hdr[len] = 0;
        if (memchr(r->hdr, 0, len)) return 400;              /* NUL bytes in headers */
        end = strstr(r->hdr, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - r->hdr) + 4;
    size_t extra = len - hlen;                               /* body bytes already read */
    end[2] = 0;                                              /* headers end in "\r\n" */
    /* request line */
    char ver[16] = {0};
    char *sp1 = strchr(r->hdr, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    char *eol = strstr(r->hdr, "\r\n");
    if (!sp1 || !sp2 || sp2 > eol || (size_t)(sp1 - r->hdr) >= sizeof r->method ||
        (size_t)(sp2 - sp1 - 1) >= sizeof r->path || eol - sp2 - 1 >= (long)sizeof ver || sp2 == sp1 + 1)
        return 400;
    memcpy(r->method, r->hdr, (size_t)(sp1 - r->hdr));
    memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    r->path[sp2 - sp1 - 1] = 0;
    memcpy(ver, sp2 + 1, (size_t)(eol - sp2 - 1));
    if (strncmp(ver, "HTTP/1.", 7) || r->path[0] != '/') return 400;
    for (char *m = r->method; *m; m++) if (!isupper((unsigned char)*m)) return 400;
    char *q = strchr(r->path, '?');
    if (q) *q = 0;
    const char *te = find_header(r->hdr, "Transfer-Encoding");
    if (te && strncasecmp(te, "identity", 8)) return 411;
    const char *cl = find_header(r->hdr, "Content-Length");
    size_t want = 0;
    if (cl) {
        char *e;
        errno = 0;
        unsigned long long v = strtoull(cl, &e, 10);
        if (e == cl || errno || (*e != '\r' && *e != ' ' && *e != '\t')) return 400;
        if (v > SRV_MAX_BODY) return 413;
        want = (size_t)v;
    } else if (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT")) {
        return 411;
    }
    if (extra > want) extra = want;                          /* pipelined bytes: ignored */
    r->body = malloc(want + 1);
    if (!r->body) return 413;
    memcpy(r->body, r->hdr + hlen, extra);
    size_t got = extra;
    const char *ex = find_header(r->hdr, "Expect");
    if (ex && !strncasecmp(ex, "100-continue", 12) && got < want)
        http_write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (got < want) {
        ssize_t k = recv_deadline(fd, r->body + got, want - got, deadline);
        if (k == -2) { http_req_free(r); return 408; }
        if (k <= 0) { http_req_free(r); return -1; }
        got += (size_t)k;
    }
    r->body[want] = 0;
    r->body_len = want;
    return 0;
}

void http_req_free(struct http_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int http_write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

const char *http_reason(int s)
{
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

int http_respond(int fd, int status, const char *ct, const char *body, size_t n)
{
    char h[256];
    int hl = snprintf(h, sizeof h,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, http_reason(status), ct, n);
    if (http_write_all(fd, h, (size_t)hl)) return -1;
    return n ? http_write_all(fd, body, n) : 0;
}

int http_respond_error(int fd, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNumberToObject(e, "code", status);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = s ? http_respond(fd, status, "application/json", s, strlen(s)) : -1;
    free(s);
    return rc;
}

int http_peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (p.revents & POLLIN) {               /* readable after a full request: EOF or junk */
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return k == 0;
    }
    return 0;
}
