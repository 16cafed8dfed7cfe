/* services/store/server/etcd_config.c — see etcd_config.h. */
#include "services/store/server/etcd_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/flags/flags.h"

static const struct {
  const char *prefix;
  etcd_url_scheme scheme;
} schemes[] = {
    {"http://", ETCD_URL_HTTP},
    {"https://", ETCD_URL_HTTPS},
    {"unix://", ETCD_URL_UNIX},
    {"unixs://", ETCD_URL_UNIXS},
};

static bool all_digits(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

int etcd_url_parse(const char *flag, const char *text, etcd_url *out, keel_error *err) {
  memset(out, 0, sizeof(*out));
  const char *rest = NULL;
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
    size_t n = strlen(schemes[i].prefix);
    if (strncasecmp(text, schemes[i].prefix, n) == 0) {
      out->scheme = schemes[i].scheme;
      rest = text + n;
      break;
    }
  }
  if (!rest)
    return keel_error_set(err, EINVAL, "flag --%s: URL scheme must be http, https, unix, or unixs: %s",
                          flag, text);
  if (out->scheme == ETCD_URL_UNIX || out->scheme == ETCD_URL_UNIXS) {
    out->port = -1;
    if (!rest[0] || strlen(rest) >= sizeof(out->host))
      return keel_error_set(err, EINVAL, "flag --%s: URL has no socket path (or one too long): %s",
                            flag, text);
    snprintf(out->host, sizeof(out->host), "%s", rest);
    return 0;
  }
  /* http(s): host:port, nothing else (no path, query, fragment or user info). */
  size_t len = strcspn(rest, "/?#");
  if (rest[len] != '\0')
    return keel_error_set(err, EINVAL, "flag --%s: URL must not contain a path: %s", flag, text);
  const char *colon;
  size_t host_len;
  if (rest[0] == '[') {
    const char *close = strchr(rest, ']');
    colon = close ? close + 1 : NULL;
    if (!colon || *colon != ':') colon = NULL;
    host_len = close ? (size_t)(close + 1 - rest) : 0;
  } else {
    colon = strrchr(rest, ':');
    host_len = colon ? (size_t)(colon - rest) : 0;
    if (colon && memchr(rest, ':', host_len)) colon = NULL; /* a bare IPv6 address */
  }
  if (!colon || memchr(rest, '@', len) || host_len >= sizeof(out->host) ||
      !all_digits(colon + 1, strlen(colon + 1)) || strlen(colon + 1) > 5 || atoi(colon + 1) > 65535)
    return keel_error_set(err, EINVAL, "flag --%s: URL address does not have the form \"host:port\": %s",
                          flag, text);
  memcpy(out->host, rest, host_len);
  out->host[host_len] = '\0';
  out->port = atoi(colon + 1);
  return 0;
}

int etcd_url_parse_list(const char *flag, const char *const *items, int n, etcd_url **out,
                        keel_error *err) {
  *out = NULL;
  if (n <= 0) return keel_error_set(err, EINVAL, "flag --%s: at least one URL is required", flag);
  etcd_url *urls = calloc((size_t)n, sizeof(*urls));
  if (!urls) return keel_error_set(err, ENOMEM, "flag --%s: out of memory", flag);
  for (int i = 0; i < n; i++) {
    if (etcd_url_parse(flag, items[i], &urls[i], err) < 0) {
      free(urls);
      return -EINVAL;
    }
  }
  *out = urls;
  return 0;
}

bool etcd_url_is_tls(const etcd_url *u) {
  return u->scheme == ETCD_URL_HTTPS || u->scheme == ETCD_URL_UNIXS;
}

void etcd_url_listen_addr(const etcd_url *u, char *buf, size_t n) {
  if (u->port < 0) snprintf(buf, n, "unix:%s", u->host);
  else snprintf(buf, n, "%s:%d", u->host[0] ? u->host : "0.0.0.0", u->port);
}

void etcd_url_format(const etcd_url *u, int port, char *buf, size_t n) {
  static const char *const names[] = {"http", "https", "unix", "unixs"};
  if (u->port < 0) snprintf(buf, n, "%s://%s", names[u->scheme], u->host);
  else snprintf(buf, n, "%s://%s:%d", names[u->scheme], u->host, port >= 0 ? port : u->port);
}

static bool in_list(const char *s, const char *const *list, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0) return true;
  return false;
}

int etcd_initial_cluster_check(const char *name, const char *const *items, int n,
                               const char *const *advertise_peer_urls, int npeer,
                               keel_error *err) {
  if (n <= 0)
    return keel_error_set(err, EINVAL,
                          "flag --initial-cluster: couldn't find local name \"%s\" in the initial "
                          "cluster configuration",
                          name);
  const char **urls = calloc((size_t)n, sizeof(*urls));
  if (!urls) return keel_error_set(err, ENOMEM, "flag --initial-cluster: out of memory");
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    const char *eq = strchr(items[i], '=');
    if (!eq || eq == items[i] || !eq[1]) {
      rc = keel_error_set(err, EINVAL, "flag --initial-cluster: \"%s\" is not NAME=URL", items[i]);
      break;
    }
    size_t nlen = (size_t)(eq - items[i]);
    if (nlen != strlen(name) || strncmp(items[i], name, nlen) != 0) {
      rc = keel_error_set(err, EINVAL,
                          "flag --initial-cluster: keel-store runs a single member (--name=%s), "
                          "but \"%s\" names another member \"%.*s\"; clusters of several members "
                          "are not supported (run etcd for that)",
                          name, items[i], (int)nlen, items[i]);
      break;
    }
    etcd_url u;
    if (etcd_url_parse("initial-cluster", eq + 1, &u, err) < 0) {
      rc = -EINVAL;
      break;
    }
    urls[i] = eq + 1;
  }
  /* etcd: the member's URLs in --initial-cluster and its advertised peer URLs
   * must be the same set. */
  for (int i = 0; i < n && rc == 0; i++)
    if (!in_list(urls[i], advertise_peer_urls, npeer))
      rc = keel_error_set(err, EINVAL,
                          "flag --initial-cluster: has %s=%s but it is missing from "
                          "--initial-advertise-peer-urls",
                          name, urls[i]);
  for (int i = 0; i < npeer && rc == 0; i++)
    if (!in_list(advertise_peer_urls[i], urls, n))
      rc = keel_error_set(err, EINVAL,
                          "flag --initial-advertise-peer-urls: has %s but --initial-cluster does "
                          "not list it for %s",
                          advertise_peer_urls[i], name);
  free(urls);
  return rc;
}

int etcd_auto_compaction_parse(const char *mode, const char *retention, etcd_auto_compaction *out,
                               keel_error *err) {
  memset(out, 0, sizeof(*out));
  if (strcmp(mode, "periodic") == 0) out->mode = ETCD_COMPACTION_PERIODIC;
  else if (strcmp(mode, "revision") == 0) out->mode = ETCD_COMPACTION_REVISION;
  else
    return keel_error_set(err, EINVAL,
                          "flag --auto-compaction-mode: unknown auto-compaction-mode \"%s\" (want "
                          "periodic or revision)",
                          mode);
  const char *r = retention && retention[0] ? retention : "0";
  bool integer = all_digits(r, strlen(r));
  if (integer) {
    errno = 0;
    char *end;
    unsigned long long v = strtoull(r, &end, 10);
    if (errno || v > (unsigned long long)INT64_MAX / 3600000ull)
      return keel_error_set(err, ERANGE, "flag --auto-compaction-retention: \"%s\" is out of range", r);
    if (out->mode == ETCD_COMPACTION_REVISION) out->retention_revs = (int64_t)v;
    else out->retention_ms = (int64_t)v * 3600000; /* etcd 3.4: a bare number means hours */
    return 0;
  }
  int64_t ms = 0;
  if (out->mode == ETCD_COMPACTION_PERIODIC && r[strspn(r, "0123456789.")] != '\0' &&
      flags_parse_duration_ms(r, &ms) == 0) {
    out->retention_ms = ms;
    return 0;
  }
  return keel_error_set(err, EINVAL,
                        "flag --auto-compaction-retention: invalid auto-compaction-retention \"%s\" "
                        "(%s)",
                        r,
                        out->mode == ETCD_COMPACTION_REVISION
                            ? "revision mode wants a number of revisions"
                            : "periodic mode wants a duration such as 1h or 30m, or whole hours");
}
