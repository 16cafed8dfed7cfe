/* common/client/testenv.c — see testenv.h. */
#define _GNU_SOURCE
#include "common/client/testenv.h"

#include "common/etcd/testproc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int64_t testenv_now_ms(void) { return testproc_now_ms(); }

void testenv_sleep_ms(int64_t ms) { testproc_sleep_ms(ms); }

int testenv_slow(void) { return getenv("KEEL_SANITIZED") ? 3 : 1; }

const char *testenv_path(const testenv *e, const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", e->dir, name);
  return buf;
}

static bool log_has_sanitizer_report(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[4096];
  bool bad = false;
  while (!bad && fgets(line, sizeof(line), f))
    bad = strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
          strstr(line, "runtime error:");
  fclose(f);
  return bad;
}

/* Waits for `grpc=...` in p->ready. */
static int wait_ready(testenv_proc *p) {
  p->endpoint[0] = 0;
  if (testproc_wait_ready(p->pid, p->ready, "grpc", p->endpoint, sizeof(p->endpoint), 30000 * testenv_slow()) < 0) {
    fprintf(stderr, "%s did not become ready\n", p->name);
    testproc_dump_log(p->log, 6000);
    p->pid = 0;
    return -1;
  }
  return 0;
}

int testenv_init(testenv *e, const char *store_bin, const char *api_bin) {
  memset(e, 0, sizeof(*e));
  if (!realpath(store_bin, e->store_bin) || !realpath(api_bin, e->api_bin)) {
    fprintf(stderr, "testenv: binaries %s %s: %s\n", store_bin, api_bin, strerror(errno));
    return -1;
  }
  snprintf(e->dir, sizeof(e->dir), "/tmp/keel-client.XXXXXX");
  if (!mkdtemp(e->dir)) {
    fprintf(stderr, "testenv: mkdtemp: %s\n", strerror(errno));
    e->dir[0] = 0;
    return -1;
  }
  testenv_proc *s = &e->store;
  s->name = "keel-store";
  snprintf(s->log, sizeof(s->log), "%s/store.log", e->dir);
  snprintf(s->ready, sizeof(s->ready), "%s/store.ready", e->dir);
  char data[PATH_MAX + 32], ready_flag[PATH_MAX + 32];
  snprintf(data, sizeof(data), "--data-dir=%s/store-data", e->dir);
  snprintf(ready_flag, sizeof(ready_flag), "--ready-file=%s", s->ready);
  char *argv[] = {e->store_bin, "--name=client-test", data, "--listen-client-urls=http://127.0.0.1:0",
                  "--advertise-client-urls=http://127.0.0.1:0", ready_flag, "--log-level=warn", NULL};
  s->pid = testproc_spawn(argv, s->log, NULL);
  if (s->pid < 0 || wait_ready(s) < 0) return -1;
  snprintf(e->store_url, sizeof(e->store_url), "http://%s", s->endpoint);
  return 0;
}

int testenv_start_apiserver(testenv *e, testenv_proc *p, const char *listen, const char *const *args) {
  memset(p, 0, sizeof(*p));
  p->name = "keel-apiserver";
  int id = ++e->napis;
  snprintf(p->log, sizeof(p->log), "%s/apiserver%d.log", e->dir, id);
  snprintf(p->ready, sizeof(p->ready), "%s/apiserver%d.ready", e->dir, id);
  char etcd[400], ready_flag[PATH_MAX + 32], listen_flag[PATH_MAX + 32];
  snprintf(etcd, sizeof(etcd), "--etcd-servers=%s", e->store_url);
  snprintf(ready_flag, sizeof(ready_flag), "--ready-file=%s", p->ready);
  snprintf(listen_flag, sizeof(listen_flag), "--listen=%s", listen ? listen : "127.0.0.1:0");
  char *argv[32];
  int n = 0;
  argv[n++] = e->api_bin;
  argv[n++] = etcd;
  argv[n++] = ready_flag;
  argv[n++] = listen_flag;
  argv[n++] = "--http-listen=";
  argv[n++] = "--log-level=warn";
  bool auth = false;
  for (const char *const *a = args; a && *a && n < 30; a++) {
    if (strncmp(*a, "--token-auth-file", 17) == 0 || strncmp(*a, "--client-ca-file", 16) == 0) auth = true;
    argv[n++] = (char *)*a;
  }
  if (!auth) argv[n++] = "--anonymous-admin";
  argv[n] = NULL;
  p->pid = testproc_spawn(argv, p->log, NULL);
  if (p->pid < 0) return -1;
  return wait_ready(p);
}

void testenv_signal(testenv_proc *p, int sig) {
  if (p->pid > 0) kill(p->pid, sig);
}

void testenv_reap(testenv_proc *p) {
  if (p->pid > 0) waitpid(p->pid, NULL, 0);
  p->pid = 0;
}

int testenv_stop(testenv_proc *p) {
  if (p->pid <= 0) return 0;
  int rc = testproc_stop(p->pid, p->name, 15000);
  p->pid = 0;
  if (log_has_sanitizer_report(p->log)) rc = -2;
  if (rc != 0) {
    fprintf(stderr, "%s stopped with %d\n", p->name, rc);
    testproc_dump_log(p->log, 6000);
  }
  return rc;
}

void testenv_cleanup(testenv *e) {
  testenv_stop(&e->store);
  if (!getenv("KEEL_KEEP_TESTENV")) testproc_rmtree(e->dir);
  e->dir[0] = 0;
}

client *testenv_client(const char *endpoint, const char *token) {
  const char *eps[] = {endpoint};
  client_options o = {.endpoints = eps, .nendpoints = 1, .token = token, .timeout_ms = 10000 * testenv_slow()};
  keel_error err = {0};
  client *c = client_new(&o, &err);
  if (!c) fprintf(stderr, "client: %s\n", err.message);
  return c;
}

/* ------------------------------------------------------------------ objects */

static void *must(void *p) {
  if (!p) {
    fprintf(stderr, "testenv: out of memory\n");
    abort();
  }
  return p;
}

void testenv_set_label(Keel__Api__V1__ObjectMeta *m, const char *key, const char *value) {
  for (size_t i = 0; i < m->n_labels; i++) {
    if (strcmp(m->labels[i]->key, key) == 0) {
      free(m->labels[i]->value);
      m->labels[i]->value = must(strdup(value));
      return;
    }
  }
  m->labels = must(realloc(m->labels, (m->n_labels + 1) * sizeof(*m->labels)));
  Keel__Api__V1__ObjectMeta__LabelsEntry *e = must(malloc(sizeof(*e)));
  keel__api__v1__object_meta__labels_entry__init(e);
  e->key = must(strdup(key));
  e->value = must(strdup(value));
  m->labels[m->n_labels++] = e;
}

void testenv_set_rv(Keel__Api__V1__ObjectMeta *m, const char *rv) {
  if (m->resource_version && m->resource_version != protobuf_c_empty_string) free(m->resource_version);
  m->resource_version = must(strdup(rv));
}

Keel__Api__V1__Pod *testenv_pod(const char *ns, const char *name, const char *node, const char *const *labels) {
  Keel__Api__V1__Pod *p = must(malloc(sizeof(*p)));
  keel__api__v1__pod__init(p);
  p->metadata = must(malloc(sizeof(*p->metadata)));
  keel__api__v1__object_meta__init(p->metadata);
  p->metadata->name = must(strdup(name));
  p->metadata->namespace_ = must(strdup(ns));
  for (const char *const *l = labels; l && l[0] && l[1]; l += 2) testenv_set_label(p->metadata, l[0], l[1]);
  p->spec = must(malloc(sizeof(*p->spec)));
  keel__api__v1__pod_spec__init(p->spec);
  Keel__Api__V1__Container *c = must(malloc(sizeof(*c)));
  keel__api__v1__container__init(c);
  c->name = must(strdup("web"));
  c->image = must(strdup("nginx:1.25"));
  p->spec->containers = must(malloc(sizeof(*p->spec->containers)));
  p->spec->containers[0] = c;
  p->spec->n_containers = 1;
  if (node && *node) p->spec->node_name = must(strdup(node));
  return p;
}
