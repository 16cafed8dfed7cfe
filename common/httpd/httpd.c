/* common/httpd/httpd.c — see httpd.h.
 *
 * Threading: by default one libmicrohttpd thread polling with epoll
 * (MHD_USE_EPOLL_INTERNAL_THREAD), not a thread per connection. (A daemon
 * whose handler blocks — keel-apiserver's REST gateway — asks for a thread per
 * connection instead; the connection limit bounds the threads.) Every answer
 * here is computed in microseconds from memory (a registry render, a health
 * flag), so one thread keeps up with any scraper, and a flood of idle or slow
 * connections costs file descriptors and a little memory instead of threads
 * and stacks. The limits below bound even that: at most HTTPD_MAX_CONNECTIONS
 * at once, HTTPD_MAX_PER_IP from one address, each dropped after
 * HTTPD_IDLE_TIMEOUT_S without progress, with a fixed per-connection memory
 * pool that also caps request headers.
 *
 * The listen socket is ours, not MHD's: binding it here gives errors that name
 * the address and errno ("bind 127.0.0.1:9100: Address already in use"), which
 * MHD_start_daemon's bare NULL cannot, and getsockname gives the port for ":0".
 * MHD gets a duplicate of it, so which side closes what is never in doubt.
 *
 * Stopping: MHD_quiesce_daemon stops accepting (and hands the socket back to
 * us), then we wait, bounded, for requests whose handler already ran to finish
 * sending, counted between the access handler's first call and MHD's
 * request-completed callback. Idle keep-alive connections do not count, so a
 * scraper that keeps its connection open does not delay shutdown. */
#define _GNU_SOURCE
#include "common/httpd/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base/cleanup.h"

#define HTTPD_MAX_CONNECTIONS 128u
#define HTTPD_MAX_PER_IP 32u
#define HTTPD_IDLE_TIMEOUT_S 10u
#define HTTPD_CONN_MEMORY (32u * 1024u)
#define HTTPD_BACKLOG 64
#define HTTPD_STOP_WAIT_MS 2000

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4"

struct httpd {
  struct MHD_Daemon *daemon;
  int listen_fd;
  int port;
  metrics_registry *registry;
  httpd_health_fn healthy;
  void *health_arg;
  httpd_handler_fn handler;
  httpd_completed_fn completed;
  void *handler_arg;
  bool thread_per_connection;
  char *tls_cert, *tls_key, *tls_ca; /* PEM contents, kept for MHD's lifetime */
  atomic_int in_flight; /* requests between the handler's first call and completion */
};

/* Per request: counted in in_flight, and the handler's own pointer. */
typedef struct request_state {
  void *handler_cls;
  bool to_handler;
} request_state;

/* ---- responses --------------------------------------------------------- */

/* Queues body (freed by MHD when `owned`, else static) with status. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, const char *body, size_t len,
                               bool owned) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    if (owned) free((void *)body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int status,
                                    const char *text) {
  return respond(conn, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

static enum MHD_Result serve_metrics(httpd *h, struct MHD_Connection *conn) {
  size_t len = 0;
  char *text = metrics_render(h->registry, &len);
  if (!text) return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
  return respond(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, text, len, true);
}

static enum MHD_Result serve_healthz(httpd *h, struct MHD_Connection *conn) {
  bool ok = !h->healthy || h->healthy(h->health_arg);
  return ok ? respond_text(conn, MHD_HTTP_OK, "ok")
            : respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls) {
  (void)version;
  httpd *h = cls;
  request_state *rs = *req_cls;
  if (!rs) {
    rs = calloc(1, sizeof *rs);
    if (!rs) return MHD_NO;
    *req_cls = rs;
    atomic_fetch_add(&h->in_flight, 1);
    bool ours = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0;
    rs->to_handler = !ours && h->handler;
  }
  if (rs->to_handler)
    return h->handler(h->handler_arg, conn, url, method, upload_data, upload_data_size, &rs->handler_cls);
  /* Our routes answer on the first call; MHD discards a body nobody asked for.
   * Swallow it defensively. */
  if (*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  bool is_metrics = strcmp(url, "/metrics") == 0;
  bool is_healthz = strcmp(url, "/healthz") == 0;
  if (!is_metrics && !is_healthz) return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
  /* HEAD is GET without the body (MHD drops it), as HTTP requires of a server
   * that supports GET; anything else on these paths is refused. */
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  return is_metrics ? serve_metrics(h, conn) : serve_healthz(h, conn);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
  (void)conn;
  (void)toe;
  httpd *h = cls;
  request_state *rs = *req_cls;
  if (!rs) return;
  if (rs->to_handler && h->completed) h->completed(h->handler_arg, rs->handler_cls);
  free(rs);
  *req_cls = NULL;
  atomic_fetch_sub(&h->in_flight, 1);
}

/* ---- listening --------------------------------------------------------- */

/* Splits "host:port" or "[v6]:port" into host and port strings. An empty host
 * (":9100") means every IPv4 address, like "0.0.0.0:9100". */
static int split_listen(const char *addr, char *host, size_t host_size, char *port,
                        size_t port_size, keel_error *err) {
  const char *colon;
  const char *host_start = addr, *host_end;
  if (addr[0] == '[') {
    host_start = addr + 1;
    host_end = strchr(host_start, ']');
    if (!host_end || host_end[1] != ':')
      return keel_error_set(err, EINVAL, "httpd: listen \"%s\": expected [ipv6]:port", addr);
    colon = host_end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon)
      return keel_error_set(err, EINVAL, "httpd: listen \"%s\": expected host:port", addr);
    host_end = colon;
    if (memchr(addr, ':', (size_t)(colon - addr)))
      return keel_error_set(err, EINVAL,
                            "httpd: listen \"%s\": an IPv6 address needs brackets, [::1]:port",
                            addr);
  }
  size_t host_len = (size_t)(host_end - host_start);
  const char *p = colon + 1;
  size_t port_len = strlen(p);
  bool digits = port_len > 0 && port_len < port_size;
  for (size_t i = 0; digits && i < port_len; i++) digits = p[i] >= '0' && p[i] <= '9';
  if (!digits || atoi(p) > 65535)
    return keel_error_set(err, EINVAL, "httpd: listen \"%s\": port must be 0..65535", addr);
  if (host_len >= host_size)
    return keel_error_set(err, EINVAL, "httpd: listen \"%s\": host too long", addr);
  /* Numeric addresses only (plus "localhost"): starting a daemon must not
   * wait on DNS, and a name that resolves to several addresses would bind
   * one of them arbitrarily. */
  if (host_len == 0) {
    strcpy(host, "0.0.0.0");
  } else if (host_len == 9 && strncmp(host_start, "localhost", 9) == 0) {
    strcpy(host, "127.0.0.1");
  } else {
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
  }
  memcpy(port, p, port_len + 1);
  return 0;
}

/* Binds and listens on `addr`; returns the socket, non-blocking as MHD's
 * epoll loop needs it, or a negative errno. */
static int open_listener(const char *addr, int *family, keel_error *err) {
  char host[256], port[6];
  int ret = split_listen(addr, host, sizeof(host), port, sizeof(port), err);
  if (ret < 0) return ret;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0)
    return keel_error_set(err, EINVAL, "httpd: listen \"%s\": %s", addr, gai_strerror(gai));
  cleanup_close int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                res->ai_protocol);
  if (fd < 0) {
    ret = keel_error_set_errno(err, errno, "httpd: socket for %s", addr);
    goto out;
  }
  /* Restarting a daemon must not wait out TIME_WAIT of the previous one. */
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
    ret = keel_error_set_errno(err, errno, "httpd: SO_REUSEADDR on %s", addr);
    goto out;
  }
  if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
    ret = keel_error_set_errno(err, errno, "httpd: bind %s", addr);
    goto out;
  }
  if (listen(fd, HTTPD_BACKLOG) < 0) {
    ret = keel_error_set_errno(err, errno, "httpd: listen on %s", addr);
    goto out;
  }
  *family = res->ai_family;
  ret = fd;
  fd = -1;
out:
  freeaddrinfo(res);
  return ret;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- lifecycle --------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(httpd *h, int fd, int family) {
  unsigned int flags = h->thread_per_connection
                           ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC
                           : MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC;
  if (family == AF_INET6) flags |= MHD_USE_IPv6;
  if (h->tls_cert) {
    flags |= MHD_USE_TLS;
    /* MHD_OPTION_HTTPS_MEM_TRUST with NULL would be an error: pass the client
     * CA only when there is one (an empty option array entry ends the list). */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {h->tls_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->tls_ca},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(
        flags, 0, NULL, NULL, handle_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, HTTPD_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        HTTPD_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED,
        request_completed, h, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
  }
  return MHD_start_daemon(
      flags, 0, NULL, NULL, handle_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
      MHD_OPTION_CONNECTION_LIMIT, HTTPD_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      HTTPD_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED,
      request_completed, h, MHD_OPTION_END);
}

/* Whether fd still refers to the socket `original` does. The original stays
 * open, so its inode cannot have been reused by whatever else now holds the
 * number fd had. */
static bool same_socket(int fd, int original) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && fstat(original, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

/* A whole PEM file, NUL-terminated; NULL with err on failure. */
static char *read_pem(const char *path, const char *what, keel_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    keel_error_set_errno(err, errno, "httpd: %s %s", what, path);
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      if (cap > (1u << 20)) break; /* no PEM file is this big */
      char *grown = realloc(buf, cap);
      if (!grown) break;
      buf = grown;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
  }
  int bad = ferror(f) || !buf || len == 0;
  fclose(f);
  if (bad) {
    free(buf);
    keel_error_set(err, EINVAL, "httpd: %s %s: empty or unreadable", what, path);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

char *httpd_client_cert_pem(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (!ci || !ci->tls_session) return NULL;
  gnutls_session_t session = (gnutls_session_t)ci->tls_session;
  unsigned status = 0;
  /* MHD asks for a certificate but leaves checking it to us. */
  if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status != 0) return NULL;
  unsigned n = 0;
  const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
  if (!chain || n == 0) return NULL;
  gnutls_datum_t pem = {0};
  if (gnutls_pem_base64_encode2("CERTIFICATE", &chain[0], &pem) != GNUTLS_E_SUCCESS) return NULL;
  char *out = malloc(pem.size + 1);
  if (out) {
    memcpy(out, pem.data, pem.size);
    out[pem.size] = '\0';
  }
  gnutls_free(pem.data);
  return out;
}

static void free_tls(httpd *h) {
  free(h->tls_cert);
  free(h->tls_key);
  free(h->tls_ca);
  h->tls_cert = h->tls_key = h->tls_ca = NULL;
}

httpd *httpd_start(const httpd_options *opts, keel_error *err) {
  if (!opts || !opts->listen || !opts->listen[0]) {
    keel_error_set(err, EINVAL, "httpd: no listen address");
    return NULL;
  }
  cleanup_free httpd *h = calloc(1, sizeof(*h));
  if (!h) {
    keel_error_set(err, ENOMEM, "httpd: out of memory");
    return NULL;
  }
  h->registry = opts->registry ? opts->registry : metrics_default();
  h->healthy = opts->healthy;
  h->health_arg = opts->health_arg;
  h->handler = opts->handler;
  h->completed = opts->completed;
  h->handler_arg = opts->handler_arg;
  h->thread_per_connection = opts->thread_per_connection;
  if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL) || (opts->tls_client_ca_file && !opts->tls_cert_file)) {
    keel_error_set(err, EINVAL, "httpd: TLS needs a certificate and a key (and a client CA only with them)");
    return NULL;
  }
  if (opts->tls_cert_file) {
    h->tls_cert = read_pem(opts->tls_cert_file, "certificate", err);
    h->tls_key = h->tls_cert ? read_pem(opts->tls_key_file, "key", err) : NULL;
    h->tls_ca = h->tls_key && opts->tls_client_ca_file ? read_pem(opts->tls_client_ca_file, "client CA", err) : NULL;
    if (!h->tls_cert || !h->tls_key || (opts->tls_client_ca_file && !h->tls_ca)) {
      free_tls(h);
      return NULL;
    }
  }
  int family = AF_INET;
  cleanup_close int fd = open_listener(opts->listen, &family, err);
  if (fd < 0) {
    free_tls(h);
    return NULL;
  }
  h->port = bound_port(fd);
  if (h->port < 0) {
    keel_error_set_errno(err, -h->port, "httpd: getsockname on %s", opts->listen);
    free_tls(h);
    return NULL;
  }
  /* MHD closes a listen socket it was given on some start failures and not on
   * others, so it gets a duplicate and we keep the original (see
   * start_daemon). */
  cleanup_close int mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (mhd_fd < 0) {
    keel_error_set_errno(err, errno, "httpd: dup listen socket of %s", opts->listen);
    free_tls(h);
    return NULL;
  }
  h->daemon = start_daemon(h, mhd_fd, family);
  if (!h->daemon) {
    if (!same_socket(mhd_fd, fd)) mhd_fd = -1; /* MHD closed it; the number is not ours */
    free_tls(h);
    keel_error_set(err, EIO, "httpd: libmicrohttpd failed to start on %s", opts->listen);
    return NULL;
  }
  mhd_fd = -1; /* MHD's now, until httpd_stop quiesces it back */
  h->listen_fd = fd;
  fd = -1;
  return steal_pointer(&h);
}

int httpd_port(const httpd *h) {
  return h ? h->port : -1;
}

void httpd_stop(httpd *h) {
  if (!h) return;
  MHD_socket quiesced = MHD_quiesce_daemon(h->daemon);
  struct timespec tick = {.tv_nsec = 5 * 1000 * 1000};
  for (int waited = 0; atomic_load(&h->in_flight) > 0 && waited < HTTPD_STOP_WAIT_MS; waited += 5)
    nanosleep(&tick, NULL);
  MHD_stop_daemon(h->daemon);
  /* Quiesced, MHD's duplicate is ours to close; otherwise MHD closed it. */
  if (quiesced != MHD_INVALID_SOCKET) close(quiesced);
  close(h->listen_fd);
  free_tls(h);
  free(h);
}
