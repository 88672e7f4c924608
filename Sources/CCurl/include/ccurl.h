#ifndef CCURL_H
#define CCURL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result of ccurl_get. Owned by the caller: release with ccurl_response_free
/// (safe on a zeroed struct and idempotent).
typedef struct ccurl_response {
    long status;            /* HTTP status code (0 if none was received) */
    unsigned char *body;    /* malloc'd, NUL-terminated (not counted in body_len); may be NULL when empty */
    size_t body_len;
    char *cache_control;    /* malloc'd value of the last Cache-Control header, trimmed; NULL if absent */
    char *retry_after;      /* malloc'd value of the last Retry-After header, trimmed; NULL if absent */
} ccurl_response;

/// Largest body ccurl_get accepts; longer responses fail with CCURL_ERR_TOO_LARGE.
#define CCURL_MAX_BODY 1048576

enum {
    CCURL_OK = 0,
    CCURL_ERR_ARGS = 1,      /* NULL url/out, non-http(s) URL */
    CCURL_ERR_INIT = 2,      /* curl_global_init / curl_easy_init failed */
    CCURL_ERR_TRANSFER = 3,  /* connect, TLS, timeout, ... (see err) */
    CCURL_ERR_TOO_LARGE = 4, /* body exceeded CCURL_MAX_BODY */
    CCURL_ERR_NOMEM = 5,
};

/// Blocking HTTP(S) GET. Follows no redirects (a 3xx is returned as-is), only http/https,
/// CURLOPT_NOSIGNAL=1 (no SIGALRM; safe in single-threaded workers with their own handlers).
/// timeout_ms bounds the whole transfer (connect timeout is min(timeout_ms, 5000)).
/// On success returns CCURL_OK and fills *out (free with ccurl_response_free).
/// On failure returns a CCURL_ERR_* code, leaves *out zeroed, and writes a NUL-terminated
/// message into err (if err != NULL && errlen > 0).
int ccurl_get(const char *url, long timeout_ms, ccurl_response *out, char *err, size_t errlen);

/// One HTTP(S) request: method (GET, POST, PATCH, DELETE, ...), extra header lines ("Name: value"),
/// an optional body (sent as is; set Content-Type among the headers), and limits. Same rules as
/// ccurl_get otherwise (no redirects, http/https only, NOSIGNAL, TLS verification on).
typedef struct ccurl_request {
    const char *method;
    const char *url;
    const char *const *headers;   /* n_headers NUL-terminated lines; may be NULL when n_headers is 0 */
    size_t n_headers;
    const unsigned char *body;    /* may be NULL when body_len is 0 */
    size_t body_len;
    long timeout_ms;              /* whole transfer; <= 0: 5000 */
    long connect_timeout_ms;      /* <= 0: min(timeout_ms, 5000) */
    size_t max_body;              /* largest response body accepted; 0: CCURL_MAX_BODY */
} ccurl_request;

/// Performs `req`. On success returns CCURL_OK and fills *out (free with ccurl_response_free): any
/// HTTP status is a success here; the caller reads out->status. `retry_after` holds the value of a
/// Retry-After header. On failure returns a CCURL_ERR_* code, leaves *out zeroed, writes err.
int ccurl_perform(const ccurl_request *req, ccurl_response *out, char *err, size_t errlen);

/// Frees body, cache_control and retry_after and zeroes the struct. NULL is allowed.
void ccurl_response_free(ccurl_response *resp);

#ifdef __cplusplus
}
#endif

#endif /* CCURL_H */
