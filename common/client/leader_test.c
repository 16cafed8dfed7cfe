/* common/client/leader_test.c — leader election against a real
 * keel-apiserver.
 *
 *   in process   two electors in one process: exactly one leads; the Lease
 *                names it; leader_stop hands over at the next retry; a stopped
 *                last leader leaves the lease free.
 *   processes    candidates are child processes (this binary re-executed
 *                with --candidate), so a leader can really be frozen
 *                (SIGSTOP), crashed (SIGKILL) or stopped gracefully
 *                (SIGTERM -> leader_stop). A frozen or crashed leader is
 *                replaced within lease duration + one retry period, and no
 *                sooner than its lease allows; a frozen leader that wakes up
 *                steps down without renewing; a graceful stop hands over
 *                within a retry period. Leadership intervals, as the
 *                candidates themselves report them, never overlap.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/client/client.h"
#include "common/client/leader.h"
#include "common/client/testenv.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/apps.pb-c.h"

#define LEASE_S 2
#define RENEW_MS 1500
#define RETRY_MS 250

static const char *g_self, *g_store_bin, *g_api_bin;
static testenv g_env;
static testenv_proc g_api;
static client *g_c;

static int setup(void **state) {
  (void)state;
  if (testenv_init(&g_env, g_store_bin, g_api_bin) < 0) return -1;
  if (testenv_start_apiserver(&g_env, &g_api, NULL, NULL) < 0) return -1;
  g_c = testenv_client(g_api.endpoint, NULL);
  return g_c ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  client_free(g_c);
  int rc = testenv_stop(&g_api);
  testenv_cleanup(&g_env);
  return rc == 0 ? 0 : -1;
}

static Keel__Api__V1__Lease *get_lease(const char *name) {
  client_status st;
  ProtobufCMessage *got = NULL;
  if (client_get(g_c, api_kind_by_name("Lease"), "kube-system", name, NULL, &got, NULL, &st) < 0)
    fail_msg("get lease %s: %s", name, st.message);
  return (Keel__Api__V1__Lease *)got;
}

static const char *holder(const Keel__Api__V1__Lease *l) {
  return l->spec && l->spec->holder_identity ? l->spec->holder_identity->value : "(unset)";
}

/* ------------------------------------------------------------------ in process */

typedef struct cand {
  const char *id;
  leader_elector *le;
  atomic_int *leaders;
  atomic_int *violations;
  atomic_int started, stopped;
} cand;

static void started(void *arg) {
  cand *c = arg;
  if (atomic_fetch_add(c->leaders, 1) != 0) atomic_fetch_add(c->violations, 1);
  atomic_fetch_add(&c->started, 1);
}

static void stopped(void *arg) {
  cand *c = arg;
  atomic_fetch_sub(c->leaders, 1);
  atomic_fetch_add(&c->stopped, 1);
}

static leader_elector *elect(cand *c, const char *lease) {
  leader_options o = {.client = g_c, .name = lease, .identity = c->id, .lease_duration_s = LEASE_S,
                      .renew_deadline_ms = RENEW_MS, .retry_period_ms = RETRY_MS,
                      .on_started_leading = started, .on_stopped_leading = stopped, .arg = c};
  keel_error err = {0};
  leader_elector *le = leader_start(&o, &err);
  if (!le) fail_msg("leader_start: %s", err.message);
  return le;
}

static void test_options(void **state) {
  (void)state;
  keel_error err = {0};
  leader_options o = {.client = g_c, .name = "x", .identity = "me", .lease_duration_s = 2, .renew_deadline_ms = 2000};
  assert_null(leader_start(&o, &err));
  assert_non_null(strstr(err.message, "renew deadline"));
  leader_options o2 = {.client = g_c, .name = "x"};
  assert_null(leader_start(&o2, &err));
  assert_non_null(strstr(err.message, "identity"));
}

static void test_in_process(void **state) {
  (void)state;
  atomic_int leaders = 0, violations = 0;
  cand a = {.id = "in-a", .leaders = &leaders, .violations = &violations};
  cand b = {.id = "in-b", .leaders = &leaders, .violations = &violations};
  a.le = elect(&a, "in-process");
  b.le = elect(&b, "in-process");
  int64_t deadline = testenv_now_ms() + 10000;
  while (atomic_load(&leaders) == 0 && testenv_now_ms() < deadline) testenv_sleep_ms(10);
  assert_int_equal(atomic_load(&leaders), 1);
  testenv_sleep_ms(3 * RETRY_MS); /* renewals go on; nobody else gets in */
  cand *lead = leader_is_leader(a.le) ? &a : &b, *other = lead == &a ? &b : &a;
  assert_true(leader_is_leader(lead->le));
  assert_false(leader_is_leader(other->le));
  char buf[64];
  assert_string_equal(leader_holder(other->le, buf, sizeof buf), lead->id);
  Keel__Api__V1__Lease *l = get_lease("in-process");
  assert_string_equal(holder(l), lead->id);
  assert_int_equal(l->spec->lease_duration_seconds->value, LEASE_S);
  int32_t transitions = l->spec->lease_transitions ? l->spec->lease_transitions->value : 0;
  protobuf_c_message_free_unpacked(&l->base, NULL);

  /* A graceful stop: on_stopped_leading, release, and the other takes over at its next retry. */
  int64_t t0 = testenv_now_ms();
  leader_stop(lead->le);
  assert_int_equal(atomic_load(&lead->stopped), 1);
  while (!leader_is_leader(other->le) && testenv_now_ms() < t0 + 5000) testenv_sleep_ms(5);
  int64_t took = testenv_now_ms() - t0;
  print_message("in process: handover after a graceful stop took %lld ms\n", (long long)took);
  assert_true(leader_is_leader(other->le));
  assert_true(took <= RETRY_MS * 6 / 5 + 500 * testenv_slow());
  l = get_lease("in-process");
  assert_string_equal(holder(l), other->id);
  assert_int_equal(l->spec->lease_transitions->value, transitions + 1);
  protobuf_c_message_free_unpacked(&l->base, NULL);
  leader_stop(other->le);
  l = get_lease("in-process");
  assert_string_equal(holder(l), ""); /* released: free for anyone */
  protobuf_c_message_free_unpacked(&l->base, NULL);
  assert_int_equal(atomic_load(&violations), 0);
  assert_int_equal(atomic_load(&leaders), 0);
}

/* ------------------------------------------------------------------ processes */

typedef struct child {
  char id[16];
  pid_t pid;
  int fd;
  pthread_t reader;
  /* what it reported, parent-side (under g_mu) */
  bool leading, exited_ok, eof;
  int64_t lead_start; /* child's CLOCK_MONOTONIC ms */
  int64_t lead_end;
  int leads, stops;
} child;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

/* Leadership intervals, from every child: [start, end). */
typedef struct interval {
  char id[16];
  int64_t start, end;
} interval;
static interval g_iv[64];
static int g_niv;

static void close_interval_locked(child *c, int64_t end) {
  if (!c->leading) return;
  c->leading = false;
  c->lead_end = end;
  if (g_niv < 64) g_iv[g_niv++] = (interval){.start = c->lead_start, .end = end};
  snprintf(g_iv[g_niv - 1].id, sizeof g_iv[0].id, "%s", c->id);
}

static void *reader(void *arg) {
  child *c = arg;
  FILE *f = fdopen(c->fd, "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    long long t = 0;
    pthread_mutex_lock(&g_mu);
    if (sscanf(line, "LEADING %lld", &t) == 1) {
      c->leading = true;
      c->lead_start = t;
      c->leads++;
    } else if (sscanf(line, "STOPPED %lld", &t) == 1) {
      close_interval_locked(c, t);
      c->stops++;
    } else if (strncmp(line, "EXIT", 4) == 0) {
      c->exited_ok = true;
    }
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_mu);
  }
  pthread_mutex_lock(&g_mu);
  c->eof = true;
  pthread_cond_broadcast(&g_cond);
  pthread_mutex_unlock(&g_mu);
  if (f) fclose(f);
  return NULL;
}

static void spawn(child *c, const char *id) {
  memset(c, 0, sizeof(*c));
  snprintf(c->id, sizeof c->id, "%s", id);
  char log[PATH_MAX], lease[16], renew[16], retry[16];
  char logname[64];
  snprintf(logname, sizeof logname, "cand-%s.log", id);
  testenv_path(&g_env, logname, log, sizeof log);
  snprintf(lease, sizeof lease, "%d", LEASE_S);
  snprintf(renew, sizeof renew, "%d", RENEW_MS);
  snprintf(retry, sizeof retry, "%d", RETRY_MS);
  char *argv[] = {(char *)g_self, "--candidate", g_api.endpoint, c->id, "procs", lease, renew, retry, NULL};
  c->pid = testproc_spawn(argv, log, &c->fd);
  assert_true(c->pid > 0);
  pthread_create(&c->reader, NULL, reader, c);
}

/* Waits (up to timeout) until exactly one of cs leads; returns it. */
static child *wait_leader(child **cs, int n, int64_t timeout_ms) {
  int64_t deadline = testenv_now_ms() + timeout_ms;
  pthread_mutex_lock(&g_mu);
  for (;;) {
    child *l = NULL;
    int count = 0;
    for (int i = 0; i < n; i++)
      if (cs[i]->leading) {
        l = cs[i];
        count++;
      }
    if (count == 1 || testenv_now_ms() >= deadline) {
      pthread_mutex_unlock(&g_mu);
      return count == 1 ? l : NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g_cond, &g_mu, &ts);
  }
}

/* Waits until c leads and every other of cs does not. */
static bool wait_only(child *c, child **cs, int n, int64_t timeout_ms) {
  int64_t deadline = testenv_now_ms() + timeout_ms;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    bool ok = c->leading;
    for (int i = 0; i < n; i++)
      if (cs[i] != c && cs[i]->leading) ok = false;
    pthread_mutex_unlock(&g_mu);
    if (ok) return true;
    if (testenv_now_ms() >= deadline) return false;
    testenv_sleep_ms(5);
  }
}

static void reap(child *c) {
  int status;
  waitpid(c->pid, &status, 0);
  pthread_join(c->reader, NULL);
  c->pid = 0;
}

static void check_no_overlap(void) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_niv; i++) {
    print_message("  %s led [%lld, %lld) ms\n", g_iv[i].id, (long long)g_iv[i].start, (long long)g_iv[i].end);
    for (int j = 0; j < i; j++) {
      if (g_iv[i].start < g_iv[j].end && g_iv[j].start < g_iv[i].end)
        fail_msg("%s [%lld, %lld) and %s [%lld, %lld) overlap", g_iv[i].id, (long long)g_iv[i].start,
                 (long long)g_iv[i].end, g_iv[j].id, (long long)g_iv[j].start, (long long)g_iv[j].end);
    }
  }
  pthread_mutex_unlock(&g_mu);
}

static void test_processes(void **state) {
  (void)state;
  const int64_t slack = 600 * testenv_slow();
  const int64_t retry_max = RETRY_MS * 6 / 5; /* jitter */
  child a, b, cc;
  spawn(&a, "A");
  spawn(&b, "B");
  child *ab[] = {&a, &b};
  child *x = wait_leader(ab, 2, 15000);
  assert_non_null(x);
  child *y = x == &a ? &b : &a;
  testenv_sleep_ms(1000); /* stable: renewals keep it */
  assert_non_null(wait_leader(ab, 2, 0));
  Keel__Api__V1__Lease *l = get_lease("procs");
  assert_string_equal(holder(l), x->id);
  protobuf_c_message_free_unpacked(&l->base, NULL);

  /* 1. Freeze the leader: no renewals, no release. */
  pthread_mutex_lock(&g_mu);
  int64_t t_stop = testenv_now_ms();
  kill(x->pid, SIGSTOP);
  close_interval_locked(x, t_stop); /* a frozen process acts no more */
  x->leading = false;
  pthread_mutex_unlock(&g_mu);
  assert_ptr_equal(wait_leader(ab, 2, LEASE_S * 1000 + retry_max + slack + 2000), y);
  int64_t took = y->lead_start - t_stop;
  print_message("frozen leader %s replaced by %s after %lld ms (lease %d s, retry %d ms)\n", x->id, y->id,
                (long long)took, LEASE_S, RETRY_MS);
  assert_true(took <= LEASE_S * 1000 + retry_max + slack);
  assert_true(took >= LEASE_S * 1000 - retry_max - 100); /* waited for expiry */
  /* It wakes up: past its renew deadline, it steps down without renewing. */
  int stops_before = x->stops;
  kill(x->pid, SIGCONT);
  int64_t t_cont = testenv_now_ms();
  pthread_mutex_lock(&g_mu);
  while (x->stops == stops_before && testenv_now_ms() < t_cont + 5000) {
    pthread_mutex_unlock(&g_mu);
    testenv_sleep_ms(5);
    pthread_mutex_lock(&g_mu);
  }
  pthread_mutex_unlock(&g_mu);
  assert_int_equal(x->stops, stops_before + 1);
  testenv_sleep_ms(2 * RETRY_MS);
  assert_ptr_equal(wait_leader(ab, 2, 0), y);
  l = get_lease("procs");
  assert_string_equal(holder(l), y->id);
  protobuf_c_message_free_unpacked(&l->base, NULL);

  /* 2. Crash the new leader: SIGKILL, nothing released. */
  pthread_mutex_lock(&g_mu);
  int64_t t_kill = testenv_now_ms();
  kill(y->pid, SIGKILL);
  close_interval_locked(y, t_kill);
  pthread_mutex_unlock(&g_mu);
  reap(y);
  assert_ptr_equal(wait_leader(ab, 2, LEASE_S * 1000 + retry_max + slack + 2000), x);
  took = x->lead_start - t_kill;
  print_message("crashed leader %s replaced by %s after %lld ms\n", y->id, x->id, (long long)took);
  assert_true(took <= LEASE_S * 1000 + retry_max + slack);
  assert_true(took >= LEASE_S * 1000 - retry_max - 100);

  /* 3. A graceful stop hands over at once (the next retry of the candidate). */
  spawn(&cc, "C");
  child *xc[] = {x, &cc};
  testenv_sleep_ms(2 * RETRY_MS); /* C is polling */
  assert_ptr_equal(wait_leader(xc, 2, 0), x);
  kill(x->pid, SIGTERM);
  assert_true(wait_only(&cc, xc, 2, 5000 * testenv_slow()));
  pthread_mutex_lock(&g_mu);
  int64_t handover = cc.lead_start - x->lead_end;
  pthread_mutex_unlock(&g_mu);
  reap(x);
  print_message("graceful stop of %s: %s leads %lld ms after it stopped\n", x->id, cc.id, (long long)handover);
  assert_true(x->exited_ok);
  assert_true(handover >= 0 && handover <= retry_max + slack);

  testenv_sleep_ms(3 * RETRY_MS); /* C renews and keeps it */
  assert_ptr_equal(wait_leader(xc, 2, 0), &cc);
  kill(cc.pid, SIGTERM); /* its STOPPED line closes its interval */
  reap(&cc);
  assert_true(cc.exited_ok);
  check_no_overlap();
  l = get_lease("procs");
  assert_string_equal(holder(l), "");
  print_message("lease transitions: %d\n", l->spec->lease_transitions->value);
  assert_int_equal(l->spec->lease_transitions->value, 3); /* x -> y -> x -> C */
  protobuf_c_message_free_unpacked(&l->base, NULL);
}

/* ------------------------------------------------------------------ candidate */

static void say(const char *what) {
  char line[64];
  int n = snprintf(line, sizeof line, "%s %lld\n", what, (long long)testenv_now_ms());
  if (write(1, line, (size_t)n) < 0) _exit(3);
}

static void cand_started(void *arg) {
  (void)arg;
  say("LEADING");
}
static void cand_stopped(void *arg) {
  (void)arg;
  say("STOPPED");
}

/* --candidate ENDPOINT IDENTITY LEASE_NAME LEASE_S RENEW_MS RETRY_MS: elects
 * until SIGTERM, then stops gracefully. */
static int candidate(char **argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread */
  client *c = testenv_client(argv[2], NULL);
  if (!c) return 1;
  leader_options o = {.client = c, .name = argv[4], .identity = argv[3], .lease_duration_s = atoi(argv[5]),
                      .renew_deadline_ms = atoi(argv[6]), .retry_period_ms = atoi(argv[7]),
                      .on_started_leading = cand_started, .on_stopped_leading = cand_stopped};
  keel_error err = {0};
  leader_elector *le = leader_start(&o, &err);
  if (!le) {
    fprintf(stderr, "candidate: %s\n", err.message);
    return 1;
  }
  int sig;
  sigwait(&set, &sig);
  leader_stop(le);
  client_free(c);
  say("EXIT");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 8 && strcmp(argv[1], "--candidate") == 0) return candidate(argv);
  if (argc < 3) {
    fprintf(stderr, "usage: %s KEEL_STORE KEEL_APISERVER\n", argv[0]);
    return 2;
  }
  static char self[PATH_MAX];
  if (!realpath("/proc/self/exe", self)) return 2;
  g_self = self;
  g_store_bin = argv[1];
  g_api_bin = argv[2];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_in_process),
      cmocka_unit_test(test_processes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
