/* Minimal HTTP/1.1 server-side helpers for `moe-ref serve`: read one request with size
 * caps and a deadline, write responses and server-sent events. One request per
 * connection ("Connection: close"); bodies need Content-Length. */
#ifndef MOE_REF_SERVE_HTTP_H
#define MOE_REF_SERVE_HTTP_H
#include <stddef.h>

#define SRV_MAX_HEADER (16 * 1024)
#define SRV_MAX_BODY   (1024 * 1024)

struct http_req {
    char method[16];
    char path[1024];          /* without the query string */
    char *body; size_t body_len;
    char hdr[SRV_MAX_HEADER + 1];
};

/* Reads a request from fd within deadline_ms. Returns 0, or an HTTP status to answer
 * with (400 malformed, 408 too slow, 411 no length, 413 body too large, 431 headers too
 * large), or -1 when the peer went away (nothing to answer). */
int http_read_request(int fd, struct http_req *r, int deadline_ms);
void http_req_free(struct http_req *r);

/* Writes all of buf (MSG_NOSIGNAL; the socket's SO_SNDTIMEO bounds a stalled peer).
 * Returns 0 or -1 (peer gone / timed out). */
int http_write_all(int fd, const char *buf, size_t n);
/* Status line + Content-Type + Content-Length + Connection: close + body. */
int http_respond(int fd, int status, const char *content_type, const char *body, size_t n);
/* {"error": {"message": msg, "type": ..., "code": status}} with the given status. */
int http_respond_error(int fd, int status, const char *msg);
const char *http_reason(int status);
/* 1 when the peer closed or reset the connection (non-blocking check). */
int http_peer_gone(int fd);
#endif
