#include "ccurl.h"

#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

typedef struct {
    unsigned char *buf;
    size_t len, cap, max;
    int too_large;
    int nomem;
    char *cache_control;
    char *retry_after;
} ctx_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    ctx_t *c = (ctx_t *)userp;
    size_t n = size * nmemb;
    if (n == 0) return 0;
    if (n > c->max || c->len > c->max - n) {
        c->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (c->len + n + 1 > c->cap) {
        size_t ncap = c->cap ? c->cap : 16384;
        while (ncap < c->len + n + 1) ncap *= 2;
        if (ncap > c->max + 1) ncap = c->max + 1;
        unsigned char *nb = realloc(c->buf, ncap);
        if (nb == NULL) { c->nomem = 1; return 0; }
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = 0;
    return n;
}

/* Copies a header's value (trimmed, at most 4096 bytes) into *slot when the line is `name: value`. */
static int take_header(const char *data, size_t n, const char *name, char **slot) {
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(data, name, nl) != 0) return 1;
    const char *v = data + nl;
    size_t vl = n - nl;
    while (vl > 0 && (*v == ' ' || *v == '\t')) { v++; vl--; }
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (vl > 4096) vl = 4096;
    char *copy = malloc(vl + 1);
    if (copy == NULL) return 0;
    memcpy(copy, v, vl);
    copy[vl] = 0;
    free(*slot);
    *slot = copy;
    return 1;
}

/* Called once per header line (including the status line and the final blank line). */
static size_t on_header(char *data, size_t size, size_t nitems, void *userp) {
    ctx_t *c = (ctx_t *)userp;
    size_t n = size * nitems;
    /* A new response (e.g. after "100 Continue") starts with a status line: forget earlier headers. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        free(c->cache_control);
        free(c->retry_after);
        c->cache_control = NULL;
        c->retry_after = NULL;
        return n;
    }
    if (!take_header(data, n, "cache-control:", &c->cache_control) || !take_header(data, n, "retry-after:", &c->retry_after)) {
        c->nomem = 1;
        return 0;
    }
    return n;
}

static int has_http_scheme(const char *url) {
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int ccurl_get(const char *url, long timeout_ms, ccurl_response *out, char *err, size_t errlen) {
    ccurl_request req;
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.timeout_ms = timeout_ms;
    return ccurl_perform(&req, out, err, errlen);
}

int ccurl_perform(const ccurl_request *req, ccurl_response *out, char *err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = 0;
    if (out == NULL || req == NULL || req->url == NULL || req->method == NULL || (req->n_headers > 0 && req->headers == NULL) ||
        (req->body_len > 0 && req->body == NULL)) {
        set_err(err, errlen, "invalid arguments");
        return CCURL_ERR_ARGS;
    }
    memset(out, 0, sizeof(*out));
    const char *url = req->url;
    if (!has_http_scheme(url)) { set_err(err, errlen, "only http and https URLs are allowed"); return CCURL_ERR_ARGS; }
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 5000;
    long connect_ms = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : (timeout_ms < 5000 ? timeout_ms : 5000L);

    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        set_err(err, errlen, "curl_global_init: %s", curl_easy_strerror(global_rc));
        return CCURL_ERR_INIT;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) { set_err(err, errlen, "curl_easy_init failed"); return CCURL_ERR_INIT; }

    ctx_t c;
    memset(&c, 0, sizeof(c));
    c.max = req->max_body > 0 ? req->max_body : (size_t)CCURL_MAX_BODY;
    char curl_err[CURL_ERROR_SIZE];
    curl_err[0] = 0;

    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *next = curl_slist_append(headers, req->headers[i]);
        if (next == NULL) {
            curl_slist_free_all(headers);
            curl_easy_cleanup(h);
            set_err(err, errlen, "out of memory");
            return CCURL_ERR_NOMEM;
        }
        headers = next;
    }

    curl_easy_setopt(h, CURLOPT_URL, url);
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->body_len > 0 || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PATCH") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (headers != NULL) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c.max);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* any encoding libcurl can decode */
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mediscope-ccurl/1");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);

    int result = CCURL_OK;
    if (c.nomem) {
        set_err(err, errlen, "out of memory");
        result = CCURL_ERR_NOMEM;
    } else if (c.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        set_err(err, errlen, "response body larger than %zu bytes", c.max);
        result = CCURL_ERR_TOO_LARGE;
    } else if (rc != CURLE_OK) {
        set_err(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
        result = CCURL_ERR_TRANSFER;
    }
    if (result != CCURL_OK) {
        free(c.buf);
        free(c.cache_control);
        free(c.retry_after);
        return result;
    }
    out->status = status;
    out->body = c.buf;
    out->body_len = c.len;
    out->cache_control = c.cache_control;
    out->retry_after = c.retry_after;
    return CCURL_OK;
}

void ccurl_response_free(ccurl_response *resp) {
    if (resp == NULL) return;
    free(resp->body);
    free(resp->cache_control);
    free(resp->retry_after);
    memset(resp, 0, sizeof(*resp));
}
