/* services/store/lease/lessor.h — keel-store's lessor: etcd's lease table
 * (server/lease/lessor.go) as a pure data structure.
 *
 * A lease has an id, a TTL in seconds, an expiry instant and a set of attached keys.
 * The lessor owns no thread and reads no clock: every call that needs the time takes
 * `now_ms` (a monotonic millisecond clock the caller chooses), so the same calls give
 * the same answers. Expiry does not delete anything: lessor_expired reports leases
 * whose expiry has passed and they stay until the caller revokes them through the
 * apply pipeline, so the key deletions are logged like any other write.
 *
 * The lessor does not know which lease a key belongs to: when a put moves a key to
 * another lease (or to none), the caller detaches it from the old one, as etcd's
 * apply does.
 *
 * Not thread-safe: the engine calls it under its own lock. Errors are negative errno
 * values; -ENOMEM always leaves the lessor unchanged. */
#ifndef KEEL_SERVICES_STORE_LEASE_LESSOR_H
#define KEEL_SERVICES_STORE_LEASE_LESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A requested TTL below this is raised to it (etcd's minimum with default raft
 * timing: 1.5 x election timeout, rounded up to whole seconds). */
#define LESSOR_MIN_TTL 2
/* A larger requested TTL is refused (etcd's MaxLeaseTTL). */
#define LESSOR_MAX_TTL 9000000000LL

typedef struct lessor lessor;

/* One key handed out by the lessor; key is heap memory owned by whoever holds the
 * lessor_keys it sits in (never NULL, also for the empty key). */
typedef struct lessor_key {
  uint8_t *key;
  size_t len;
} lessor_key;

/* An owned array of keys in etcd's byte order (memcmp, a prefix first). A zeroed
 * struct is an empty list; lessor_keys_free releases it and zeroes it again. */
typedef struct lessor_keys {
  lessor_key *keys;
  size_t n;
} lessor_keys;
void lessor_keys_free(lessor_keys *k);

/* An empty lessor, NULL when out of memory. Ids from lessor_next_id follow a fixed
 * seed until lessor_seed is called. */
lessor *lessor_create(void);
/* Frees the lessor with every lease and key in it. NULL is allowed. */
void lessor_destroy(lessor *l);

/* Restarts the id generator from seed. The engine seeds from getrandom() when it
 * opens, so ids revoked before a restart are not handed out again (etcd's ids are
 * random 63-bit numbers for the same reason); tests seed with constants. */
void lessor_seed(lessor *l, uint64_t seed);
/* A positive id no lease currently has, random-looking (63 bits): what a LeaseGrant
 * with ID 0 gets. It is not reserved; grant it before asking for the next one. Two
 * calls never return the same id unless 2^64 calls lie between them. The caller logs
 * the chosen id in the grant's WAL record, so replay does not depend on the seed. */
int64_t lessor_next_id(lessor *l);

/* Grants lease id for ttl_s seconds from now_ms: expiry = now_ms + ttl * 1000.
 * ttl_s below LESSOR_MIN_TTL (0 and negative too) becomes LESSOR_MIN_TTL.
 * -EINVAL for id 0 (call lessor_next_id first), -ERANGE for ttl_s > LESSOR_MAX_TTL
 * ("etcdserver: too large lease TTL"), -EEXIST when id is in use ("etcdserver: lease
 * already exists"), in etcd's order of checks. Replaying a WAL or a snapshot grants
 * again, then calls lessor_renew_all. */
int lessor_grant(lessor *l, int64_t id, int64_t ttl_s, int64_t now_ms);

/* Whether lease id exists (expired leases exist until revoked). */
bool lessor_exists(const lessor *l, int64_t id);
/* The number of leases. */
size_t lessor_count(const lessor *l);

/* Adds key (borrowed; the lessor keeps a copy) to lease id's key set; attaching a key
 * twice keeps one copy. 0, -ENOENT for an unknown lease, -EINVAL for a key longer
 * than 4 GiB - 1, -ENOMEM. */
int lessor_attach(lessor *l, int64_t id, const uint8_t *key, size_t keylen);
/* Removes key from lease id's key set. 0 (also when the key was not attached, as
 * etcd's Detach), -ENOENT for an unknown lease. */
int lessor_detach(lessor *l, int64_t id, const uint8_t *key, size_t keylen);
/* The number of keys attached to lease id (0 for an unknown lease). */
size_t lessor_key_count(const lessor *l, int64_t id);

/* Deletes lease id and moves its keys into *out (overwritten, not freed first; the
 * caller frees it with lessor_keys_free), sorted. out may be NULL to drop them.
 * -ENOENT for an unknown lease ("etcdserver: requested lease not found"). */
int lessor_revoke(lessor *l, int64_t id, lessor_keys *out);

/* Renews lease id: expiry = now_ms + ttl * 1000; returns its TTL (>= LESSOR_MIN_TTL).
 * -ENOENT for an unknown lease. -ETIME when the lease has expired (expiry <= now_ms)
 * and waits for revocation: etcd never renews an expired lease either (its Renew
 * waits for the revoke and then answers "not found"); the service answers TTL 0 to
 * both errors. */
int64_t lessor_keepalive(lessor *l, int64_t id, int64_t now_ms);

/* LeaseTimeToLive: *granted_ttl = the lease's TTL, *remaining_ttl_s = whole seconds
 * left until expiry, truncated as etcd does (1 ms after a grant of 10 s: 9);
 * 0 once expired (etcd can answer a negative TTL there, which clients read as "not
 * found"). With keys_or_NULL, a sorted copy of the attached keys goes into it
 * (overwritten, not freed first). -ENOENT for an unknown lease, with *granted_ttl = 0
 * and *remaining_ttl_s = -1 (etcd's answer); -ENOMEM when the copy fails. */
int lessor_time_to_live(const lessor *l, int64_t id, int64_t now_ms, int64_t *granted_ttl,
                        int64_t *remaining_ttl_s, lessor_keys *keys_or_NULL);

/* LeaseLeases: writes the smallest min(cap, count) lease ids in ascending order and
 * returns how many it wrote (lessor_count tells how many there are). */
size_t lessor_list(const lessor *l, int64_t *ids, size_t cap);

/* Writes up to cap ids of leases whose expiry <= now_ms, earliest expiry first (equal
 * expiries by id), and returns how many. They stay until revoked, so the next call
 * reports them again. O(k log k) for k reported; it walks the expiry heap with
 * scratch memory the lessor keeps (so it needs l exclusively, like a write), never
 * allocates and cannot fail. */
size_t lessor_expired(lessor *l, int64_t now_ms, int64_t *ids, size_t cap);

/* Every lease's expiry becomes now_ms + ttl * 1000: after recovery, as etcd extends
 * every lease when a member becomes leader. O(n). */
void lessor_renew_all(lessor *l, int64_t now_ms);

/* For snapshots: calls fn(arg, id, ttl_s) for every lease, in no particular order,
 * until fn returns non-zero; returns that value, or 0. Keys are not visited: recovery
 * re-attaches them from the kv's records. fn must not change the lessor. */
typedef int (*lessor_visit_fn)(void *arg, int64_t id, int64_t ttl_s);
int lessor_foreach(const lessor *l, lessor_visit_fn fn, void *arg);

/* Heap bytes the lessor holds (tables, leases, key sets and key copies). */
size_t lessor_memory_bytes(const lessor *l);

/* Checks every invariant (id table, expiry heap, key sets, byte count); 0 when sound,
 * -EFAULT otherwise. For tests: it visits everything. */
int lessor_verify(const lessor *l);

#endif
