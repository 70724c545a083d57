/* HTTP/1.1 request parsing, reading and response writing for `moe-ref serve` (see http.h).
 * Every read is bounded by a deadline so a slow or silent client (slowloris) ties up
 * one connection thread for at most that long, never the scheduler. The head parser is
 * strict where leniency lets two readers disagree about a request (conflicting
 * Content-Length, folded header lines, bare control bytes). */
#include "http.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* recv with the remaining time; returns bytes, 0 on EOF, -1 on error, -2 on timeout. */
static ssize_t recv_deadline(int fd, char *buf, size_t n, long long deadline)
{
    for (;;) {
        long long left = deadline - http_now_ms();
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

/* RFC 9110 token characters (header names, methods). */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && !strncasecmp(p, name, n);
}

/* Content-Length value: 1*DIGIT, or a list "N, N" of identical values. Returns the value,
 * -2 malformed or conflicting; values beyond 18 digits read as SRV_MAX_BODY + 1. */
static long long parse_length(const char *v, size_t n)
{
    long long out = -1;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        size_t d0 = i;
        long long x = 0;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            if (i - d0 < 18) x = x * 10 + (v[i] - '0');
            else x = (long long)SRV_MAX_BODY + 1;
            i++;
        }
        if (i == d0) return -2;
        while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
        if (i < n && v[i] != ',') return -2;
        if (i < n) i++;                                   /* the comma */
        if (out >= 0 && out != x) return -2;
        out = x;
    }
    return out < 0 ? -2 : out;
}

int http_parse_head(const char *buf, size_t len, struct http_head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    if (len > SRV_MAX_HEADER) len = SRV_MAX_HEADER;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len >= SRV_MAX_HEADER ? 431 : HTTP_INCOMPLETE;
    size_t hl = (size_t)(end - buf) + 4;
    h->head_len = hl;
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    const char *eol = memmem(buf, hl, "\r\n", 2);
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == buf || (size_t)(sp1 - buf) >= sizeof h->method ||
        sp2 == sp1 + 1 || (size_t)(sp2 - sp1 - 1) >= sizeof h->path)
        return 400;
    for (const char *m = buf; m < sp1; m++)
        if (*m < 'A' || *m > 'Z') return 400;
    for (const char *t = sp1 + 1; t < sp2; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f) return 400;
    if (eol - sp2 - 1 != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) && memcmp(sp2 + 1, "HTTP/1.0", 8))) return 400;
    if (sp1[1] != '/') return 400;
    memcpy(h->method, buf, (size_t)(sp1 - buf));
    memcpy(h->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    char *q = strchr(h->path, '?');
    if (q) *q = 0;
    /* header lines */
    int te_other = 0;
    for (const char *l = eol + 2; l < end + 2;) {
        const char *le = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        size_t n = (size_t)(le - l);
        const char *colon = memchr(l, ':', n);
        if (!colon || colon == l) return 400;             /* no name, or a folded line */
        for (const char *c = l; c < colon; c++)
            if (!is_tchar((unsigned char)*c)) return 400;
        const char *v = colon + 1, *ve = le;
        for (const char *c = v; c < ve; c++)
            if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) return 400;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t nn = (size_t)(colon - l), vn = (size_t)(ve - v);
        if (name_is(l, nn, "Content-Length")) {
            long long x = parse_length(v, vn);
            if (x == -2 || (h->content_length >= 0 && h->content_length != x)) return 400;
            h->content_length = x;
        } else if (name_is(l, nn, "Transfer-Encoding")) {
            if (!(vn == 8 && !strncasecmp(v, "identity", 8))) te_other = 1;
        } else if (name_is(l, nn, "Expect")) {
            if (vn == 12 && !strncasecmp(v, "100-continue", 12)) h->expect_continue = 1;
        }
        l = le + 2;
    }
    if (te_other) return 411;                             /* chunked uploads: not supported */
    if (h->content_length > SRV_MAX_BODY) return 413;
    if (h->content_length < 0 && (!strcmp(h->method, "POST") || !strcmp(h->method, "PUT"))) return 411;
    return 0;
}

int http_read_head(int fd, char *buf, size_t *len, struct http_head *h, long long deadline)
{
    *len = 0;
    for (;;) {
        ssize_t k = recv_deadline(fd, buf + *len, SRV_MAX_HEADER - *len, deadline);
        if (k == -2) return *len ? 408 : -1;
        if (k <= 0) return -1;
        *len += (size_t)k;
        int st = http_parse_head(buf, *len, h);
        if (st != HTTP_INCOMPLETE) return st;
    }
}

int http_read_body(int fd, const struct http_head *h, const char *pre, size_t have, char *body,
                   size_t want, long long deadline)
{
    if (have > want) have = want;                            /* pipelined bytes: ignored */
    memcpy(body, pre, have);
    if (h->expect_continue && have < want)
        http_write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (have < want) {
        ssize_t k = recv_deadline(fd, body + have, want - have, deadline);
        if (k == -2) return 408;
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    body[want] = 0;
    return 0;
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
    char h[320];
    int hl = snprintf(h, sizeof h,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                      status, http_reason(status), ct, n, status == 503 ? "Retry-After: 1\r\n" : "");
    if (http_write_all(fd, h, (size_t)hl)) return -1;
    return n ? http_write_all(fd, body, n) : 0;
}

char *http_error_json(int status, const char *type, const char *msg)
{
    if (!type) type = status == 404 ? "NotFoundError" : status >= 500 ? "server_error" : "invalid_request_error";
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNumberToObject(e, "code", status);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int http_respond_error_typed(int fd, int status, const char *type, const char *msg)
{
    char *s = http_error_json(status, type, msg);
    int rc = s ? http_respond(fd, status, "application/json", s, strlen(s)) : -1;
    free(s);
    return rc;
}

int http_respond_error(int fd, int status, const char *msg)
{
    return http_respond_error_typed(fd, status, NULL, msg);
}

int http_peer_state(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return PEER_OK;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return PEER_GONE;
    if (p.revents & POLLRDHUP) return PEER_EOF;
    if (p.revents & POLLIN) {               /* readable after a full request: EOF or junk */
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0) return PEER_EOF;
        if (k < 0 && errno != EAGAIN && errno != EINTR) return PEER_GONE;
    }
    return PEER_OK;
}

void http_close_gracefully(int fd, int linger_ms, size_t max_bytes)
{
    shutdown(fd, SHUT_WR);
    long long deadline = http_now_ms() + linger_ms;
    char junk[16384];
    size_t got = 0;
    while (got < max_bytes) {
        ssize_t k = recv_deadline(fd, junk, sizeof junk, deadline);
        if (k <= 0) break;                   /* EOF, error or the linger time is over */
        got += (size_t)k;
    }
    close(fd);
}
