/* Minimal HTTP/1.1 server-side helpers for `moe-ref serve`: parse a request head (a pure
 * function, also the fuzz target's entry), read the head and the body with a deadline,
 * write responses and server-sent events, close without resetting the peer. One request
 * per connection ("Connection: close"); bodies need Content-Length. */
#ifndef MOE_REF_SERVE_HTTP_H
#define MOE_REF_SERVE_HTTP_H
#include <stddef.h>

#define SRV_MAX_HEADER (16 * 1024)
#define SRV_MAX_BODY   (1024 * 1024)
#define HTTP_INCOMPLETE (-1)

struct http_head {
    char method[16];
    char path[1024];          /* without the query string */
    long long content_length; /* -1: no Content-Length header */
    int expect_continue;
    size_t head_len;          /* request line + headers + the blank line */
};

/* Parses the request head at the start of buf[0..len). Returns 0 (h filled),
 * HTTP_INCOMPLETE when the blank line has not arrived yet (and len < SRV_MAX_HEADER), or
 * the status to answer: 400 malformed (bad request line, header line without a colon or
 * with a folded continuation, control bytes, Content-Length not digits, conflicting
 * Content-Length values), 411 no length on POST/PUT or a Transfer-Encoding other than
 * identity, 413 Content-Length above SRV_MAX_BODY, 431 no blank line within
 * SRV_MAX_HEADER bytes. Reads only buf[0..len); never writes it. */
int http_parse_head(const char *buf, size_t len, struct http_head *h);

/* Reads and parses a head from fd into buf (SRV_MAX_HEADER bytes) before deadline (a
 * CLOCK_MONOTONIC time in ms). *len = bytes read (the head and possibly the first body
 * bytes). Returns 0, a status as above (408 when too slow), or -1 when the peer went away
 * or never sent a byte. */
int http_read_head(int fd, char *buf, size_t *len, struct http_head *h, long long deadline);
/* Fills body[0..want) with the `have` bytes already read (pre) and the rest from fd, and
 * NUL-terminates it (body holds want + 1). Sends "100 Continue" when the client asked for
 * it. Returns 0, 408, or -1 (peer gone). */
int http_read_body(int fd, const struct http_head *h, const char *pre, size_t have, char *body,
                   size_t want, long long deadline);

/* Writes all of buf (MSG_NOSIGNAL; the socket's SO_SNDTIMEO bounds a stalled peer).
 * Returns 0 or -1 (peer gone / timed out). */
int http_write_all(int fd, const char *buf, size_t n);
/* Status line + Content-Type + Content-Length + Connection: close + body. */
int http_respond(int fd, int status, const char *content_type, const char *body, size_t n);
/* The OpenAI/vLLM error shape {"error": {"message", "type", "param": null, "code"}};
 * type NULL picks one from the status. Returns the bytes in *out (caller frees). */
char *http_error_json(int status, const char *type, const char *msg);
int http_respond_error(int fd, int status, const char *msg);
int http_respond_error_typed(int fd, int status, const char *type, const char *msg);
const char *http_reason(int status);

/* State of the peer, checked without blocking while a request is being generated:
 * PEER_OK, PEER_EOF (it shut down its sending side: a half-close or a full close, which
 * TCP cannot tell apart until something is written to it), PEER_GONE (reset or error). */
enum { PEER_OK = 0, PEER_EOF = 1, PEER_GONE = 2 };
int http_peer_state(int fd);

/* Ends a connection without a TCP reset: shuts down the sending side, then reads and
 * discards what the client still sends until it closes, linger_ms pass or max_bytes were
 * read, then closes fd. (Closing a socket with unread input makes the kernel send a reset,
 * which can destroy a response the client has not read yet.) */
void http_close_gracefully(int fd, int linger_ms, size_t max_bytes);
/* Monotonic clock in ms. */
long long http_now_ms(void);
#endif
