/* common/ready/ready_file.h — the "I am serving" file tests wait for.
 *
 * Daemons started with port 0 (--ready-file) report what they bound, one line per
 * listener: `grpc=127.0.0.1:40123` or `grpc=unix:/tmp/x.sock` (what the gRPC
 * runtime bound, port 0 resolved), `client-url=http://127.0.0.1:40123` (the
 * same as an etcd client URL), and `http=127.0.0.1:40124` per metrics
 * listener. Written to a temporary name and renamed: a reader never sees a
 * partial file. */
#ifndef KEEL_COMMON_READY_READY_FILE_H
#define KEEL_COMMON_READY_READY_FILE_H

#include "common/base/error.h"

typedef struct ready_file_lines {
  char *text; /* accumulated lines */
  char grpc_first[256];
  char http_first[256];
} ready_file_lines;

/* addr as given to the listener; port as bound (0 for unix sockets). */
void ready_file_add_grpc(ready_file_lines *r, const char *addr, int port);
void ready_file_add_http(ready_file_lines *r, const char *addr, int port);
/* Any other key=value line. */
void ready_file_add(ready_file_lines *r, const char *key, const char *value);
int ready_file_write(const ready_file_lines *r, const char *path, keel_error *err);
void ready_file_lines_free(ready_file_lines *r);

#endif
