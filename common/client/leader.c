/* common/client/leader.c — see leader.h.
 *
 * The elector is one loop: try_acquire_or_renew, then sleep a retry period.
 * Leadership is a deadline rather than a flag: `renewed_at` is when the last
 * successful write was sent, and we lead while now < renewed_at +
 * renew_deadline. The write's renewTime is taken before it is sent, so the
 * lease others see can only expire later than our own deadline. */
#define _GNU_SOURCE
#include "common/client/leader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log/log.h"
#include "keel/api/v1/apps.pb-c.h"

struct leader_elector {
  leader_options o;
  char *ns, *name, *identity;
  const api_kind *kind;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* stop */
  bool stopping;
  bool leading;       /* on_started_leading ran and on_stopped_leading did not */
  int64_t renewed_at; /* monotonic ms of the last successful acquire/renew */
  char holder[256];
  unsigned seed;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wall_now(int64_t *sec, int32_t *nanos) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *sec = ts.tv_sec;
  *nanos = (int32_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- record */

static Google__Protobuf__Timestamp *new_timestamp(int64_t sec, int32_t nanos) {
  Google__Protobuf__Timestamp *t = malloc(sizeof(*t));
  if (!t) return NULL;
  google__protobuf__timestamp__init(t);
  t->seconds = sec;
  t->nanos = nanos;
  return t;
}

static Google__Protobuf__Int32Value *new_int32(int32_t v) {
  Google__Protobuf__Int32Value *w = malloc(sizeof(*w));
  if (!w) return NULL;
  google__protobuf__int32_value__init(w);
  w->value = v;
  return w;
}

static Google__Protobuf__StringValue *new_string(const char *s) {
  Google__Protobuf__StringValue *w = malloc(sizeof(*w));
  if (!w) return NULL;
  google__protobuf__string_value__init(w);
  if (!(w->value = strdup(s))) {
    free(w);
    return NULL;
  }
  return w;
}

#define REPLACE(slot, value)                                             \
  do {                                                                   \
    if (slot) protobuf_c_message_free_unpacked(&(slot)->base, NULL);     \
    (slot) = (value);                                                    \
  } while (0)

static const char *holder_of(const Keel__Api__V1__Lease *l) {
  return l->spec && l->spec->holder_identity && l->spec->holder_identity->value ? l->spec->holder_identity->value
                                                                                : "";
}

/* Expired when now (wall) is past renewTime + leaseDurationSeconds. A lease
 * with no renewTime or duration counts as expired. */
static bool expired(const Keel__Api__V1__Lease *l) {
  if (!l->spec || !l->spec->renew_time || !l->spec->lease_duration_seconds) return true;
  int64_t sec;
  int32_t nanos;
  wall_now(&sec, &nanos);
  int64_t now_ms = sec * 1000 + nanos / 1000000;
  int64_t until = l->spec->renew_time->seconds * 1000 + l->spec->renew_time->nanos / 1000000 +
                  (int64_t)l->spec->lease_duration_seconds->value * 1000;
  return now_ms > until;
}

static void observe(leader_elector *le, const char *holder) {
  pthread_mutex_lock(&le->mu);
  bool changed = strcmp(le->holder, holder) != 0;
  if (changed) snprintf(le->holder, sizeof(le->holder), "%s", holder);
  pthread_mutex_unlock(&le->mu);
  if (changed && le->o.on_new_leader) le->o.on_new_leader(holder, le->o.arg);
}

/* Fills spec for holding the lease now (acquiring when we did not hold it). */
static int hold(leader_elector *le, Keel__Api__V1__Lease *l, bool release) {
  if (!l->spec) {
    l->spec = malloc(sizeof(*l->spec));
    if (!l->spec) return -ENOMEM;
    keel__api__v1__lease_spec__init(l->spec);
  }
  Keel__Api__V1__LeaseSpec *s = l->spec;
  int64_t sec;
  int32_t nanos;
  wall_now(&sec, &nanos);
  bool ours = strcmp(holder_of(l), le->identity) == 0;
  Google__Protobuf__Timestamp *renew = new_timestamp(sec, nanos);
  Google__Protobuf__Int32Value *dur = new_int32(release ? 1 : le->o.lease_duration_s);
  Google__Protobuf__StringValue *who = new_string(release ? "" : le->identity);
  if (!renew || !dur || !who) {
    if (renew) protobuf_c_message_free_unpacked(&renew->base, NULL);
    if (dur) protobuf_c_message_free_unpacked(&dur->base, NULL);
    if (who) protobuf_c_message_free_unpacked(&who->base, NULL);
    return -ENOMEM;
  }
  if (!ours && !release) {
    Google__Protobuf__Timestamp *acq = new_timestamp(sec, nanos);
    int32_t transitions = s->lease_transitions ? s->lease_transitions->value : 0;
    /* As client-go: every change of holder counts, taking a released lease too. */
    Google__Protobuf__Int32Value *tr = new_int32(transitions + 1);
    if (!acq || !tr) {
      if (acq) protobuf_c_message_free_unpacked(&acq->base, NULL);
      if (tr) protobuf_c_message_free_unpacked(&tr->base, NULL);
      protobuf_c_message_free_unpacked(&renew->base, NULL);
      protobuf_c_message_free_unpacked(&dur->base, NULL);
      protobuf_c_message_free_unpacked(&who->base, NULL);
      return -ENOMEM;
    }
    REPLACE(s->acquire_time, acq);
    REPLACE(s->lease_transitions, tr);
  }
  REPLACE(s->renew_time, renew);
  REPLACE(s->lease_duration_seconds, dur);
  REPLACE(s->holder_identity, who);
  return 0;
}

/* One round: true when we hold the lease after it. timeout_ms bounds each call. */
static bool try_acquire_or_renew(leader_elector *le, int64_t timeout_ms) {
  client_call_options co = {.timeout_ms = timeout_ms};
  client_status st;
  ProtobufCMessage *got = NULL;
  if (client_get(le->o.client, le->kind, le->ns, le->name, "", &got, &co, &st) < 0) {
    if (!client_is_not_found(&st)) {
      LOG_DEBUG("leader: cannot read the lease", "lease", le->name, "code", rpc_status_code_name(st.code), "error",
                st.message);
      return false;
    }
    /* No lease yet: create it holding it. */
    Keel__Api__V1__Lease l = KEEL__API__V1__LEASE__INIT;
    Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
    m.namespace_ = le->ns;
    m.name = le->name;
    l.metadata = &m;
    if (hold(le, &l, false) < 0) return false;
    l.spec->lease_transitions->value = 0; /* a new lease has had no transition */
    ProtobufCMessage *created = NULL;
    int rc = client_create(le->o.client, le->kind, &l.base, &created, &co, &st);
    protobuf_c_message_free_unpacked(&l.spec->base, NULL);
    if (created) protobuf_c_message_free_unpacked(created, NULL);
    if (rc < 0) {
      LOG_DEBUG("leader: create lost", "lease", le->name, "code", rpc_status_code_name(st.code), "error", st.message);
      return false;
    }
    observe(le, le->identity);
    return true;
  }
  Keel__Api__V1__Lease *l = (Keel__Api__V1__Lease *)got;
  const char *holder = holder_of(l);
  observe(le, holder);
  if (*holder && strcmp(holder, le->identity) != 0 && !expired(l)) {
    protobuf_c_message_free_unpacked(got, NULL);
    return false; /* someone else leads */
  }
  bool ok = hold(le, l, false) == 0;
  ProtobufCMessage *updated = NULL;
  /* metadata.resourceVersion is the one just read: a concurrent writer wins
   * and we get FAILED_PRECONDITION. */
  if (ok && client_update(le->o.client, le->kind, got, &updated, &co, &st) < 0) {
    LOG_DEBUG("leader: update lost", "lease", le->name, "code", rpc_status_code_name(st.code), "error", st.message);
    ok = false;
  }
  if (updated) protobuf_c_message_free_unpacked(updated, NULL);
  protobuf_c_message_free_unpacked(got, NULL);
  if (ok) observe(le, le->identity);
  return ok;
}

static void release(leader_elector *le) {
  client_call_options co = {.timeout_ms = le->o.retry_period_ms > 1000 ? le->o.retry_period_ms : 1000};
  client_status st;
  ProtobufCMessage *got = NULL;
  if (client_get(le->o.client, le->kind, le->ns, le->name, "", &got, &co, &st) < 0) {
    LOG_WARN("leader: release: cannot read the lease", "lease", le->name, "error", st.message);
    return;
  }
  Keel__Api__V1__Lease *l = (Keel__Api__V1__Lease *)got;
  if (strcmp(holder_of(l), le->identity) == 0 && hold(le, l, true) == 0) {
    ProtobufCMessage *updated = NULL;
    if (client_update(le->o.client, le->kind, got, &updated, &co, &st) < 0)
      LOG_WARN("leader: release failed", "lease", le->name, "error", st.message);
    else observe(le, "");
    if (updated) protobuf_c_message_free_unpacked(updated, NULL);
  }
  protobuf_c_message_free_unpacked(got, NULL);
}

/* ---------------------------------------------------------------- loop */

/* Sleeps until `until` (monotonic ms) or stop; false when stopping. */
static bool sleep_until(leader_elector *le, int64_t until) {
  pthread_mutex_lock(&le->mu);
  while (!le->stopping && mono_ms() < until) {
    struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000L};
    pthread_cond_timedwait(&le->cond, &le->mu, &ts);
  }
  bool go_on = !le->stopping;
  pthread_mutex_unlock(&le->mu);
  return go_on;
}

static int64_t jittered_retry(leader_elector *le) {
  int64_t r = le->o.retry_period_ms;
  return r + (int64_t)(rand_r(&le->seed) % (unsigned)(r / 5 + 1));
}

static void set_leading(leader_elector *le, bool leading, int64_t renewed_at) {
  pthread_mutex_lock(&le->mu);
  le->leading = leading;
  le->renewed_at = renewed_at;
  pthread_mutex_unlock(&le->mu);
}

static void *elector_thread(void *arg) {
  leader_elector *le = arg;
  bool leading = false;
  int64_t renewed_at = 0;
  for (;;) {
    int64_t start = mono_ms();
    if (leading && start >= renewed_at + le->o.renew_deadline_ms) {
      /* Stalled past the deadline (a paused process): others may lead by now. */
      set_leading(le, false, 0);
      leading = false;
      LOG_WARN("leader: renew deadline passed, stepping down", "lease", le->name, "identity", le->identity);
      if (le->o.on_stopped_leading) le->o.on_stopped_leading(le->o.arg);
    }
    int64_t timeout = leading ? renewed_at + le->o.renew_deadline_ms - start : le->o.renew_deadline_ms;
    if (timeout < 100) timeout = 100;
    bool ok = try_acquire_or_renew(le, timeout);
    if (ok) {
      renewed_at = start;
      if (!leading) {
        leading = true;
        set_leading(le, true, renewed_at);
        LOG_INFO("leader: acquired the lease", "lease", le->name, "identity", le->identity);
        if (le->o.on_started_leading) le->o.on_started_leading(le->o.arg);
      } else {
        set_leading(le, true, renewed_at);
      }
    } else if (leading) {
      char holder[256];
      leader_holder(le, holder, sizeof(holder));
      bool taken = *holder && strcmp(holder, le->identity) != 0;
      if (taken || mono_ms() >= renewed_at + le->o.renew_deadline_ms) {
        set_leading(le, false, 0);
        leading = false;
        LOG_WARN("leader: lost the lease", "lease", le->name, "identity", le->identity, "holder", holder);
        if (le->o.on_stopped_leading) le->o.on_stopped_leading(le->o.arg);
      }
    }
    if (!sleep_until(le, start + jittered_retry(le))) break;
  }
  if (leading) {
    set_leading(le, false, 0);
    if (le->o.on_stopped_leading) le->o.on_stopped_leading(le->o.arg);
    if (!le->o.keep_on_stop) release(le);
  }
  return NULL;
}

/* ---------------------------------------------------------------- API */

leader_elector *leader_start(const leader_options *opts, keel_error *err) {
  if (!opts || !opts->client || !opts->name || !*opts->name || !opts->identity || !*opts->identity) {
    keel_error_set(err, EINVAL, "leader election: needs a client, a lease name and an identity");
    return NULL;
  }
  leader_elector *le = calloc(1, sizeof(*le));
  if (!le) {
    keel_error_set(err, ENOMEM, "leader election: out of memory");
    return NULL;
  }
  le->o = *opts;
  if (le->o.lease_duration_s <= 0) le->o.lease_duration_s = 15;
  if (le->o.renew_deadline_ms <= 0) le->o.renew_deadline_ms = 10000;
  if (le->o.retry_period_ms <= 0) le->o.retry_period_ms = 2000;
  if (le->o.renew_deadline_ms >= (int64_t)le->o.lease_duration_s * 1000 ||
      le->o.retry_period_ms >= le->o.renew_deadline_ms) {
    keel_error_set(err, EINVAL,
                   "leader election: want retry period (%lld ms) < renew deadline (%lld ms) < lease duration (%d s)",
                   (long long)le->o.retry_period_ms, (long long)le->o.renew_deadline_ms, le->o.lease_duration_s);
    free(le);
    return NULL;
  }
  le->kind = api_kind_by_name("Lease");
  le->ns = strdup(opts->ns && *opts->ns ? opts->ns : "kube-system");
  le->name = strdup(opts->name);
  le->identity = strdup(opts->identity);
  le->seed = (unsigned)mono_ms() ^ (unsigned)(uintptr_t)le;
  pthread_mutex_init(&le->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&le->cond, &ca);
  pthread_condattr_destroy(&ca);
  int rc = le->ns && le->name && le->identity && le->kind ? pthread_create(&le->thread, NULL, elector_thread, le)
                                                          : ENOMEM;
  if (rc != 0) {
    keel_error_set_errno(err, rc, "leader election: start");
    pthread_mutex_destroy(&le->mu);
    pthread_cond_destroy(&le->cond);
    free(le->ns);
    free(le->name);
    free(le->identity);
    free(le);
    return NULL;
  }
  return le;
}

bool leader_is_leader(leader_elector *le) {
  pthread_mutex_lock(&le->mu);
  bool l = le->leading && mono_ms() < le->renewed_at + le->o.renew_deadline_ms;
  pthread_mutex_unlock(&le->mu);
  return l;
}

const char *leader_holder(leader_elector *le, char *buf, size_t len) {
  pthread_mutex_lock(&le->mu);
  snprintf(buf, len, "%s", le->holder);
  pthread_mutex_unlock(&le->mu);
  return buf;
}

void leader_stop(leader_elector *le) {
  if (!le) return;
  pthread_mutex_lock(&le->mu);
  le->stopping = true;
  pthread_cond_broadcast(&le->cond);
  pthread_mutex_unlock(&le->mu);
  pthread_join(le->thread, NULL);
  pthread_mutex_destroy(&le->mu);
  pthread_cond_destroy(&le->cond);
  free(le->ns);
  free(le->name);
  free(le->identity);
  free(le);
}
