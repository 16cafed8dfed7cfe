/* cli/args_test.c — kubectl's short flags rewritten for common/flags,
 * TYPE/NAME arguments, --timeout values and server error reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "cli/cli.h"

/* Expands words (NULL-terminated) and joins the result with spaces. */
static char *expand(const char *const *words) {
  int argc = 0;
  while (words[argc]) argc++;
  char **argv = calloc((size_t)argc + 1, sizeof(*argv));
  for (int i = 0; i < argc; i++) argv[i] = (char *)words[i];
  int n = 0, nowned = 0;
  char **owned = NULL;
  char **out = cli_expand_short_flags(argc, argv, &n, &owned, &nowned);
  assert_non_null(out);
  assert_null(out[n]);
  char *joined = calloc(1, 4096);
  for (int i = 0; i < n; i++) {
    if (i) strcat(joined, " ");
    strcat(joined, out[i]);
  }
  cli_free_expanded(out, owned, nowned);
  free(argv);
  return joined;
}

static void check(const char *const *words, const char *want) {
  char *got = expand(words);
  if (strcmp(got, want) != 0) fail_msg("got \"%s\", want \"%s\"", got, want);
  free(got);
}

static void test_short_flags(void **state) {
  (void)state;
  check((const char *[]){"get", "pods", "-n", "web", NULL}, "get pods --namespace=web");
  check((const char *[]){"get", "-nweb", "pods", NULL}, "get --namespace=web pods");
  check((const char *[]){"get", "-n=web", NULL}, "get --namespace=web");
  check((const char *[]){"get", "pods", "-Aw", NULL}, "get pods --all-namespaces --watch");
  check((const char *[]){"get", "pods", "-oyaml", "-l", "app=x,tier in (a)", NULL},
        "get pods --output=yaml --selector=app=x,tier in (a)");
  check((const char *[]){"apply", "-f", "-", NULL}, "apply --filename=-");
  /* A value that looks like a flag is still the value. */
  check((const char *[]){"get", "-l", "--weird", NULL}, "get --selector=--weird");
  /* A bool then a value short in one word. */
  check((const char *[]){"get", "-wn", "kube-system", NULL}, "get --watch --namespace=kube-system");
  /* Unknown shorts, "-", "-h", long flags and numbers stay for flags_parse. */
  check((const char *[]){"get", "-x", "-", "-h", "--output", "json", "-1", NULL}, "get -x - -h --output json -1");
  /* Nothing after "--" is touched (exec's command). */
  check((const char *[]){"exec", "web", "-c", "app", "--", "ls", "-l", "-n", NULL},
        "exec web --container=app -- ls -l -n");
  /* A value short at the end: left for flags_parse to call it missing. */
  check((const char *[]){"get", "-o", NULL}, "get --output");
}

static void test_parse_flags_and_help(void **state) {
  (void)state;
  cli x;
  cli_init(&x);
  char *output = "";
  bool watch = false;
  flag_def defs[] = {FLAG_STRING("output", &output, "o"), FLAG_BOOL("watch", &watch, "w"), FLAG_END};
  char *argv[] = {"get", "pods", "-n", "web", "-wojson", "--context", "prod", NULL};
  char **pos = NULL;
  int npos = 0;
  assert_int_equal(cli_parse(&x, "keel get", "", defs, CLI_FLAGS_CONNECT, 7, argv, &pos, &npos), 0);
  assert_int_equal(npos, 1);
  assert_string_equal(pos[0], "pods");
  assert_string_equal(x.namespace_, "web");
  assert_string_equal(x.context, "prod");
  assert_string_equal(output, "json");
  assert_true(watch);
  flags_free_positional(pos);
  /* A global flag is refused where the command does not take it. */
  char *bad[] = {"completion", "bash", "--server", "x", NULL};
  flag_def none[] = {FLAG_END};
  assert_int_equal(cli_parse(&x, "keel completion", "", none, 0, 4, bad, &pos, &npos), -1);
  cli_destroy(&x);
}

static void test_refs(void **state) {
  (void)state;
  cli x;
  cli_init(&x);
  cli_ref *refs = NULL;
  size_t n = 0;
  char a0[] = "po", a1[] = "web", a2[] = "db";
  char *args[] = {a0, a1, a2};
  assert_int_equal(cli_parse_refs(&x, args, 3, true, &refs, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(refs[0].kind->kind, "Pod");
  assert_string_equal(refs[1].name, "db");
  free(refs);

  char b0[] = "deploy/web", b1[] = "svc/web";
  char *slashed[] = {b0, b1};
  assert_int_equal(cli_parse_refs(&x, slashed, 2, false, &refs, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(refs[0].kind->kind, "Deployment");
  assert_string_equal(refs[0].name, "web");
  assert_string_equal(refs[1].kind->kind, "Service");
  assert_string_equal(b0, "deploy/web"); /* argv is left as it was */
  free(refs);

  char c0[] = "pods,deployments.apps";
  char *kinds[] = {c0};
  assert_int_equal(cli_parse_refs(&x, kinds, 1, true, &refs, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(refs[1].kind->kind, "Deployment");
  assert_string_equal(refs[1].name, "");
  free(refs);

  char d0[] = "all";
  char *all[] = {d0};
  assert_int_equal(cli_parse_refs(&x, all, 1, true, &refs, &n), 0);
  assert_int_equal(n, 4);
  free(refs);

  /* Errors: an unknown kind, a kind without a name where one is needed, mixed forms. */
  char e0[] = "widgets";
  char *unknown[] = {e0};
  assert_int_equal(cli_parse_refs(&x, unknown, 1, true, &refs, &n), -1);
  char f0[] = "pods";
  char *kind_only[] = {f0};
  assert_int_equal(cli_parse_refs(&x, kind_only, 1, false, &refs, &n), -1);
  char g0[] = "pod/a", g1[] = "b";
  char *mixed[] = {g0, g1};
  assert_int_equal(cli_parse_refs(&x, mixed, 2, true, &refs, &n), -1);
  assert_null(refs);
  cli_destroy(&x);
}

/* cli_targets: refs from -f manifests (names and namespaces from the objects)
 * or from the arguments. */
static void test_targets(void **state) {
  (void)state;
  cli x;
  cli_init(&x);
  const char *tmp = getenv("TEST_TMPDIR");
  char path[4096];
  snprintf(path, sizeof(path), "%s/targets.yaml", tmp && *tmp ? tmp : "/tmp");
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: team\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx\n"
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
        f);
  fclose(f);
  const char *items[] = {path};
  flag_string_list files = {.items = items, .count = 1};
  cli_targets t;
  assert_int_equal(cli_targets_read(&x, &files, NULL, 0, false, &t), 0);
  assert_int_equal(t.nrefs, 3);
  assert_int_equal(t.nobjs, 3);
  assert_string_equal(t.refs[0].kind->kind, "Pod");
  assert_string_equal(t.refs[0].name, "web");
  assert_string_equal(cli_targets_namespace(&x, &t, 0), "team");
  assert_string_equal(t.refs[1].name, "db");
  assert_string_equal(cli_targets_namespace(&x, &t, 1), "default");
  assert_string_equal(t.refs[2].kind->kind, "Namespace");
  assert_string_equal(cli_targets_namespace(&x, &t, 2), "");
  cli_targets_free(&t);
  assert_null(t.refs);
  unlink(path);

  flag_string_list none = {0};
  char a0[] = "deploy/web";
  char *args[] = {a0};
  assert_int_equal(cli_targets_read(&x, &none, args, 1, false, &t), 0);
  assert_int_equal(t.nrefs, 1);
  assert_null(t.objs);
  assert_string_equal(t.refs[0].kind->kind, "Deployment");
  assert_string_equal(cli_targets_namespace(&x, &t, 0), "default");
  cli_targets_free(&t);

  /* A missing file is an error; so is a kind without a name where one is needed. */
  char missing[] = "/nonexistent/keel-targets.yaml";
  const char *gone[] = {missing};
  flag_string_list bad = {.items = gone, .count = 1};
  assert_int_equal(cli_targets_read(&x, &bad, NULL, 0, true, &t), -1);
  cli_targets_free(&t);
  char b0[] = "pods";
  char *kind_only[] = {b0};
  assert_int_equal(cli_targets_read(&x, &none, kind_only, 1, false, &t), -1);
  cli_targets_free(&t);
  cli_destroy(&x);
}

static void test_timeouts_and_reasons(void **state) {
  (void)state;
  int64_t ms = -1;
  assert_int_equal(cli_parse_timeout("0", &ms), 0);
  assert_int_equal(ms, 0);
  assert_int_equal(cli_parse_timeout("30s", &ms), 0);
  assert_int_equal(ms, 30000);
  assert_int_equal(cli_parse_timeout("1m30s", &ms), 0);
  assert_int_equal(ms, 90000);
  assert_int_equal(cli_parse_timeout("30", &ms), -1); /* kubectl wants a unit */
  assert_int_equal(cli_parse_timeout("soon", &ms), -1);

  client_status st = {.code = GRPC_STATUS_NOT_FOUND};
  assert_string_equal(cli_status_reason(&st), "NotFound");
  st.code = GRPC_STATUS_INVALID_ARGUMENT;
  snprintf(st.message, sizeof(st.message), "Pod \"x\" is invalid: spec.containers: Required value");
  assert_string_equal(cli_status_reason(&st), "Invalid");
  snprintf(st.message, sizeof(st.message), "metadata.name: Required value");
  assert_string_equal(cli_status_reason(&st), "BadRequest");
  st.code = GRPC_STATUS_FAILED_PRECONDITION;
  snprintf(st.message, sizeof(st.message), "Operation cannot be fulfilled on pods \"x\": the object has been modified");
  assert_string_equal(cli_status_reason(&st), "Conflict");
  snprintf(st.message, sizeof(st.message), "Precondition failed: UID in precondition: a, UID in object meta: b");
  assert_string_equal(cli_status_reason(&st), "Conflict");
  snprintf(st.message, sizeof(st.message), "pod x does not have a host assigned");
  assert_string_equal(cli_status_reason(&st), "BadRequest");
  st.code = GRPC_STATUS_PERMISSION_DENIED;
  assert_string_equal(cli_status_reason(&st), "Forbidden");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_flags),
      cmocka_unit_test(test_parse_flags_and_help),
      cmocka_unit_test(test_refs),
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_timeouts_and_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
