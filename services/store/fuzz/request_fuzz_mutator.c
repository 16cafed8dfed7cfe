/* services/store/fuzz/request_fuzz_mutator.c — structure-aware mutations for
 * request_fuzz.c (see request_fuzz.h). Byte-level mutations rarely get past
 * protobuf's nested length prefixes (a field of a range inside a txn inside a
 * RequestOp), so most mutations unpack the input with protobuf-c, change it
 * through the descriptors (any message, field, repeated element or oneof
 * member, reached by walking the message tree) and pack it again; values come
 * from a small vocabulary of the seeded store's keys, revisions and lease ids.
 * Sequences get frames inserted, dropped, swapped, duplicated or retyped.
 * The rest go to the byte-level mutator, so malformed encodings keep coming.
 * Also LLVMFuzzerCustomMutator, when linked with libFuzzer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/store/fuzz/request_fuzz.h"

const ProtobufCMessageDescriptor *const request_fuzz_descriptors[RF_NTYPES] = {
    &etcdserverpb__range_request__descriptor,       &etcdserverpb__put_request__descriptor,
    &etcdserverpb__delete_range_request__descriptor, &etcdserverpb__txn_request__descriptor,
    &etcdserverpb__compaction_request__descriptor,  &etcdserverpb__lease_grant_request__descriptor,
    &etcdserverpb__lease_revoke_request__descriptor, &etcdserverpb__watch_request__descriptor,
};

typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rnext(rng *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return r->s;
}
static size_t rbelow(rng *r, size_t n) { return n ? (size_t)(rnext(r) % n) : 0; }

/* Revisions of the seeded store (1..9, compacted at 5), lease ids (7, 8, 9, 42,
 * 50), enum values in and out of range, limits, extremes. */
static const int64_t k_ints[] = {0,  1,   2,   3,    4,         5,         6,         7,
                                 8,  9,   10,  11,   12,        13,        14,        -1,
                                 -2, 42,  50,  99,   127,       128,       1234,      65535,
                                 INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 9000000000LL, 9000000001LL};

typedef struct bstr {
  const char *p;
  size_t n;
} bstr;
#define BS(s) {s, sizeof(s) - 1}
static const bstr k_bytes[] = {BS("a"),  BS("b"),    BS("c/"),   BS("c/x"), BS("c/y"), BS("c0"),
                               BS("d"),  BS("e"),    BS("f"),    BS("\0"),  BS("zz"),  BS(""),
                               BS("c"),  BS("a\0"),  BS("\xff"), BS("1"),   BS("3"),   BS("6"),
                               BS("44"), BS("c/z"),  BS("b0"),   BS("\x7f"),
                               BS("/registry/"), BS("/registry0"), BS("/registry/pods/"),
                               BS("/registry/pods/default/p50"), BS("/registry/pods/default/p1"),
                               BS("/registry/svc/"), BS("/registry/svc/s25"), BS("/registry/svd")};

static int64_t pick_int(rng *r, int64_t old) {
  switch (rbelow(r, 6)) {
    case 0: return (int64_t)((uint64_t)old + 1);
    case 1: return (int64_t)((uint64_t)old - 1);
    case 2: return (int64_t)rnext(r);
    default: return k_ints[rbelow(r, sizeof(k_ints) / sizeof(k_ints[0]))];
  }
}

static void set_bytes(rng *r, ProtobufCBinaryData *b, const ProtobufCFieldDescriptor *f) {
  const ProtobufCBinaryData *def = f ? f->default_value : NULL;
  uint8_t *old = b->data;
  size_t oldn = b->len;
  uint8_t *nd;
  size_t n;
  if (old && oldn && rbelow(r, 3) == 0) { /* edit the old value */
    n = oldn + 1;
    nd = malloc(n);
    if (!nd) return;
    memcpy(nd, old, oldn);
    switch (rbelow(r, 3)) {
      case 0: nd[oldn] = (uint8_t)rnext(r); break; /* append */
      case 1: n = oldn - 1; break;                  /* drop the last byte */
      default: nd[rbelow(r, oldn)] ^= (uint8_t)(1u << rbelow(r, 8)); n = oldn; break;
    }
  } else {
    const bstr *s = &k_bytes[rbelow(r, sizeof(k_bytes) / sizeof(k_bytes[0]))];
    n = s->n;
    nd = malloc(n ? n : 1);
    if (!nd) return;
    if (n) memcpy(nd, s->p, n);
  }
  if (old && (!def || def->data != old)) free(old);
  b->data = nd;
  b->len = n;
}

static size_t scalar_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return 4; /* int32 family, enum, bool, float */
  }
}

/* Changes the scalar at p; false for types left alone (strings, floats). */
static bool mutate_scalar(rng *r, void *p, const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
      int32_t v;
      memcpy(&v, p, 4);
      v = (int32_t)pick_int(r, v);
      memcpy(p, &v, 4);
      return true;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
      int64_t v;
      memcpy(&v, p, 8);
      v = pick_int(r, v);
      memcpy(p, &v, 8);
      return true;
    }
    case PROTOBUF_C_TYPE_BOOL: {
      protobuf_c_boolean b;
      memcpy(&b, p, sizeof(b));
      b = !b;
      memcpy(p, &b, sizeof(b));
      return true;
    }
    case PROTOBUF_C_TYPE_BYTES:
      set_bytes(r, p, f);
      return true;
    default:
      return false;
  }
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d) {
  ProtobufCMessage *m = malloc(d->sizeof_message);
  if (m) d->message_init(m);
  return m;
}

static ProtobufCMessage *copy_message(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return NULL;
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
  free(buf);
  return c;
}

/* Frees the value of a non-repeated field (the active oneof member). */
static void clear_field(uint8_t *base, const ProtobufCFieldDescriptor *f) {
  void *p = base + f->offset;
  if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
    ProtobufCMessage *sub = *(ProtobufCMessage **)p;
    if (sub && sub != f->default_value) protobuf_c_message_free_unpacked(sub, NULL);
    *(ProtobufCMessage **)p = NULL;
  } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
    ProtobufCBinaryData *b = p;
    const ProtobufCBinaryData *def = f->default_value;
    if (b->data && (!def || def->data != b->data)) free(b->data);
    b->data = NULL;
    b->len = 0;
  } else if (f->type != PROTOBUF_C_TYPE_STRING) {
    memset(p, 0, scalar_size(f->type));
  }
}

static const ProtobufCFieldDescriptor *oneof_active(const ProtobufCMessageDescriptor *d, uint8_t *base,
                                                    const ProtobufCFieldDescriptor *member) {
  uint32_t c;
  memcpy(&c, base + member->quantifier_offset, sizeof(c));
  for (unsigned i = 0; i < d->n_fields; i++)
    if (d->fields[i].id == c && d->fields[i].quantifier_offset == member->quantifier_offset &&
        (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
      return &d->fields[i];
  return NULL;
}

/* Every message in the tree, for picking one uniformly. */
typedef struct msglist {
  ProtobufCMessage *m[256];
  size_t n;
} msglist;

static void walk(ProtobufCMessage *m, msglist *l) {
  if (!m || l->n == sizeof(l->m) / sizeof(l->m[0])) return;
  l->m[l->n++] = m;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  uint8_t *base = (uint8_t *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n;
      memcpy(&n, base + f->quantifier_offset, sizeof(n));
      ProtobufCMessage **arr = *(ProtobufCMessage ***)(base + f->offset);
      for (size_t j = 0; j < n; j++) walk(arr[j], l);
    } else {
      if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && oneof_active(d, base, f) != f) continue;
      walk(*(ProtobufCMessage **)(base + f->offset), l);
    }
  }
}

static bool mutate_repeated(rng *r, uint8_t *base, const ProtobufCFieldDescriptor *f) {
  size_t n, es = scalar_size(f->type);
  memcpy(&n, base + f->quantifier_offset, sizeof(n));
  uint8_t *arr = *(uint8_t **)(base + f->offset);
  size_t op = rbelow(r, n ? 5 : 1);
  if (op == 0 || op == 4) { /* add: new, or a copy of an element (op 4) */
    if (n >= 200) return false;
    uint8_t *na = realloc(arr, (n + 1) * es);
    if (!na) return false;
    arr = na;
    *(uint8_t **)(base + f->offset) = arr;
    size_t at = rbelow(r, n + 1);
    memmove(arr + (at + 1) * es, arr + at * es, (n - at) * es);
    memset(arr + at * es, 0, es);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      ProtobufCMessage *e = NULL;
      if (op == 4 && n) {
        size_t src = rbelow(r, n);
        if (src >= at) src++; /* skip the new, empty slot */
        e = copy_message(*(ProtobufCMessage **)(arr + src * es));
      }
      if (!e) e = new_message(f->descriptor);
      if (!e) {
        memmove(arr + at * es, arr + (at + 1) * es, (n - at) * es);
        return false;
      }
      *(ProtobufCMessage **)(arr + at * es) = e;
    } else if (!mutate_scalar(r, arr + at * es, f)) {
      memmove(arr + at * es, arr + (at + 1) * es, (n - at) * es);
      return false;
    }
    n++;
  } else if (op == 1) { /* remove */
    size_t at = rbelow(r, n);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
      protobuf_c_message_free_unpacked(*(ProtobufCMessage **)(arr + at * es), NULL);
    else if (f->type == PROTOBUF_C_TYPE_BYTES)
      free(((ProtobufCBinaryData *)(arr + at * es))->data);
    else if (f->type == PROTOBUF_C_TYPE_STRING)
      return false;
    memmove(arr + at * es, arr + (at + 1) * es, (n - at - 1) * es);
    n--;
  } else if (op == 2) { /* swap two */
    if (n < 2) return false;
    size_t a = rbelow(r, n), b = rbelow(r, n);
    uint8_t tmp[sizeof(ProtobufCBinaryData) > 8 ? sizeof(ProtobufCBinaryData) : 8];
    memcpy(tmp, arr + a * es, es);
    memcpy(arr + a * es, arr + b * es, es);
    memcpy(arr + b * es, tmp, es);
  } else { /* change one element (messages are changed by walking into them) */
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return false;
    return mutate_scalar(r, arr + rbelow(r, n) * es, f);
  }
  memcpy(base + f->quantifier_offset, &n, sizeof(n));
  return true;
}

/* One change somewhere in the tree under root. */
static bool mutate_tree(rng *r, ProtobufCMessage *root) {
  msglist *l = malloc(sizeof(*l));
  if (!l) return false;
  l->n = 0;
  walk(root, l);
  bool done = false;
  for (int tries = 0; tries < 8 && !done && l->n; tries++) {
    ProtobufCMessage *m = l->m[rbelow(r, l->n)];
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (!d->n_fields) continue;
    const ProtobufCFieldDescriptor *f = &d->fields[rbelow(r, d->n_fields)];
    uint8_t *base = (uint8_t *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      done = mutate_repeated(r, base, f);
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      const ProtobufCFieldDescriptor *act = oneof_active(d, base, f);
      if (act == f && f->type != PROTOBUF_C_TYPE_MESSAGE && rbelow(r, 4)) {
        done = mutate_scalar(r, base + f->offset, f);
      } else if (act == f && rbelow(r, 4) == 0) { /* unset the oneof */
        clear_field(base, f);
        uint32_t zero = 0;
        memcpy(base + f->quantifier_offset, &zero, sizeof(zero));
        done = true;
      } else if (act != f) { /* switch to this member */
        if (f->type == PROTOBUF_C_TYPE_STRING) continue;
        if (act) clear_field(base, act);
        memset(base + f->offset, 0, scalar_size(f->type));
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
          ProtobufCMessage *sub = new_message(f->descriptor);
          *(ProtobufCMessage **)(base + f->offset) = sub;
        } else {
          mutate_scalar(r, base + f->offset, f);
        }
        memcpy(base + f->quantifier_offset, &f->id, sizeof(f->id));
        done = true;
      }
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      ProtobufCMessage **p = (ProtobufCMessage **)(base + f->offset);
      if (!*p) {
        *p = new_message(f->descriptor);
        done = *p != NULL;
      } else if (rbelow(r, 4) == 0) {
        clear_field(base, f);
        done = true;
      }
    } else {
      done = mutate_scalar(r, base + f->offset, f);
    }
  }
  free(l);
  return done;
}

/* A message of type t changed 1-4 times, packed into out (at most max bytes). */
static size_t mutate_message(rng *r, int t, const uint8_t *in, size_t n, uint8_t *out, size_t max) {
  const ProtobufCMessageDescriptor *d = request_fuzz_descriptors[t];
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, in);
  if (!m) return SIZE_MAX;
  int steps = 1 + (int)rbelow(r, 4);
  for (int i = 0; i < steps; i++) mutate_tree(r, m);
  size_t len = protobuf_c_message_get_packed_size(m);
  if (len > max) {
    protobuf_c_message_free_unpacked(m, NULL);
    return SIZE_MAX;
  }
  protobuf_c_message_pack(m, out);
  protobuf_c_message_free_unpacked(m, NULL);
  return len;
}

typedef struct frame {
  uint8_t type;
  const uint8_t *p;
  size_t n;
} frame;

static size_t mutate_sequence(rng *r, uint8_t *data, size_t size, size_t max) {
  frame fr[RF_MAX_SEQUENCE + 1];
  size_t nf = 0, off = 1;
  while (nf < RF_MAX_SEQUENCE && size - off >= 2) {
    size_t len = data[off + 1] < size - off - 2 ? data[off + 1] : size - off - 2;
    fr[nf++] = (frame){data[off], data + off + 2, len};
    off += 2 + len;
  }
  uint8_t *copy = malloc(size ? size : 1), *msg = malloc(256);
  if (!copy || !msg) {
    free(copy);
    free(msg);
    return SIZE_MAX;
  }
  memcpy(copy, data, size);
  for (size_t i = 0; i < nf; i++) fr[i].p = copy + (fr[i].p - data);
  size_t msglen = 0;
  size_t op = rbelow(r, nf ? 6 : 1);
  if (op == 0 && nf < RF_MAX_SEQUENCE) { /* insert: an empty message of any type, or a copy */
    size_t at = rbelow(r, nf + 1);
    frame f = {(uint8_t)rbelow(r, RF_NTYPES), msg, 0};
    if (nf && rbelow(r, 2)) f = fr[rbelow(r, nf)];
    memmove(&fr[at + 1], &fr[at], (nf - at) * sizeof(fr[0]));
    fr[at] = f;
    nf++;
  } else if (op == 1 && nf) { /* drop */
    size_t at = rbelow(r, nf);
    memmove(&fr[at], &fr[at + 1], (nf - at - 1) * sizeof(fr[0]));
    nf--;
  } else if (op == 2 && nf > 1) { /* swap */
    size_t a = rbelow(r, nf), b = rbelow(r, nf);
    frame t = fr[a];
    fr[a] = fr[b];
    fr[b] = t;
  } else if (op == 3 && nf) { /* retype */
    fr[rbelow(r, nf)].type = (uint8_t)rbelow(r, RF_NTYPES);
  } else if (nf) { /* change one frame's message */
    size_t at = rbelow(r, nf);
    msglen = mutate_message(r, fr[at].type & 7, fr[at].p, fr[at].n, msg, 255);
    if (msglen != SIZE_MAX) fr[at] = (frame){fr[at].type, msg, msglen};
  }
  size_t out = 1;
  for (size_t i = 0; i < nf && out + 2 + fr[i].n <= max; i++) {
    data[out] = fr[i].type;
    data[out + 1] = (uint8_t)fr[i].n;
    memcpy(data + out + 2, fr[i].p, fr[i].n);
    out += 2 + fr[i].n;
  }
  free(copy);
  free(msg);
  return out;
}

size_t request_fuzz_mutate(uint8_t *data, size_t size, size_t max, unsigned int seed,
                           size_t (*bytes)(uint8_t *data, size_t size, size_t max)) {
  rng r = {((uint64_t)seed << 1) ^ 0x9e3779b97f4a7c15ull};
  if (size == 0 || max < 2 || rbelow(&r, 4) == 0) return bytes(data, size, max);
  uint8_t head = data[0];
  switch (rbelow(&r, 16)) {
    case 0: { /* another store variant */
      static const uint8_t flags[3] = {RF_FLAG_COMPACTED, RF_FLAG_EMPTY, RF_FLAG_LARGE};
      data[0] ^= flags[rbelow(&r, 3)];
      return size;
    }
    case 1: /* a single request becomes a sequence of one */
      if (!(head & RF_FLAG_SEQUENCE) && size - 1 <= 255 && size + 2 <= max) {
        memmove(data + 3, data + 1, size - 1);
        data[0] = (uint8_t)(RF_FLAG_SEQUENCE | (head & (RF_FLAG_COMPACTED | RF_FLAG_EMPTY | RF_FLAG_LARGE)));
        data[1] = head & 7;
        data[2] = (uint8_t)(size - 1);
        return size + 2;
      }
      break;
    default:
      break;
  }
  if (head & RF_FLAG_SEQUENCE) {
    size_t n = mutate_sequence(&r, data, size, max);
    return n == SIZE_MAX ? bytes(data, size, max) : n;
  }
  uint8_t *out = malloc(max);
  if (!out) return bytes(data, size, max);
  size_t n = mutate_message(&r, head & 7, data + 1, size - 1, out, max - 1);
  if (n == SIZE_MAX) {
    free(out);
    return bytes(data, size, max);
  }
  memcpy(data + 1, out, n);
  free(out);
  return n + 1;
}

/* libFuzzer's hooks: weak, so the standalone driver links without libFuzzer. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max) __attribute__((weak));
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed) {
  return request_fuzz_mutate(data, size, max, seed, LLVMFuzzerMutate);
}
