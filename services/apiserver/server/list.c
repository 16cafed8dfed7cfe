/* services/apiserver/server/list.c — lists served by the store itself: pages
 * (limit and continue) and exact past versions (resourceVersionMatch=Exact).
 *
 * The watch cache only holds the present, so a paginated list pins one store
 * revision for all its pages: the continue token carries that revision and
 * the key to start after, and each page is a range read at that revision.
 * Selectors are applied to each page, reading further until `limit` objects
 * match. A compacted revision ends the pagination with OUT_OF_RANGE, as
 * Kubernetes' "continue parameter is too old" 410. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/server/internal.h"

static const char hexdigits[] = "0123456789abcdef";

/* "<revision>:<hex of the next key>" — opaque to clients. */
static char *make_continue(int64_t rev, const char *key, size_t len) {
  char *t = malloc(24 + 2 * len + 2);
  if (!t) return NULL;
  int n = snprintf(t, 24, "%lld:", (long long)rev);
  for (size_t i = 0; i < len; i++) {
    t[n++] = hexdigits[(unsigned char)key[i] >> 4];
    t[n++] = hexdigits[(unsigned char)key[i] & 15];
  }
  t[n] = '\0';
  return t;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int parse_continue(const char *token, const char *prefix, int64_t *rev, char **key, size_t *len) {
  char *end;
  long long r = strtoll(token, &end, 10);
  if (end == token || *end != ':' || r <= 0) return -EINVAL;
  const char *hex = end + 1;
  size_t hl = strlen(hex);
  if (hl % 2) return -EINVAL;
  char *k = malloc(hl / 2 + 1);
  if (!k) return -ENOMEM;
  for (size_t i = 0; i < hl / 2; i++) {
    int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
    if (a < 0 || b < 0) {
      free(k);
      return -EINVAL;
    }
    k[i] = (char)(a << 4 | b);
  }
  k[hl / 2] = '\0';
  /* The key must stay inside the listed prefix. */
  if (hl / 2 < strlen(prefix) || memcmp(k, prefix, strlen(prefix)) != 0) {
    free(k);
    return -EINVAL;
  }
  *rev = r;
  *key = k;
  *len = hl / 2;
  return 0;
}

void store_list_clear(store_list *l) {
  for (size_t i = 0; i < l->n; i++) protobuf_c_message_free_unpacked(l->items[i], NULL);
  free(l->items);
  free(l->continue_token);
  memset(l, 0, sizeof *l);
}

int apiserver_list_from_store(apiserver *a, const api_kind *k, const char *ns, selectors *sel, int64_t exact_rev,
                              int64_t limit, const char *continue_token, store_list *out, keel_error *err) {
  memset(out, 0, sizeof *out);
  char prefix[OBJSTORE_KEY_MAX];
  if (objstore_prefix(a->store, k, ns, prefix, sizeof prefix) < 0)
    return keel_error_set(err, EINVAL, "namespace too long");
  size_t plen = strlen(prefix);
  unsigned char *end = NULL;
  size_t end_len = 0;
  if (etcd_prefix_end(prefix, plen, &end, &end_len) < 0) return keel_error_set(err, ENOMEM, "out of memory");
  int64_t rev = exact_rev;
  char *start = NULL;
  size_t start_len = 0;
  if (continue_token && *continue_token) {
    int rc = parse_continue(continue_token, prefix, &rev, &start, &start_len);
    if (rc < 0) {
      free(end);
      return keel_error_set(err, EINVAL, "continue: Invalid value: \"%s\": not a continue token of this list",
                            continue_token);
    }
  } else {
    start = malloc(plen + 1);
    if (!start) {
      free(end);
      return keel_error_set(err, ENOMEM, "out of memory");
    }
    memcpy(start, prefix, plen + 1);
    start_len = plen;
  }
  int rc = 0;
  size_t cap = 0;
  for (;;) {
    int64_t want = limit > 0 ? limit - (int64_t)out->n : 0;
    /* Read a little more than needed when filtering, to save round trips. */
    int64_t page = want > 0 ? (sel && (sel->labels || sel->fields) ? want * 2 + 8 : want + 1) : 0;
    etcd_range_result r;
    rc = etcd_range(objstore_etcd(a->store), start, start_len, end, end_len, rev, page, false, false, &r, err);
    if (rc == -ETCD_ECOMPACTED) {
      keel_error_set(err, EXDEV,
                     "The provided continue parameter or resourceVersion %lld is too old to display a consistent "
                     "list result: the store compacted it. Start a new list without them.",
                     (long long)rev);
      rc = -EXDEV;
      break;
    }
    if (rc < 0) break;
    if (rev == 0) rev = r.revision;
    size_t i = 0;
    bool full = false;
    for (; i < r.nkvs; i++) {
      if (limit > 0 && (int64_t)out->n == limit) {
        full = true;
        break;
      }
      ProtobufCMessage *obj = objstore_decode(k, r.kvs[i].value, r.kvs[i].value_len, r.kvs[i].mod_revision, NULL);
      if (!obj) continue;
      if (sel && !selectors_match(k, obj, sel)) {
        protobuf_c_message_free_unpacked(obj, NULL);
        continue;
      }
      if (out->n == cap) {
        cap = cap ? cap * 2 : 64;
        ProtobufCMessage **grown = realloc(out->items, cap * sizeof *grown);
        if (!grown) {
          protobuf_c_message_free_unpacked(obj, NULL);
          rc = keel_error_set(err, ENOMEM, "out of memory");
          break;
        }
        out->items = grown;
      }
      out->items[out->n++] = obj;
    }
    if (rc < 0) {
      etcd_range_result_clear(&r);
      break;
    }
    /* Where the next page starts: the first key not taken, or after the last read. */
    bool more_here = full && i < r.nkvs;
    bool more_after = r.more && r.nkvs > 0;
    if (more_here || (more_after && limit > 0 && (int64_t)out->n == limit)) {
      const etcd_kv *next = more_here ? &r.kvs[i] : &r.kvs[r.nkvs - 1];
      if (more_here) {
        out->continue_token = make_continue(rev, next->key, next->key_len);
      } else {
        char *after = malloc(next->key_len + 1);
        if (after) {
          memcpy(after, next->key, next->key_len);
          after[next->key_len] = '\0';
          out->continue_token = make_continue(rev, after, next->key_len + 1);
          free(after);
        }
      }
      etcd_range_result_clear(&r);
      break;
    }
    if (!more_after) {
      etcd_range_result_clear(&r);
      break;
    }
    /* Read on after the last key of this page. */
    const etcd_kv *last = &r.kvs[r.nkvs - 1];
    char *next = malloc(last->key_len + 1);
    if (!next) {
      etcd_range_result_clear(&r);
      rc = keel_error_set(err, ENOMEM, "out of memory");
      break;
    }
    memcpy(next, last->key, last->key_len);
    next[last->key_len] = '\0';
    free(start);
    start = next;
    start_len = last->key_len + 1;
    etcd_range_result_clear(&r);
  }
  free(start);
  free(end);
  out->revision = rev;
  if (rc < 0) {
    keel_error saved = err ? *err : (keel_error){0};
    store_list_clear(out);
    if (err) *err = saved;
  }
  return rc;
}
