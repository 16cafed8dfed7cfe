/* common/client/leader.h — leader election on a keel.api.v1 Lease, as
 * client-go's leaderelection with a LeaseLock.
 *
 * Each candidate runs an elector thread. Every retry_period (jittered up to
 * +20%) it reads the Lease and:
 *   - creates it holding it, when it does not exist;
 *   - takes it when it is free (holderIdentity unset or "") or expired
 *     (now > renewTime + leaseDurationSeconds): holderIdentity = me,
 *     acquireTime = renewTime = now, leaseTransitions + 1;
 *   - renews it when it holds it (renewTime = now);
 *   - otherwise waits: someone else leads.
 * Every write is an Update carrying the resourceVersion just read, so two
 * candidates racing for a free lease cannot both win: the loser's Update is
 * FAILED_PRECONDITION and it stays a follower.
 *
 * A leader that has not renewed successfully for renew_deadline steps down
 * (on_stopped_leading) and becomes a candidate again; since renew_deadline <
 * lease duration, it stops acting before anyone else may take the lease (as
 * long as clocks agree within lease duration - renew deadline: expiry is
 * judged on renewTime, a wall-clock time written by the holder).
 * leader_is_leader answers from the same rule, so it turns false the moment
 * the deadline passes even if the elector thread was stalled.
 *
 * On leader_stop a leader calls on_stopped_leading, then releases the lease
 * (holderIdentity "", leaseDurationSeconds 1), so a waiting candidate takes
 * over at its next retry instead of after expiry. A crashed leader releases
 * nothing: the others take over once the lease expires, within lease
 * duration + one retry period of its last renewal.
 *
 * Callbacks run on the elector thread and must return promptly (start your
 * controllers on their own threads; stop them synchronously in
 * on_stopped_leading). They must not call leader_stop. */
#ifndef KEEL_COMMON_CLIENT_LEADER_H
#define KEEL_COMMON_CLIENT_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/client/client.h"

typedef struct leader_elector leader_elector;

typedef struct leader_options {
  client *client;       /* borrowed; must outlive the elector */
  const char *ns;       /* the Lease's namespace; default "kube-system" */
  const char *name;     /* the Lease's name, e.g. "keel-scheduler"; required */
  const char *identity; /* unique per candidate (hostname + pid, say); required */
  int lease_duration_s; /* default 15 */
  int64_t renew_deadline_ms; /* default 10000; must be < lease duration */
  int64_t retry_period_ms;   /* default 2000; must be < renew deadline */
  bool keep_on_stop;         /* do not release the lease at leader_stop */
  void (*on_started_leading)(void *arg);
  void (*on_stopped_leading)(void *arg);
  /* The observed holder changed ("" when the lease is free). Optional. */
  void (*on_new_leader)(const char *identity, void *arg);
  void *arg;
} leader_options;

/* Validates the options and starts the elector thread. */
leader_elector *leader_start(const leader_options *opts, keel_error *err);
/* Leading now: won the lease and renewed it within the renew deadline. */
bool leader_is_leader(leader_elector *le);
/* The holder this elector last observed ("" for none), copied into buf. */
const char *leader_holder(leader_elector *le, char *buf, size_t len);
/* Stops the elector: a leader calls on_stopped_leading and releases the lease
 * (unless keep_on_stop). Joins the thread and frees. */
void leader_stop(leader_elector *le);

#endif
