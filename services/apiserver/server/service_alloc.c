/* services/apiserver/server/service_alloc.c — a Service's ClusterIP and
 * NodePorts, allocated as keys in the Service's own store txn.
 *
 * "<prefix>/serviceips/<ip>" and "<prefix>/servicenodeports/<port>" (value
 * "<namespace>/<name>") are put by the txn that creates or updates the Service,
 * each compared absent in that txn, and deleted by the txn that deletes the
 * Service or drops the port. Two apiservers (or two requests) picking the same
 * IP or port cannot both win, and an allocation never outlives its Service,
 * so there is no bitmap to repair as kube-apiserver has.
 *
 * Update follows kube-apiserver: the ClusterIP never changes; while the
 * Service stays type NodePort, a port the client sends without a nodePort
 * keeps the one it had; new ports get one, removed ports release theirs, and
 * going to type ClusterIP releases them all. A client-chosen IP or port that
 * is taken is an error naming the field; a random pick that lost a race is
 * picked again. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "services/apiserver/server/internal.h"

#define PICK_ATTEMPTS 32

static bool str_empty(const char *s) {
  return !s || !*s;
}

static bool str_eq(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") == 0;
}

static uint32_t random_u32(void) {
  uint32_t v;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint32_t)rand();
  return v;
}

static bool node_port_type(const Keel__Api__V1__ServiceSpec *sp) {
  return sp && str_eq(sp->type, "NodePort");
}

/* True when a port of sp has nodePort `port` (any protocol: the key is the number). */
static bool has_node_port(const Keel__Api__V1__ServiceSpec *sp, int port) {
  for (size_t i = 0; sp && i < sp->n_ports; i++)
    if (sp->ports[i]->node_port == port) return true;
  return false;
}

static bool ip_in_range(const apiserver *a, const char *ip, uint32_t *offset) {
  struct in_addr addr;
  if (inet_pton(AF_INET, ip, &addr) != 1) return false;
  uint32_t v = ntohl(addr.s_addr);
  if ((v & ~(a->service_size - 1)) != a->service_net) return false;
  *offset = v - a->service_net;
  /* The network and broadcast addresses are never handed out. */
  return *offset > 0 && *offset < a->service_size - 1;
}

/* ---------------------------------------------------------------- the txn's extra parts */

/* Keys taken (compare absent + put) and released (delete) by one write. The
 * first ntakes ops are the takes, in the order of cmps; for each take, who
 * chose the value (the client, or a random pick) and which field it fills, so
 * a refused txn can say whose value was taken. Heap-allocated: the keys are
 * too big for a worker's stack. */
typedef struct allocation {
  char keys[OBJSTORE_EXTRA_MAX][OBJSTORE_KEY_MAX];
  etcd_compare cmps[OBJSTORE_EXTRA_MAX];
  etcd_op ops[OBJSTORE_EXTRA_MAX];
  bool user[OBJSTORE_EXTRA_MAX];
  int port_index[OBJSTORE_EXTRA_MAX]; /* -1: the ClusterIP */
  size_t ntakes, nops;
  const char *owner;
} allocation;

static char *alloc_key(allocation *al, objstore *s, const char *what, const char *value) {
  if (al->nops >= OBJSTORE_EXTRA_MAX) return NULL;
  char suffix[96];
  snprintf(suffix, sizeof suffix, "%s/%s", what, value);
  char *key = al->keys[al->nops];
  return objstore_raw_key(s, suffix, key, OBJSTORE_KEY_MAX) < 0 ? NULL : key;
}

/* Takes must precede releases (alloc_release after every alloc_take). */
static int alloc_take(allocation *al, objstore *s, const char *what, const char *value, bool user, int port_index) {
  char *key = alloc_key(al, s, what, value);
  if (!key) return -E2BIG;
  size_t i = al->ntakes++;
  al->cmps[i] = (etcd_compare){.key = key, .key_len = strlen(key), .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL, .number = 0};
  al->ops[al->nops++] = (etcd_op){.type = ETCD_OP_PUT, .key = key, .key_len = strlen(key), .value = al->owner,
                                  .value_len = strlen(al->owner)};
  al->user[i] = user;
  al->port_index[i] = port_index;
  return 0;
}

static int alloc_release(allocation *al, objstore *s, const char *what, const char *value) {
  char *key = alloc_key(al, s, what, value);
  if (!key) return -E2BIG;
  al->ops[al->nops++] = (etcd_op){.type = ETCD_OP_DELETE, .key = key, .key_len = strlen(key)};
  return 0;
}

static int take_node_port(allocation *al, objstore *s, int port, bool user, int port_index) {
  char text[16];
  snprintf(text, sizeof text, "%d", port);
  return alloc_take(al, s, "servicenodeports", text, user, port_index);
}

static int release_node_port(allocation *al, objstore *s, int port) {
  char text[16];
  snprintf(text, sizeof text, "%d", port);
  return alloc_release(al, s, "servicenodeports", text);
}

static objstore_extra alloc_extra(const allocation *al) {
  return (objstore_extra){.cmps = al->cmps, .ncmps = al->ntakes, .ops = al->ops, .nops = al->nops};
}

/* 1 when key exists, 0 when absent, negative on a read error. */
static int key_exists(objstore *s, const char *key, keel_error *err) {
  etcd_range_result r;
  int rc = etcd_range(objstore_etcd(s), key, strlen(key), NULL, 0, 0, 0, true, true, &r, err);
  if (rc < 0) return rc;
  int exists = r.count > 0;
  etcd_range_result_clear(&r);
  return exists;
}

/* After a txn refused for an allocation (or before a dry run): -EINVAL naming
 * the first client-chosen value somebody else holds, as kube-apiserver words
 * it, or 0 when every one is free (only a random pick collided: pick again). */
static int check_user_takes(apiserver *a, const allocation *al, const Keel__Api__V1__Service *svc,
                            keel_error *err) {
  for (size_t i = 0; i < al->ntakes; i++) {
    if (!al->user[i]) continue;
    int rc = key_exists(a->store, al->cmps[i].key, err);
    if (rc <= 0) {
      if (rc < 0) return rc;
      continue;
    }
    const char *name = svc->metadata->name;
    if (al->port_index[i] < 0)
      return keel_error_set(err, EINVAL,
                            "Service \"%s\" is invalid: spec.clusterIP: Invalid value: \"%s\": provided IP is "
                            "already allocated",
                            name, svc->spec->cluster_ip);
    int idx = al->port_index[i];
    return keel_error_set(err, EINVAL,
                          "Service \"%s\" is invalid: spec.ports[%d].nodePort: Invalid value: %d: provided port is "
                          "already allocated",
                          name, idx, svc->spec->ports[idx]->node_port);
  }
  return 0;
}

/* ---------------------------------------------------------------- NodePorts */

/* A random port of the range that no port of sp or old holds (a port old
 * releases in this very txn may not be taken by it: one key, two ops). */
static int pick_node_port(const apiserver *a, const Keel__Api__V1__ServiceSpec *sp,
                          const Keel__Api__V1__ServiceSpec *old) {
  uint32_t span = (uint32_t)(a->opts.node_port_max - a->opts.node_port_min + 1);
  int port = a->opts.node_port_min;
  for (int i = 0; i < 64; i++) {
    port = a->opts.node_port_min + (int)(random_u32() % span);
    if (!has_node_port(sp, port) && !has_node_port(old, port)) break;
  }
  return port; /* the txn's compare decides whether it is free */
}

/* Fills the nodePorts of sp that the client left to the server (user_port[i]
 * false: picked again on every attempt) and plans the keys: a nodePort the
 * old spec (NULL on create) already holds is kept as it is, a new one is
 * taken, an old one no port holds any more is released. TCP and UDP ports of
 * one number share its key. */
static int plan_node_ports(apiserver *a, allocation *al, Keel__Api__V1__ServiceSpec *sp,
                           const Keel__Api__V1__ServiceSpec *old, const bool *user_port) {
  bool want = node_port_type(sp);
  for (size_t i = 0; i < sp->n_ports; i++)
    if (!user_port[i]) sp->ports[i]->node_port = 0;
  for (size_t i = 0; want && i < sp->n_ports; i++) {
    Keel__Api__V1__ServicePort *p = sp->ports[i];
    if (!user_port[i]) p->node_port = pick_node_port(a, sp, old);
    if (has_node_port(old, p->node_port)) continue;
    bool again = false;
    for (size_t j = 0; j < i; j++) again = again || sp->ports[j]->node_port == p->node_port;
    if (!again && take_node_port(al, a->store, p->node_port, user_port[i], (int)i) < 0) return -E2BIG;
  }
  for (size_t i = 0; old && i < old->n_ports; i++) {
    int port = old->ports[i]->node_port;
    if (port <= 0 || has_node_port(sp, port)) continue;
    bool again = false;
    for (size_t j = 0; j < i; j++) again = again || old->ports[j]->node_port == port;
    if (!again && release_node_port(al, a->store, port) < 0) return -E2BIG;
  }
  return 0;
}

static bool *client_node_ports(const Keel__Api__V1__ServiceSpec *sp) {
  bool *user = calloc(sp->n_ports + 1, sizeof *user);
  for (size_t i = 0; user && i < sp->n_ports; i++) user[i] = sp->ports[i]->node_port != 0;
  return user;
}

static allocation *alloc_new(const Keel__Api__V1__Service *svc, char *owner, size_t owner_len) {
  snprintf(owner, owner_len, "%s/%s", svc->metadata->namespace_, svc->metadata->name);
  allocation *al = malloc(sizeof *al);
  if (al) al->owner = owner;
  return al;
}

static void alloc_reset(allocation *al) {
  al->ntakes = al->nops = 0;
}

/* The end of a pick loop: every attempt lost a race for a random pick. */
static int ranges_full(const Keel__Api__V1__Service *svc, keel_error *err) {
  return keel_error_set(err, ENOSPC, "Service \"%s\": no free ClusterIP or NodePort found: the ranges are full",
                        svc->metadata->name);
}

static int too_many_ports(const Keel__Api__V1__Service *svc, keel_error *err) {
  return keel_error_set(err, EINVAL, "Service \"%s\": too many ports", svc->metadata->name);
}

/* ---------------------------------------------------------------- Create */

/* ClusterIPs mirrors ClusterIP (single-stack IPv4). */
static void mirror_cluster_ips(Keel__Api__V1__ServiceSpec *sp) {
  if (str_empty(sp->cluster_ip)) return;
  for (size_t i = 0; i < sp->n_cluster_ips; i++) free(sp->cluster_ips[i]);
  free(sp->cluster_ips);
  sp->cluster_ips = malloc(sizeof *sp->cluster_ips);
  sp->n_cluster_ips = 0;
  if (sp->cluster_ips && (sp->cluster_ips[0] = strdup(sp->cluster_ip))) sp->n_cluster_ips = 1;
}

int apiserver_service_create(apiserver *a, const api_kind *k, Keel__Api__V1__Service *svc, int64_t *rev,
                             keel_error *err) {
  Keel__Api__V1__ServiceSpec *sp = svc->spec;
  bool user_ip = !str_empty(sp->cluster_ip);
  bool headless = user_ip && strcmp(sp->cluster_ip, "None") == 0;
  uint32_t off;
  if (user_ip && !headless && !ip_in_range(a, sp->cluster_ip, &off))
    return keel_error_set(err, EINVAL,
                          "Service \"%s\" is invalid: spec.clusterIP: Invalid value: \"%s\": provided IP is not in "
                          "the valid range. The range of valid IPs is %s",
                          svc->metadata->name, sp->cluster_ip, a->opts.service_cidr);
  char owner[300];
  bool *user_port = client_node_ports(sp);
  allocation *al = user_port ? alloc_new(svc, owner, sizeof owner) : NULL;
  int rc = -ECANCELED;
  for (int attempt = 0; al && attempt < PICK_ATTEMPTS && rc == -ECANCELED; attempt++) {
    alloc_reset(al);
    if (!headless) {
      if (!user_ip) {
        char ipbuf[INET_ADDRSTRLEN];
        struct in_addr addr = {.s_addr = htonl(a->service_net + 1 + random_u32() % (a->service_size - 2))};
        inet_ntop(AF_INET, &addr, ipbuf, sizeof ipbuf);
        api_string_set(&sp->cluster_ip, ipbuf);
      }
    }
    int planned = headless ? 0 : alloc_take(al, a->store, "serviceips", sp->cluster_ip, user_ip, -1);
    if (planned == 0) planned = plan_node_ports(a, al, sp, NULL, user_port);
    if (planned < 0) {
      rc = too_many_ports(svc, err);
      break;
    }
    mirror_cluster_ips(sp);
    objstore_extra extra = alloc_extra(al);
    rc = objstore_create(a->store, k, &svc->base, &extra, rev, err);
    if (rc == -ECANCELED && (rc = check_user_takes(a, al, svc, err)) == 0) rc = -ECANCELED;
  }
  if (!al) rc = keel_error_set(err, ENOMEM, "out of memory");
  free(al);
  free(user_port);
  return rc == -ECANCELED ? ranges_full(svc, err) : rc;
}

/* ---------------------------------------------------------------- Update */

/* The ClusterIP the client left out is the allocated one (it never changes:
 * validation refuses another). */
static void keep_cluster_ip(Keel__Api__V1__ServiceSpec *sp, const Keel__Api__V1__ServiceSpec *old) {
  if (!str_empty(sp->cluster_ip) || str_empty(old->cluster_ip)) return;
  api_string_set(&sp->cluster_ip, old->cluster_ip);
  if (sp->n_cluster_ips == 0 && old->n_cluster_ips == 1) {
    free(sp->cluster_ips);
    sp->cluster_ips = malloc(sizeof *sp->cluster_ips);
    if (sp->cluster_ips && (sp->cluster_ips[0] = strdup(old->cluster_ips[0]))) sp->n_cluster_ips = 1;
  }
}

/* Leaving type NodePort: the nodePorts and externalTrafficPolicy the client
 * sent back unchanged (a read-modify-write of the type alone) are dropped, as
 * Kubernetes' dropTypeDependentFields does; a nodePort the old spec did not
 * have stays, for validation to refuse. */
static void drop_node_port_fields(Keel__Api__V1__ServiceSpec *sp, const Keel__Api__V1__ServiceSpec *old) {
  if (!node_port_type(old) || node_port_type(sp)) return;
  bool superset = true;
  for (size_t i = 0; i < sp->n_ports; i++)
    superset = superset && (sp->ports[i]->node_port == 0 || has_node_port(old, sp->ports[i]->node_port));
  for (size_t i = 0; superset && i < sp->n_ports; i++) sp->ports[i]->node_port = 0;
  if (str_eq(sp->external_traffic_policy, old->external_traffic_policy))
    api_string_set(&sp->external_traffic_policy, NULL);
}

/* The old port a new one continues: the one of the same name when the new one
 * is named (Kubernetes matches by name, so a renumbered port keeps its
 * nodePort), else the one of the same port and protocol. */
static const Keel__Api__V1__ServicePort *old_port_of(const Keel__Api__V1__ServiceSpec *old,
                                                     const Keel__Api__V1__ServicePort *p) {
  for (size_t j = 0; !str_empty(p->name) && j < old->n_ports; j++)
    if (str_eq(old->ports[j]->name, p->name)) return old->ports[j];
  for (size_t j = 0; j < old->n_ports; j++)
    if (old->ports[j]->port == p->port && str_eq(old->ports[j]->protocol, p->protocol)) return old->ports[j];
  return NULL;
}

/* While the Service stays type NodePort, a port sent without a nodePort keeps
 * its old one, unless another port of the update holds it now. */
static void keep_node_ports(Keel__Api__V1__ServiceSpec *sp, const Keel__Api__V1__ServiceSpec *old) {
  if (!node_port_type(old) || !node_port_type(sp)) return;
  for (size_t i = 0; i < sp->n_ports; i++) {
    Keel__Api__V1__ServicePort *p = sp->ports[i];
    const Keel__Api__V1__ServicePort *was = p->node_port ? NULL : old_port_of(old, p);
    if (was && was->node_port > 0 && !has_node_port(sp, was->node_port)) p->node_port = was->node_port;
  }
}

void apiserver_service_prepare_update(Keel__Api__V1__Service *next, const Keel__Api__V1__Service *cur) {
  if (!next->spec || !cur->spec) return;
  keep_cluster_ip(next->spec, cur->spec);
  drop_node_port_fields(next->spec, cur->spec);
  keep_node_ports(next->spec, cur->spec);
}

int apiserver_service_update(apiserver *a, const api_kind *k, Keel__Api__V1__Service *next,
                             const Keel__Api__V1__Service *cur, int64_t cur_rev, bool dry_run, int64_t *rev,
                             keel_error *err) {
  if (!next->spec || !cur->spec) /* validation requires a spec; nothing to allocate */
    return dry_run ? 0 : objstore_update(a->store, k, &next->base, cur_rev, NULL, rev, err);
  char owner[300];
  bool *user_port = client_node_ports(next->spec);
  allocation *al = user_port ? alloc_new(next, owner, sizeof owner) : NULL;
  int rc = -ECANCELED;
  for (int attempt = 0; al && attempt < PICK_ATTEMPTS && rc == -ECANCELED; attempt++) {
    alloc_reset(al);
    if (plan_node_ports(a, al, next->spec, cur->spec, user_port) < 0) {
      rc = too_many_ports(next, err);
      break;
    }
    if (dry_run) {
      /* Writes nothing; a random pick is shown as it would be tried. */
      rc = check_user_takes(a, al, next, err);
      break;
    }
    objstore_extra extra = alloc_extra(al);
    rc = objstore_update(a->store, k, &next->base, cur_rev, &extra, rev, err);
    if (rc == -ECANCELED && (rc = check_user_takes(a, al, next, err)) == 0) rc = -ECANCELED;
  }
  if (!al) rc = keel_error_set(err, ENOMEM, "out of memory");
  free(al);
  free(user_port);
  return rc == -ECANCELED ? ranges_full(next, err) : rc;
}

/* ---------------------------------------------------------------- Delete */

int apiserver_service_delete(apiserver *a, const api_kind *k, const Keel__Api__V1__Service *cur, int64_t cur_rev,
                             int64_t *rev, keel_error *err) {
  const Keel__Api__V1__ServiceSpec *sp = cur->spec;
  char owner[300];
  allocation *al = alloc_new(cur, owner, sizeof owner);
  if (!al) return keel_error_set(err, ENOMEM, "out of memory");
  alloc_reset(al);
  if (sp && !str_empty(sp->cluster_ip) && strcmp(sp->cluster_ip, "None") != 0)
    alloc_release(al, a->store, "serviceips", sp->cluster_ip);
  for (size_t i = 0; sp && i < sp->n_ports; i++) {
    int port = sp->ports[i]->node_port;
    bool again = false;
    for (size_t j = 0; j < i; j++) again = again || sp->ports[j]->node_port == port;
    if (port > 0 && !again) release_node_port(al, a->store, port);
  }
  objstore_extra extra = alloc_extra(al);
  int rc = objstore_delete(a->store, k, cur->metadata->namespace_, cur->metadata->name, cur_rev, &extra, rev, err);
  free(al);
  return rc;
}
