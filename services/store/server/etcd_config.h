/* services/store/server/etcd_config.h — etcd's flag values, checked as etcd
 * checks them: URL lists (--listen-client-urls and friends), the single-member
 * --initial-cluster, and --auto-compaction-mode/--auto-compaction-retention.
 *
 * Errors name the flag and repeat etcd's wording where etcd has one, e.g.
 *   flag --listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://x
 * Pure string work: no sockets, no files. */
#ifndef KEEL_SERVICES_STORE_SERVER_ETCD_CONFIG_H
#define KEEL_SERVICES_STORE_SERVER_ETCD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

typedef enum {
  ETCD_URL_HTTP,
  ETCD_URL_HTTPS,
  ETCD_URL_UNIX,  /* unix://PATH: everything after "unix://" is the socket path */
  ETCD_URL_UNIXS, /* the same with TLS */
} etcd_url_scheme;

typedef struct etcd_url {
  etcd_url_scheme scheme;
  char host[256]; /* "127.0.0.1", "[::1]", "localhost"; the socket path for unix(s) */
  int port;       /* 0..65535 (0: any free port); -1 for unix(s) */
} etcd_url;

/* Parses one URL as etcd's types.NewURLs does: scheme http, https, unix or
 * unixs; http(s) need host:port and no path. unix(s) take any non-empty path
 * (etcd's own "unix://localhost:2379" is a socket file named localhost:2379,
 * and clients' "unix:///tmp/x" is /tmp/x). flag names the flag in errors. */
int etcd_url_parse(const char *flag, const char *text, etcd_url *out, keel_error *err);
/* Each comma-separated item of a string list flag (already split by flags). */
int etcd_url_parse_list(const char *flag, const char *const *items, int n, etcd_url **out,
                        keel_error *err);

bool etcd_url_is_tls(const etcd_url *u);
/* The gRPC runtime's listen address: "127.0.0.1:2379", "[::1]:0", "unix:/tmp/s". */
void etcd_url_listen_addr(const etcd_url *u, char *buf, size_t n);
/* The URL as text with `port` in place of the parsed one (the bound port when
 * the flag said 0); port < 0 keeps the parsed port. */
void etcd_url_format(const etcd_url *u, int port, char *buf, size_t n);

/* --initial-cluster "NAME=URL[,NAME=URL...]" for a single member: every entry
 * must name `name` (another name is an error: keel-store runs one member), and
 * its URLs must be exactly the --initial-advertise-peer-urls (as etcd checks).
 * items are the comma-separated entries. */
int etcd_initial_cluster_check(const char *name, const char *const *items, int n,
                               const char *const *advertise_peer_urls, int npeer,
                               keel_error *err);

typedef enum { ETCD_COMPACTION_PERIODIC, ETCD_COMPACTION_REVISION } etcd_compaction_mode;

typedef struct etcd_auto_compaction {
  etcd_compaction_mode mode;
  int64_t retention_ms;   /* periodic: how much history to keep; 0 = off */
  int64_t retention_revs; /* revision: how many revisions to keep; 0 = off */
} etcd_auto_compaction;

/* --auto-compaction-mode periodic|revision and --auto-compaction-retention:
 * periodic takes a duration ("1h", "30m", "1h30m") where a bare integer means
 * hours (etcd 3.4); revision takes a non-negative integer. "0" turns it off. */
int etcd_auto_compaction_parse(const char *mode, const char *retention, etcd_auto_compaction *out,
                               keel_error *err);

#endif
