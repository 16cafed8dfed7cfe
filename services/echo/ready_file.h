/* services/echo/ready_file.h — the "I am serving" file tests wait for.
 *
 * Daemons started with port 0 report what they bound: one line per gRPC listener
 * (`grpc=127.0.0.1:40123`, `grpc=unix:/tmp/x.sock`) and `http=127.0.0.1:40124`.
 * The file is written to a temporary name and renamed, so a reader never sees a
 * partial file. (Moves to common/ when a second daemon needs it.) */
#ifndef KEEL_SERVICES_ECHO_READY_FILE_H
#define KEEL_SERVICES_ECHO_READY_FILE_H

#include "common/base/error.h"

typedef struct ready_file_lines {
  char *text;         /* accumulated lines */
  char grpc_first[256];
  char http[256];
} ready_file_lines;

/* addr as given to the listener; port as bound (0 for unix sockets). */
void ready_file_add_grpc(ready_file_lines *r, const char *addr, int port);
void ready_file_add_http(ready_file_lines *r, const char *addr, int port);
int ready_file_write(const ready_file_lines *r, const char *path, keel_error *err);
void ready_file_lines_free(ready_file_lines *r);

#endif
