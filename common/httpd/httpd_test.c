/* common/httpd/httpd_test.c — /metrics and /healthz over real sockets, with a
 * raw HTTP/1.1 client (no curl), plus listen parsing, errors and stop. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/base/cleanup.h"
#include "common/httpd/httpd.h"
#include "common/metrics/metrics.h"

/* ---- a raw client ------------------------------------------------------- */

typedef struct reply {
  int status;
  char *raw;        /* the whole response */
  const char *body; /* into raw */
  size_t body_len;
} reply;

static void reply_free(reply *r) {
  free(r->raw);
  memset(r, 0, sizeof(*r));
}

/* Connected socket to addr:port (AF_INET or AF_INET6), or -1. Reads time out
 * so a broken server fails the test instead of hanging it. */
static int dial(int family, const char *addr, int port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_storage ss = {0};
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, addr, &sa->sin6_addr);
    len = sizeof(*sa);
  } else {
    struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sa->sin_addr);
    len = sizeof(*sa);
  }
  if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends `request` verbatim and reads the reply until the server closes. */
static int exchange(int family, const char *addr, int port, const char *request, reply *r) {
  memset(r, 0, sizeof(*r));
  cleanup_close int fd = dial(family, addr, port);
  if (fd < 0) return -errno;
  size_t want = strlen(request);
  if (write(fd, request, want) != (ssize_t)want) return -EIO;
  size_t cap = 4096, len = 0;
  cleanup_free char *buf = malloc(cap);
  for (;;) {
    if (len + 1024 > cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) return -ENOMEM;
      buf = nb;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0) return -errno;
    if (n == 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  if (sscanf(buf, "HTTP/1.1 %d ", &r->status) != 1) return -EPROTO;
  const char *end = strstr(buf, "\r\n\r\n");
  if (!end) return -EPROTO;
  r->raw = steal_pointer(&buf);
  r->body = end + 4;
  r->body_len = len - (size_t)(r->body - r->raw);
  return 0;
}

static void get(int port, const char *method, const char *path, reply *r) {
  char req[512];
  snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", method,
           path);
  assert_int_equal(exchange(AF_INET, "127.0.0.1", port, req, r), 0);
}

/* The header's value (up to CRLF) in a raw response, or NULL. */
static char *header(const reply *r, const char *name, char *out, size_t size) {
  char key[64];
  snprintf(key, sizeof(key), "\r\n%s: ", name);
  const char *p = strcasestr(r->raw, key);
  if (!p || p > r->body) return NULL;
  p += strlen(key);
  size_t n = strcspn(p, "\r");
  if (n >= size) n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

/* ---- fixtures ----------------------------------------------------------- */

typedef struct fixture {
  metrics_registry *reg;
  httpd *h;
  atomic_bool healthy; /* flipped by the test, read on the server's thread */
} fixture;

static bool health(void *arg) {
  return atomic_load((atomic_bool *)arg);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->reg = metrics_registry_create();
  atomic_init(&f->healthy, true);
  keel_error err = {0};
  httpd_options opts = {.listen = "127.0.0.1:0", .registry = f->reg, .healthy = health,
                        .health_arg = &f->healthy};
  f->h = httpd_start(&opts, &err);
  if (!f->h) {
    fprintf(stderr, "httpd_start: %s\n", err.message);
    metrics_registry_destroy(f->reg);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  httpd_stop(f->h);
  metrics_registry_destroy(f->reg);
  free(f);
  return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_metrics(void **state) {
  fixture *f = *state;
  assert_true(httpd_port(f->h) > 0);
  metric_inc(metric_child(metrics_counter(f->reg, "keel_test_total", "A \"test\".", 1, "k"), "v"));
  reply r;
  get(httpd_port(f->h), "GET", "/metrics", &r);
  assert_int_equal(r.status, 200);
  char ct[128];
  assert_non_null(header(&r, "Content-Type", ct, sizeof(ct)));
  assert_string_equal(ct, "text/plain; version=0.0.4");
  cleanup_free char *want = metrics_render(f->reg, NULL);
  assert_int_equal(r.body_len, strlen(want));
  assert_memory_equal(r.body, want, r.body_len);
  assert_non_null(strstr(r.body, "keel_test_total{k=\"v\"} 1\n"));
  reply_free(&r);
  /* A query string does not change the route. */
  get(httpd_port(f->h), "GET", "/metrics?name[]=x", &r);
  assert_int_equal(r.status, 200);
  reply_free(&r);
}

static void test_large_metrics_body(void **state) {
  fixture *f = *state;
  metric_family *fam = metrics_gauge(f->reg, "keel_big", "Many children.", 1, "id");
  char id[48];
  for (int i = 0; i < 3000; i++) {
    snprintf(id, sizeof(id), "child-%06d-padding-padding", i);
    metric_set(metric_child(fam, id), i);
  }
  cleanup_free char *want = metrics_render(f->reg, NULL);
  assert_true(strlen(want) > 100000);
  reply r;
  get(httpd_port(f->h), "GET", "/metrics", &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, strlen(want));
  assert_memory_equal(r.body, want, r.body_len);
  reply_free(&r);
}

static void test_healthz(void **state) {
  fixture *f = *state;
  reply r;
  get(httpd_port(f->h), "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 2);
  assert_memory_equal(r.body, "ok", 2);
  reply_free(&r);
  atomic_store(&f->healthy, false);
  get(httpd_port(f->h), "GET", "/healthz", &r);
  assert_int_equal(r.status, 503);
  assert_int_equal(r.body_len, strlen("shutting down"));
  assert_memory_equal(r.body, "shutting down", r.body_len);
  reply_free(&r);
  atomic_store(&f->healthy, true);
  get(httpd_port(f->h), "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);
  reply_free(&r);
}

static void test_routes_and_methods(void **state) {
  fixture *f = *state;
  int port = httpd_port(f->h);
  reply r;
  const char *missing[] = {"/", "/metrics/", "/healthzz", "/Metrics", "/debug/pprof"};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(missing); i++) {
    get(port, "GET", missing[i], &r);
    assert_int_equal(r.status, 404);
    reply_free(&r);
  }
  const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  char allow[64];
  for (size_t i = 0; i < KEEL_ARRAY_LEN(methods); i++) {
    get(port, methods[i], "/metrics", &r);
    assert_int_equal(r.status, 405);
    assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    reply_free(&r);
    get(port, methods[i], "/healthz", &r);
    assert_int_equal(r.status, 405);
    reply_free(&r);
  }
  /* A POST with a body is refused before the body is read. */
  const char *post = "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Length: 5\r\n\r\nhello";
  assert_int_equal(exchange(AF_INET, "127.0.0.1", port, post, &r), 0);
  assert_int_equal(r.status, 405);
  reply_free(&r);
  /* HEAD is GET without a body. */
  get(port, "HEAD", "/healthz", &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  reply_free(&r);
}

/* One thread serves everything: a client that sends half a request and stalls
 * must not hold up the others, nor httpd_stop. */
static void test_stalled_client(void **state) {
  fixture *f = *state;
  cleanup_close int stalled = dial(AF_INET, "127.0.0.1", httpd_port(f->h));
  assert_true(stalled >= 0);
  const char *partial = "GET /metrics HTTP/1.1\r\nHost: t\r\n";
  assert_int_equal(write(stalled, partial, strlen(partial)), (ssize_t)strlen(partial));
  reply r;
  get(httpd_port(f->h), "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  httpd_stop(f->h);
  f->h = NULL;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(t1.tv_sec - t0.tv_sec < 2);
}

typedef struct client_ctx {
  int port;
  int ok;
} client_ctx;

static void *client(void *arg) {
  client_ctx *c = arg;
  for (int i = 0; i < 25; i++) {
    reply r;
    const char *req = (i % 2) ? "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                              : "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if (exchange(AF_INET, "127.0.0.1", c->port, req, &r) == 0 && r.status == 200) c->ok++;
    reply_free(&r);
  }
  return NULL;
}

static void test_concurrent_clients(void **state) {
  fixture *f = *state;
  metric *m = metric_child(metrics_counter(f->reg, "keel_hits_total", "", 0));
  pthread_t t[8];
  client_ctx c[8];
  for (int i = 0; i < 8; i++) {
    c[i] = (client_ctx){.port = httpd_port(f->h)};
    assert_int_equal(pthread_create(&t[i], NULL, client, &c[i]), 0);
  }
  for (int i = 0; i < 1000; i++) metric_inc(m);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(c[i].ok, 25);
  }
}

static void test_default_registry_and_ipv6(void **state) {
  (void)state;
  metric_inc(metric_child(metrics_counter(metrics_default(), "keel_default_total", "", 0)));
  keel_error err = {0};
  httpd_options opts = {.listen = "[::1]:0"};
  httpd *h = httpd_start(&opts, &err);
  if (!h) {
    /* No IPv6 loopback in this sandbox: the error must still say why. */
    assert_true(err.code == EADDRNOTAVAIL || err.code == EAFNOSUPPORT);
    metrics_shutdown();
    skip();
  }
  reply r;
  assert_int_equal(exchange(AF_INET6, "::1", httpd_port(h),
                            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r),
                   0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "keel_default_total 1\n"));
  reply_free(&r);
  assert_int_equal(exchange(AF_INET6, "::1", httpd_port(h),
                            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r),
                   0);
  assert_int_equal(r.status, 200); /* no health callback: always healthy */
  reply_free(&r);
  httpd_stop(h);
  metrics_shutdown();
}

static void test_bad_listen(void **state) {
  (void)state;
  keel_error err = {0};
  assert_null(httpd_start(NULL, &err));
  assert_int_equal(err.code, EINVAL);
  const char *bad[] = {"",          "9100",           "127.0.0.1:",      "127.0.0.1:99999",
                       "127.0.0.1:x", "127.0.0.1:-1", "::1:9100",        "[::1]9100",
                       "[::1",      "example.com:80", "999.1.1.1:9100",  "127.0.0.1:123456"};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
    keel_error_clear(&err);
    httpd_options opts = {.listen = bad[i]};
    httpd *h = httpd_start(&opts, &err);
    if (h) fail_msg("listen \"%s\" was accepted", bad[i]);
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.message, "httpd: "));
  }
}

static void test_port_in_use(void **state) {
  fixture *f = *state;
  char listen[64];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", httpd_port(f->h));
  keel_error err = {0};
  httpd_options opts = {.listen = listen};
  assert_null(httpd_start(&opts, &err));
  assert_int_equal(err.code, EADDRINUSE);
  assert_non_null(strstr(err.message, "bind 127.0.0.1:"));
  /* The first server is unharmed. */
  reply r;
  get(httpd_port(f->h), "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);
  reply_free(&r);
}

static void test_localhost_and_restart(void **state) {
  (void)state;
  keel_error err = {0};
  httpd_options opts = {.listen = "localhost:0"};
  httpd *h = httpd_start(&opts, &err);
  assert_non_null(h);
  int port = httpd_port(h);
  httpd_stop(h);
  /* The port is free again at once (SO_REUSEADDR; the socket was closed). */
  char listen[64];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  opts.listen = listen;
  h = httpd_start(&opts, &err);
  if (!h) fail_msg("restart on %s: %s", listen, err.message);
  assert_int_equal(httpd_port(h), port);
  httpd_stop(h);
  httpd_stop(NULL);
  assert_int_equal(httpd_port(NULL), -1);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_metrics),
      T(test_large_metrics_body),
      T(test_healthz),
      T(test_routes_and_methods),
      T(test_stalled_client),
      T(test_concurrent_clients),
      T(test_port_in_use),
      cmocka_unit_test(test_bad_listen),
      cmocka_unit_test(test_localhost_and_restart),
      cmocka_unit_test(test_default_registry_and_ipv6),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
