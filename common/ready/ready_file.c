/* common/ready/ready_file.c — see ready_file.h. */
#include "common/ready/ready_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "0.0.0.0:0" + 4711 -> "0.0.0.0:4711"; "unix:/x" stays. */
static void resolve(char *out, size_t n, const char *addr, int port) {
  if (strncmp(addr, "unix:", 5) == 0 || port <= 0) {
    snprintf(out, n, "%s", addr);
    return;
  }
  const char *colon = strrchr(addr, ':');
  int host_len = colon ? (int)(colon - addr) : (int)strlen(addr);
  snprintf(out, n, "%.*s:%d", host_len, addr, port);
}

void ready_file_add(ready_file_lines *r, const char *key, const char *value) {
  size_t old = r->text ? strlen(r->text) : 0;
  size_t add = strlen(key) + strlen(value) + 2;
  char *t = realloc(r->text, old + add + 1);
  if (!t) return;
  snprintf(t + old, add + 1, "%s=%s\n", key, value);
  r->text = t;
}

void ready_file_add_grpc(ready_file_lines *r, const char *addr, int port) {
  char buf[256];
  resolve(buf, sizeof(buf), addr, port);
  if (!r->grpc_first[0]) snprintf(r->grpc_first, sizeof(r->grpc_first), "%s", buf);
  ready_file_add(r, "grpc", buf);
}

void ready_file_add_http(ready_file_lines *r, const char *addr, int port) {
  char buf[256];
  resolve(buf, sizeof(buf), addr, port);
  if (!r->http_first[0]) snprintf(r->http_first, sizeof(r->http_first), "%s", buf);
  ready_file_add(r, "http", buf);
}

int ready_file_write(const ready_file_lines *r, const char *path, keel_error *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
    return keel_error_set(err, ENAMETOOLONG, "ready file %s: path too long", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return keel_error_set_errno(err, errno, "ready file %s", tmp);
  fputs(r->text ? r->text : "", f);
  if (fclose(f) != 0) return keel_error_set_errno(err, errno, "ready file %s", tmp);
  if (rename(tmp, path) != 0) return keel_error_set_errno(err, errno, "ready file %s", path);
  return 0;
}

void ready_file_lines_free(ready_file_lines *r) {
  free(r->text);
  r->text = NULL;
}
