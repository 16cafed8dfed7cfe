/* common/protojson/protojson_fuzz.c — see protojson_fuzz.h.
 * KEEL_PROTOJSON_FUZZ_SEEDS=DIR writes the built-in seeds into DIR at start
 * (libFuzzer then reads them as corpus). */
#define _GNU_SOURCE
#include "common/protojson/protojson_fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/protojson/protojson.h"
#include "common/protojson/testdata/manifests.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;

#define FUZZ_MAX_INPUT (1 << 20)

static const ProtobufCMessageDescriptor *const types[] = {
    &keel__api__v1__pod__descriptor,       &keel__api__v1__deployment__descriptor,
    &keel__api__v1__service__descriptor,   &keel__api__v1__node__descriptor,
    &keel__api__v1__namespace__descriptor,
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static protojson *g_pj;

static void init(void) {
  if (g_pj) return;
  keel_error err = {0};
  protojson_descriptor_set set = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  g_pj = protojson_create(&set, 1, &err);
  if (!g_pj) {
    fprintf(stderr, "protojson_fuzz: protojson_create: %s\n", err.message);
    abort();
  }
}

static void violation(const char *what, const char *detail, const uint8_t *data, size_t size) {
  fprintf(stderr, "protojson_fuzz: VIOLATION %s: %s\ninput (type %u): %.*s\n", what,
          detail ? detail : "", size ? data[0] % (unsigned)NTYPES : 0u,
          size > 1 ? (int)(size - 1 < 2000 ? size - 1 : 2000) : 0,
          size > 1 ? (const char *)data + 1 : "");
  abort();
}

static const char *const extra_seeds[] = {
    /* kubectl create --dry-run=client -o json */
    "\x00{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\","
    "\"creationTimestamp\":null,"
    "\"labels\":{\"run\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"x\",\"image\":\"busybox\","
    "\"resources\":{}}],\"restartPolicy\":\"Always\",\"dnsPolicy\":\"ClusterFirst\"},\"status\":{}"
    "}",
    "\x01{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"web\","
    "\"creationTimestamp\":null},\"spec\":{\"replicas\":\"2\",\"selector\":{\"matchLabels\":{"
    "\"app\":"
    "\"web\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"fe\"]}]},"
    "\"template\":{\"metadata\":{\"creationTimestamp\":null},\"spec\":{\"containers\":[{\"name\":"
    "\"nginx\",\"image\":\"nginx\",\"resources\":{\"limits\":{\"cpu\":1,\"memory\":0.5}}}]}},"
    "\"strategy\":{}},\"status\":{}}",
    "\x02{\"api_version\":\"v1\",\"spec\":{\"ports\":[{\"port\":53,\"target_port\":\"dns\","
    "\"protocol\":\"UDP\"}],\"cluster_ip\":\"None\"}}",
    "\x03{\"status\":{\"capacity\":{\"cpu\":4},\"conditions\":[{\"type\":\"Ready\","
    "\"lastHeartbeatTime\":\"2024-05-01t12:00:00.123456+02:00\"}]}}",
    "\x04{\"metadata\":{\"name\":\"ns\",\"deletionTimestamp\":\"2024-05-01T10:00:00.000000001Z\","
    "\"deletionGracePeriodSeconds\":\"30\",\"generation\":\"9223372036854775807\"}}",
};

void protojson_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg) {
  static uint8_t buf[FUZZ_MAX_INPUT];
  for (size_t i = 0; i < pj_manifest_count; i++) {
    const pj_manifest *m = &pj_manifests[i];
    size_t t = 0;
    while (t < NTYPES && types[t] != m->desc) t++;
    size_t n = strlen(m->json);
    if (t == NTYPES || n + 1 > sizeof(buf)) continue;
    buf[0] = (uint8_t)t;
    memcpy(buf + 1, m->json, n);
    add(arg, buf, n + 1);
  }
  for (size_t i = 0; i < sizeof(extra_seeds) / sizeof(extra_seeds[0]); i++) {
    const char *s = extra_seeds[i];
    /* The type byte may be \x00: the JSON starts right after it. */
    add(arg, (const uint8_t *)s, 1 + strlen(s + 1));
  }
}

static void write_seed(void *arg, const uint8_t *data, size_t len) {
  size_t *count = ((void **)arg)[1];
  char path[4096];
  snprintf(path, sizeof(path), "%s/seed-%02zu", (const char *)((void **)arg)[0], (*count)++);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, data, len);
  (void)w;
  close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  init();
  const char *dir = getenv("KEEL_PROTOJSON_FUZZ_SEEDS");
  if (dir && *dir) {
    size_t count = 0;
    void *arg[2] = {(void *)dir, &count};
    protojson_fuzz_seeds(write_seed, arg);
  }
  return 0;
}

static json_t *to_json_or_die(ProtobufCMessage *m, const char *what, const uint8_t *data,
                              size_t size) {
  keel_error err = {0};
  json_t *j = protojson_to_json(g_pj, m, &err);
  if (!j) violation(what, err.message, data, size);
  return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT) return 0;
  init();
  const ProtobufCMessageDescriptor *desc = types[data[0] % NTYPES];
  keel_error err = {0};
  ProtobufCMessage *m = protojson_from_string(g_pj, desc, (const char *)data + 1, size - 1, &err);
  if (!m) {
    if (err.code != EINVAL || !err.message[0])
      violation("refusal-without-einval", err.message, data, size);
    return 0;
  }
  if (!protobuf_c_message_check(m)) violation("message-check", NULL, data, size);
  json_t *j1 = to_json_or_die(m, "accepted-but-not-encodable", data, size);
  /* Through text, as the REST gateway does. */
  char *text = json_dumps(j1, JSON_COMPACT);
  if (!text) violation("dump", NULL, data, size);
  ProtobufCMessage *m2 = protojson_from_string(g_pj, desc, text, strlen(text), &err);
  if (!m2) violation("own-output-refused", err.message, data, size);
  json_t *j2 = to_json_or_die(m2, "reparsed-not-encodable", data, size);
  if (!json_equal(j1, j2)) violation("unstable-roundtrip", text, data, size);
  /* Through the wire format. */
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) abort();
  if (protobuf_c_message_pack(m, buf) != n) violation("pack-size", NULL, data, size);
  ProtobufCMessage *u = protobuf_c_message_unpack(desc, NULL, n, buf);
  if (!u) violation("unpack", NULL, data, size);
  json_t *j3 = to_json_or_die(u, "unpacked-not-encodable", data, size);
  if (!json_equal(j1, j3)) violation("wire-roundtrip", text, data, size);
  json_decref(j3);
  protobuf_c_message_free_unpacked(u, NULL);
  free(buf);
  json_decref(j2);
  protobuf_c_message_free_unpacked(m2, NULL);
  free(text);
  json_decref(j1);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
