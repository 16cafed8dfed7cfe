/* services/apiserver/fuzz/api_fuzz_mutator.c — structure-aware mutations for
 * api_fuzz.c (LLVMFuzzerCustomMutator, used by libFuzzer and by the
 * standalone driver alike).
 *
 * Byte flips rarely keep JSON well-formed or a protobuf object's nested
 * lengths right, so three mutations in four go through JSON, for every path:
 * the object (path 0, decoded with protobuf-c and written as JSON by
 * protojson), the JSON text (path 1) or the request (path 2) becomes a
 * jansson tree; one node changes (a value from a vocabulary of Kubernetes
 * spellings and edge values, another type, a deletion, a duplicated list
 * element, a member spliced in from a seed manifest, a string edited around a
 * selector or name token); then it is written back the same way. On path 0
 * the unchanged object often becomes the stored object, so Update compares
 * the two. The rest, and whatever does not map back, goes to LLVMFuzzerMutate
 * so malformed encodings keep coming. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "services/apiserver/fuzz/api_fuzz.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max) __attribute__((weak));
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed);

/* splitmix64: libFuzzer hands over a fresh 32-bit seed per mutation. */
typedef struct rng {
  uint64_t state;
} rng;

static uint64_t rnext(rng *r) {
  uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static size_t rbelow(rng *r, size_t n) { return n ? (size_t)(rnext(r) % n) : 0; }

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- vocabulary */

// clang-format off

static const char *const k_strings[] = {
    "", "a", "A", "-a", "a-", "a.b", "a/b", "a_b", "a..b", "app", "nginx", "web-0", "Foo_bar", " ",
    "Always", "Never", "IfNotPresent", "OnFailure", "ClusterFirst", "Default", "File", "TCP", "UDP",
    "SCTP", "HTTP", "HTTPS", "NodePort", "ClusterIP", "LoadBalancer", "ExternalName", "None", "ClientIP",
    "Cluster", "Local", "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Equal", "NoSchedule",
    "PreferNoSchedule", "NoExecute", "RollingUpdate", "Recreate", "True", "False", "Unknown", "Running",
    "Pending", "Terminating", "Active", "Ready", "InternalIP", "Hostname", "25%", "0%", "100%", "101%",
    "-1", "0", "1", "500m", "1Gi", "128Mi", "1e3", "0.5", "-1Ki", "1.5.5", "10.96.0.1", "10.244.1.0/24",
    "fd00::1", "256.1.1.1", "0.0.0.0", "2024-05-01T10:00:00Z", "1969-12-31T23:59:59Z", "v1", "apps/v1",
    "Pod", "kubernetes.io/hostname", "example.com/a_b", "-example.com/a", "status", "metadata.name",
    "spec.nodeName", "app=nginx", "a in (b,c)", "!a", "a,b", "a>1", "x\\,y", "/", "/dev/termination-log",
    "nginx:1.25", "nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
    "\xc3\xa9", "a\tb",
};

static const long long k_ints[] = {0,     1,     -1,    2,          3,           10,         80,
                                   443,   6379,  30000, 32767,      32768,       65535,      65536,
                                   86400, -3600, 1000,  2147483647, -2147483647 - 1, 2147483648LL,
                                   9223372036854775807LL, -9223372036854775807LL - 1};

/* Tokens spliced into strings: selector operators, name separators. */
static const char *const k_tokens[] = {",", "=", "==", "!=", "!", " in (", " notin (", ")", "(", ">", "<",
                                       "\\", "\\,", ".", "-", "/", "_", " ", "%", ":", "@", "\xff"};

// clang-format on

static json_t *random_string(rng *r) {
  switch (rbelow(r, 8)) {
    case 0: { /* at and around the name length limits */
      static const size_t lens[] = {63, 64, 253, 254};
      size_t n = lens[rbelow(r, NELEM(lens))];
      char buf[256];
      memset(buf, rbelow(r, 2) ? 'a' : '1', n);
      buf[n] = '\0';
      return json_string(buf);
    }
    default:
      return json_string(k_strings[rbelow(r, NELEM(k_strings))]);
  }
}

static json_t *random_value(rng *r) {
  switch (rbelow(r, 7)) {
    case 0:
      return json_null();
    case 1:
      return json_boolean(rbelow(r, 2));
    case 2:
      return json_integer(k_ints[rbelow(r, NELEM(k_ints))]);
    case 3:
      return json_object();
    case 4:
      return json_array();
    default:
      return random_string(r);
  }
}

/* A string edited around a token (inserted, or replacing a piece). */
static json_t *edit_string(rng *r, const char *s) {
  size_t n = strlen(s), at = rbelow(r, n + 1), cut = rbelow(r, 3) == 0 ? rbelow(r, n - at + 1) : 0;
  const char *t = k_tokens[rbelow(r, NELEM(k_tokens))];
  if (rbelow(r, 4) == 0) t = k_strings[rbelow(r, NELEM(k_strings))];
  size_t nt = strlen(t);
  char *out = malloc(n + nt + 1);
  if (!out) return NULL;
  memcpy(out, s, at);
  memcpy(out + at, t, nt);
  memcpy(out + at + nt, s + at + cut, n - at - cut);
  out[n + nt - cut] = '\0';
  json_t *v = json_stringn_nocheck(out, n + nt - cut);
  free(out);
  return v;
}

/* ---------------------------------------------------------------- the tree */

typedef struct slot {
  json_t *parent; /* object or array */
  const char *key;
  size_t index;
  json_t *value;
} slot;

#define MAX_SLOTS 2048

static void collect(json_t *parent, slot *slots, size_t *n) {
  if (*n >= MAX_SLOTS) return;
  if (json_is_object(parent)) {
    const char *key;
    json_t *v;
    json_object_foreach(parent, key, v) {
      if (*n >= MAX_SLOTS) return;
      slots[(*n)++] = (slot){.parent = parent, .key = key, .value = v};
      collect(v, slots, n);
    }
  } else if (json_is_array(parent)) {
    for (size_t i = 0; i < json_array_size(parent) && *n < MAX_SLOTS; i++) {
      json_t *v = json_array_get(parent, i);
      slots[(*n)++] = (slot){.parent = parent, .index = i, .value = v};
      collect(v, slots, n);
    }
  }
}

static void put(const slot *s, json_t *v) {
  if (!v) return;
  if (s->key)
    json_object_set_new(s->parent, s->key, v);
  else
    json_array_set_new(s->parent, s->index, v);
}

/* A random member of a seed manifest's JSON, for splicing (borrowed). */
static json_t *g_donors[64];
static size_t g_ndonors;

static void load_donors(void) {
  if (g_ndonors) return;
  size_t nk;
  const api_kind *kinds = api_kinds(&nk);
  for (size_t i = 0; i < nk; i++) {
    size_t n;
    ProtobufCMessage *const *objs = api_fuzz_objects(&kinds[i], &n);
    for (size_t j = 0; j < n && g_ndonors < NELEM(g_donors); j++) {
      keel_error err = {0};
      json_t *v = protojson_to_json(api_fuzz_protojson(), objs[j], &err);
      if (v) g_donors[g_ndonors++] = v;
    }
  }
}

static bool splice_member(rng *r, json_t *into) {
  load_donors();
  if (!g_ndonors) return false;
  slot *slots = malloc(MAX_SLOTS * sizeof *slots);
  if (!slots) return false;
  size_t n = 0;
  collect(g_donors[rbelow(r, g_ndonors)], slots, &n);
  bool done = false;
  for (int tries = 0; tries < 8 && n && !done; tries++) {
    const slot *s = &slots[rbelow(r, n)];
    if (json_is_object(into) && s->key) {
      json_object_set_new(into, s->key, json_deep_copy(s->value));
      done = true;
    } else if (json_is_array(into) && !s->key &&
               (!json_array_size(into) || json_typeof(s->value) == json_typeof(json_array_get(into, 0)))) {
      json_array_append_new(into, json_deep_copy(s->value));
      done = true;
    }
  }
  free(slots);
  return done;
}

/* Changes one node of root (a JSON object); false when nothing changed. */
static bool mutate_tree(rng *r, json_t *root) {
  slot *slots = malloc(MAX_SLOTS * sizeof *slots);
  if (!slots) return false;
  size_t n = 0;
  collect(root, slots, &n);
  bool done = true;
  if (!n || rbelow(r, 16) == 0) {
    done = splice_member(r, root);
    free(slots);
    return done;
  }
  const slot *s = &slots[rbelow(r, n)];
  switch (rbelow(r, 8)) {
    case 0: /* delete */
      if (s->key)
        json_object_del(s->parent, s->key);
      else
        json_array_remove(s->parent, s->index);
      break;
    case 1: /* another type */
      put(s, random_value(r));
      break;
    case 2: /* a container gets a member from a seed, or a duplicate element */
      if (json_is_array(s->value) && json_array_size(s->value) && rbelow(r, 2))
        json_array_append_new(s->value,
                              json_deep_copy(json_array_get(s->value, rbelow(r, json_array_size(s->value)))));
      else if (json_is_object(s->value) || json_is_array(s->value))
        done = splice_member(r, s->value);
      else
        put(s, random_value(r));
      break;
    default: /* a value of the same type */
      switch (json_typeof(s->value)) {
        case JSON_STRING:
          put(s, rbelow(r, 2) ? random_string(r) : edit_string(r, json_string_value(s->value)));
          break;
        case JSON_INTEGER: {
          long long v = json_integer_value(s->value);
          switch (rbelow(r, 3)) {
            case 0:
              v = (long long)((unsigned long long)v + 1);
              break;
            case 1:
              v = (long long)((unsigned long long)v - 1);
              break;
            default:
              v = k_ints[rbelow(r, NELEM(k_ints))];
              break;
          }
          put(s, json_integer(v));
          break;
        }
        case JSON_TRUE:
        case JSON_FALSE:
          put(s, json_boolean(!json_is_true(s->value)));
          break;
        default:
          done = splice_member(r, s->value) || (put(s, random_value(r)), true);
          break;
      }
  }
  free(slots);
  return done;
}

/* ---------------------------------------------------------------- framing */

static const ProtobufCMessageDescriptor *const request_types[API_FUZZ_NREQ] = {
    &keel__api__v1__get_request__descriptor,   &keel__api__v1__list_request__descriptor,
    &keel__api__v1__watch_request__descriptor, &keel__api__v1__delete_request__descriptor,
    &keel__api__v1__scale__descriptor,
};

/* msg -> JSON -> mutated -> msg (NULL when it does not map back). */
static ProtobufCMessage *mutate_message(rng *r, const ProtobufCMessage *msg) {
  const protojson *pj = api_fuzz_protojson();
  keel_error err = {0};
  json_t *j = protojson_to_json(pj, msg, &err);
  if (!j) return NULL;
  int steps = 1 + (int)rbelow(r, 3);
  for (int i = 0; i < steps; i++) mutate_tree(r, j);
  ProtobufCMessage *out = protojson_from_json(pj, msg->descriptor, j, &err);
  json_decref(j);
  return out;
}

/* Writes head + msg (+ tail) into data if it fits; 0 otherwise. */
static size_t frame(uint8_t *data, size_t max, const uint8_t *head, size_t nhead, const ProtobufCMessage *msg,
                    const uint8_t *tail, size_t ntail, bool length_prefix) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  size_t total = nhead + (length_prefix ? 2 : 0) + n + ntail;
  if (total > max || (length_prefix && n > 0xffff)) return 0;
  uint8_t *tail_copy = ntail ? malloc(ntail) : NULL;
  if (ntail && !tail_copy) return 0;
  if (ntail) memcpy(tail_copy, tail, ntail); /* tail may lie in data */
  memmove(data, head, nhead);
  size_t off = nhead;
  if (length_prefix) {
    data[off++] = (uint8_t)n;
    data[off++] = (uint8_t)(n >> 8);
  }
  protobuf_c_message_pack(msg, data + off);
  off += n;
  if (ntail) memcpy(data + off, tail_copy, ntail);
  free(tail_copy);
  return total;
}

static size_t mutate_input(rng *r, uint8_t *data, size_t size, size_t max) {
  if (size < 1) return 0;
  size_t nk;
  const api_kind *kinds = api_kinds(&nk);
  const api_kind *k = &kinds[(data[0] & 0x3f) % nk];
  unsigned path = data[0] >> 6;
  const protojson *pj = api_fuzz_protojson();
  keel_error err = {0};
  size_t out = 0;
  if (path == API_FUZZ_PATH_JSON) {
    ProtobufCMessage *m = protojson_from_string(pj, k->object, (const char *)data + 1, size - 1, &err);
    ProtobufCMessage *m2 = m ? mutate_message(r, m) : NULL;
    char *text = m2 ? protojson_to_string(pj, m2, rbelow(r, 4) == 0 ? PROTOJSON_PRETTY : 0, &err) : NULL;
    if (text && strlen(text) + 1 <= max) {
      memcpy(data + 1, text, strlen(text));
      out = 1 + strlen(text);
    }
    free(text);
    if (m2) protobuf_c_message_free_unpacked(m2, NULL);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
  } else if (path == API_FUZZ_PATH_REQUEST) {
    if (size < 2) return 0;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(request_types[data[1] % API_FUZZ_NREQ], NULL, size - 2, data + 2);
    ProtobufCMessage *m2 = m ? mutate_message(r, m) : NULL;
    uint8_t head[2] = {data[0], data[1]};
    if (m2) out = frame(data, max, head, 2, m2, NULL, 0, false);
    if (m2) protobuf_c_message_free_unpacked(m2, NULL);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
  } else if (size >= 3) {
    size_t want = (size_t)data[1] | (size_t)data[2] << 8, n = size - 3;
    size_t len = want <= n ? want : n;
    ProtobufCMessage *m = protobuf_c_message_unpack(k->object, NULL, len, data + 3);
    ProtobufCMessage *m2 = m ? mutate_message(r, m) : NULL;
    if (m2) {
      uint8_t head[1] = {data[0]};
      switch (rbelow(r, 3)) {
        case 0: /* keep the stored object */
          out = frame(data, max, head, 1, m2, data + 3 + len, n - len, true);
          break;
        case 1: { /* the original becomes the stored object: an Update */
          size_t nold = len;
          uint8_t *old = malloc(nold ? nold : 1);
          if (old) {
            memcpy(old, data + 3, nold);
            out = frame(data, max, head, 1, m2, old, nold, true);
            free(old);
          }
          break;
        }
        default: /* a Create */
          out = frame(data, max, head, 1, m2, NULL, 0, true);
          break;
      }
    }
    if (m2) protobuf_c_message_free_unpacked(m2, NULL);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
  }
  return out;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed) {
  rng r = {seed};
  if (rbelow(&r, 4) != 0) {
    size_t n = mutate_input(&r, data, size, max);
    if (n) return n;
  }
  if (rbelow(&r, 32) == 0 && size) { /* another kind or path, same bytes */
    data[0] = (uint8_t)rnext(&r);
    return size;
  }
  return LLVMFuzzerMutate ? LLVMFuzzerMutate(data, size, max) : size;
}
