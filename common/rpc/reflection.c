/* common/rpc/reflection.c — grpc.reflection.v1alpha and v1 ServerReflection
 * (see services.h), answered from a descriptor_index over the server's sets.
 *
 * One bidi handler serves both names: the v1 messages are field-for-field the
 * v1alpha ones, so the v1alpha protobuf-c types decode and encode both. The
 * index is immutable once built, so streams read it without locks; each stream
 * keeps only the set of files it has already sent (call user data; a stream's
 * messages are delivered one at a time).
 *
 * Answers follow grpc-go, the reference clients are written against:
 *  - every response echoes valid_host (the request's host) and original_request;
 *  - a file answer lists the requested file first — grpcurl's client takes the
 *    first file as the answer — then each of its transitive imports not yet
 *    sent on this stream, imports before their importers. The requested file
 *    itself is always included, even when sent before;
 *  - what is not found is an ErrorResponse with NOT_FOUND naming it; the
 *    stream goes on. An empty request gets INVALID_ARGUMENT, also in-band;
 *  - list_services names every service the server registered (health and both
 *    reflection services included), in registration order;
 *  - all_extension_numbers_of_type answers ascending numbers; a known message
 *    without extensions gets an empty list, an unknown type NOT_FOUND.
 * A file answer too large for one message is retried with the requested file
 * alone (clients fetch missing imports by name); if even that does not fit the
 * client gets RESOURCE_EXHAUSTED in-band. Names echoed in error messages are
 * cut to 256 bytes, on a character boundary. */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/rpc/descriptor_index.h"
#include "common/rpc/rpc.h"
#include "common/rpc/services.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

#define V1_SERVICE "grpc.reflection.v1.ServerReflection"

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_response;

struct rpc_reflection {
  descriptor_index *ix;
};

/* Per stream: which files this client already has; one byte per file. */
typedef struct {
  bool over; /* a send failed: the stream is finished or cancelled */
  uint8_t sent[];
} stream_state;

/* ------------------------------------------------------------ answers */

/* A client-supplied name for an error message: at most 256 bytes, cut on a
 * UTF-8 character boundary (messages are proto3 strings, which clients check). */
typedef struct {
  char s[257];
} short_name;

static short_name cut(const char *s) {
  short_name out;
  size_t n = strnlen(s, sizeof(out.s) - 1);
  if (s[n])
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  memcpy(out.s, s, n);
  out.s[n] = '\0';
  return out;
}

/* Sends resp; on a message too large for the stream, tells the client so
 * in-band instead. Returns rpc_call_send's result for resp. */
static int send_response(rpc_call *call, stream_state *st, refl_response *resp);

static int send_error(rpc_call *call, stream_state *st, refl_response *resp, grpc_status_code code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int send_error(rpc_call *call, stream_state *st, refl_response *resp, grpc_status_code code,
                      const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  er.error_code = (int32_t)code;
  er.error_message = msg ? msg : (char *)"";
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = &er;
  int r = send_response(call, st, resp);
  free(msg);
  return r;
}

static int send_response(rpc_call *call, stream_state *st, refl_response *resp) {
  int r = rpc_call_send(call, &resp->base);
  if (r == -EINVAL) {
    /* Too large. The echo of the request may be what is large: drop it. */
    refl_response small = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
    er.error_code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    er.error_message = (char *)"response exceeds the message size limit";
    small.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    small.error_response = &er;
    if (rpc_call_send(call, &small.base) < 0) st->over = true;
  } else if (r < 0) {
    st->over = true;
  }
  return r;
}

/* Answers with `file` and its imports not yet sent on this stream. */
static void send_file(const rpc_reflection *rf, rpc_call *call, stream_state *st,
                      refl_response *resp, int file) {
  size_t nfiles = descriptor_index_file_count(rf->ix);
  int *closure = malloc(nfiles * sizeof(int));
  int *order = malloc(nfiles * sizeof(int));
  ProtobufCBinaryData *blobs = malloc(nfiles * sizeof(*blobs));
  if (!closure || !order || !blobs) {
    free(closure);
    free(order);
    free(blobs);
    send_error(call, st, resp, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t n = 0;
  order[n++] = file;
  int nc = descriptor_index_file_closure(rf->ix, (size_t)file, closure);
  /* closure ends with file itself; on -ENOMEM the client fetches imports by name. */
  for (int i = 0; i < nc - 1; i++)
    if (!st->sent[closure[i]]) order[n++] = closure[i];
  for (size_t i = 0; i < n; i++) {
    const uint8_t *data;
    size_t len;
    descriptor_index_file_bytes(rf->ix, (size_t)order[i], &data, &len);
    blobs[i] = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
  }
  Grpc__Reflection__V1alpha__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  fdr.n_file_descriptor_proto = n;
  fdr.file_descriptor_proto = blobs;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = &fdr;
  int r = rpc_call_send(call, &resp->base);
  if (r == -EINVAL && n > 1) {
    n = fdr.n_file_descriptor_proto = 1;
    r = rpc_call_send(call, &resp->base);
  }
  if (r == 0) {
    for (size_t i = 0; i < n; i++) st->sent[order[i]] = 1;
  } else if (r == -EINVAL) {
    send_error(call, st, resp, GRPC_STATUS_RESOURCE_EXHAUSTED,
               "file %s exceeds the message size limit",
               cut(descriptor_index_file_name(rf->ix, (size_t)file)).s);
  } else {
    st->over = true;
  }
  free(closure);
  free(order);
  free(blobs);
}

static void send_services(rpc_call *call, stream_state *st, refl_response *resp) {
  const rpc_server *srv = rpc_call_server(call);
  size_t n = srv ? rpc_server_service_count(srv) : 0;
  Grpc__Reflection__V1alpha__ServiceResponse *items = calloc(n ? n : 1, sizeof(*items));
  Grpc__Reflection__V1alpha__ServiceResponse **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
  if (!items || !ptrs) {
    free(items);
    free(ptrs);
    send_error(call, st, resp, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = rpc_server_service_name(srv, i);
    if (!name) continue;
    grpc__reflection__v1alpha__service_response__init(&items[k]);
    items[k].name = (char *)name;
    ptrs[k] = &items[k];
    k++;
  }
  Grpc__Reflection__V1alpha__ListServiceResponse lsr =
      GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  lsr.n_service = k;
  lsr.service = ptrs;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  resp->list_services_response = &lsr;
  send_response(call, st, resp);
  free(items);
  free(ptrs);
}

static void send_extension_numbers(const rpc_reflection *rf, rpc_call *call, stream_state *st,
                                   refl_response *resp, const char *type) {
  int32_t *numbers = NULL;
  int n = descriptor_index_extension_numbers(rf->ix, type, &numbers);
  if (n == -ENOENT) {
    send_error(call, st, resp, GRPC_STATUS_NOT_FOUND, "type not found: %s", cut(type).s);
    return;
  }
  if (n < 0) {
    send_error(call, st, resp, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  Grpc__Reflection__V1alpha__ExtensionNumberResponse enr =
      GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
  enr.base_type_name = (char *)type;
  enr.n_extension_number = (size_t)n;
  enr.extension_number = numbers;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
  resp->all_extension_numbers_response = &enr;
  send_response(call, st, resp);
  free(numbers);
}

/* ------------------------------------------------------------ handlers */

static stream_state *stream_of(const rpc_reflection *rf, rpc_call *call) {
  stream_state *st = rpc_call_user_data(call);
  if (st) return st;
  st = calloc(1, sizeof(*st) + descriptor_index_file_count(rf->ix));
  if (st) rpc_call_set_user_data(call, st, free);
  return st;
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static void handle_message(rpc_call *call, const ProtobufCMessage *message, void *ctx) {
  const rpc_reflection *rf = ctx;
  const refl_request *req = (const refl_request *)message;
  stream_state *st = stream_of(rf, call);
  if (!st) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "reflection: out of memory");
    return;
  }
  if (st->over) return;

  refl_response resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  resp.valid_host = (char *)str_or_empty(req->host);
  resp.original_request = (refl_request *)req;
  switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
      const char *name = str_or_empty(req->file_by_filename);
      int file = descriptor_index_find_file(rf->ix, name);
      if (file < 0)
        send_error(call, st, &resp, GRPC_STATUS_NOT_FOUND, "file not found: %s", cut(name).s);
      else
        send_file(rf, call, st, &resp, file);
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
      const char *sym = str_or_empty(req->file_containing_symbol);
      int file = descriptor_index_find_symbol(rf->ix, sym, NULL);
      if (file < 0)
        send_error(call, st, &resp, GRPC_STATUS_NOT_FOUND, "symbol not found: %s", cut(sym).s);
      else
        send_file(rf, call, st, &resp, file);
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
      const Grpc__Reflection__V1alpha__ExtensionRequest *er = req->file_containing_extension;
      const char *type = er ? str_or_empty(er->containing_type) : "";
      int32_t number = er ? er->extension_number : 0;
      int file = descriptor_index_find_extension(rf->ix, type, number);
      if (file < 0)
        send_error(call, st, &resp, GRPC_STATUS_NOT_FOUND, "extension not found: %s, number %d",
                   cut(type).s, (int)number);
      else
        send_file(rf, call, st, &resp, file);
      break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      send_extension_numbers(rf, call, st, &resp, str_or_empty(req->all_extension_numbers_of_type));
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
      send_services(call, st, &resp);
      break;
    default:
      send_error(call, st, &resp, GRPC_STATUS_INVALID_ARGUMENT,
                 "empty request: set one of file_by_filename, file_containing_symbol, "
                 "file_containing_extension, all_extension_numbers_of_type, list_services");
      break;
  }
}

static void handle_half_close(rpc_call *call, void *ctx) {
  (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static const rpc_method_handler reflection_handlers[] = {
    {.name = "ServerReflectionInfo",
     .kind = RPC_BIDI_STREAMING,
     .on_message = handle_message,
     .on_half_close = handle_half_close},
};

/* ------------------------------------------------------------ public */

rpc_reflection *rpc_reflection_create(const rpc_server *srv, keel_error *err) {
  rpc_reflection *rf = calloc(1, sizeof(*rf));
  if (rf) rf->ix = descriptor_index_create();
  if (!rf || !rf->ix) {
    rpc_reflection_destroy(rf);
    keel_error_set(err, ENOMEM, "reflection: out of memory");
    return NULL;
  }
  size_t n = rpc_server_descriptor_set_count(srv);
  for (size_t i = 0; i < n; i++) {
    const unsigned char *set;
    size_t len;
    rpc_server_descriptor_set(srv, i, &set, &len);
    if (descriptor_index_add_set(rf->ix, set, len, err) < 0) {
      keel_error_wrap(err, "reflection: descriptor set %zu of %zu (%zu bytes)", i + 1, n, len);
      rpc_reflection_destroy(rf);
      return NULL;
    }
  }
  return rf;
}

int rpc_reflection_method_kind(const rpc_reflection *r, const char *path) {
  return descriptor_index_method_kind(r->ix, path);
}

int rpc_reflection_register(rpc_reflection *r, rpc_server *srv, keel_error *err) {
  const ProtobufCServiceDescriptor *desc =
      &grpc__reflection__v1alpha__server_reflection__descriptor;
  size_t nh = KEEL_ARRAY_LEN(reflection_handlers);
  if (rpc_server_add_service(srv, desc, reflection_handlers, nh, r, err) < 0)
    return keel_error_wrap(err, "register %s", desc->name);
  if (rpc_server_add_service_as(srv, V1_SERVICE, desc, reflection_handlers, nh, r, err) < 0)
    return keel_error_wrap(err, "register %s", V1_SERVICE);
  return 0;
}

void rpc_reflection_destroy(rpc_reflection *r) {
  if (!r) return;
  descriptor_index_destroy(r->ix);
  free(r);
}
