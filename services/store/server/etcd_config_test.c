/* Tests of etcd's flag values as keel-store reads them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/server/etcd_config.h"

static void expect_url(const char *text, etcd_url_scheme scheme, const char *listen,
                       const char *formatted_port_4711) {
  etcd_url u;
  keel_error err = {0};
  if (etcd_url_parse("listen-client-urls", text, &u, &err) < 0) fail_msg("%s: %s", text, err.message);
  assert_int_equal(u.scheme, scheme);
  char buf[300];
  etcd_url_listen_addr(&u, buf, sizeof(buf));
  assert_string_equal(buf, listen);
  etcd_url_format(&u, 4711, buf, sizeof(buf));
  assert_string_equal(buf, formatted_port_4711);
}

static void expect_url_error(const char *text, const char *message) {
  etcd_url u;
  keel_error err = {0};
  assert_int_equal(etcd_url_parse("listen-client-urls", text, &u, &err), -EINVAL);
  assert_string_equal(err.message, message);
}

static void test_urls(void **state) {
  (void)state;
  expect_url("http://127.0.0.1:2379", ETCD_URL_HTTP, "127.0.0.1:2379", "http://127.0.0.1:4711");
  expect_url("http://localhost:0", ETCD_URL_HTTP, "localhost:0", "http://localhost:4711");
  expect_url("HTTPS://[::1]:2379", ETCD_URL_HTTPS, "[::1]:2379", "https://[::1]:4711");
  expect_url("http://:2379", ETCD_URL_HTTP, "0.0.0.0:2379", "http://:4711");
  expect_url("unix:///tmp/keel.sock", ETCD_URL_UNIX, "unix:/tmp/keel.sock", "unix:///tmp/keel.sock");
  expect_url("unix://localhost:2379", ETCD_URL_UNIX, "unix:localhost:2379", "unix://localhost:2379");
  expect_url("unixs:///run/k.sock", ETCD_URL_UNIXS, "unix:/run/k.sock", "unixs:///run/k.sock");

  etcd_url u;
  keel_error err = {0};
  assert_int_equal(etcd_url_parse("x", "http://127.0.0.1:2379", &u, &err), 0);
  assert_false(etcd_url_is_tls(&u));
  char buf[64];
  etcd_url_format(&u, -1, buf, sizeof(buf));
  assert_string_equal(buf, "http://127.0.0.1:2379");
  assert_int_equal(etcd_url_parse("x", "unixs://s", &u, &err), 0);
  assert_true(etcd_url_is_tls(&u));

  expect_url_error("ftp://h:1", "flag --listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://h:1");
  expect_url_error("127.0.0.1:2379",
                   "flag --listen-client-urls: URL scheme must be http, https, unix, or unixs: 127.0.0.1:2379");
  expect_url_error("http://127.0.0.1", "flag --listen-client-urls: URL address does not have the form \"host:port\": http://127.0.0.1");
  expect_url_error("http://::1:2379", "flag --listen-client-urls: URL address does not have the form \"host:port\": http://::1:2379");
  expect_url_error("http://h:70000", "flag --listen-client-urls: URL address does not have the form \"host:port\": http://h:70000");
  expect_url_error("http://h:x", "flag --listen-client-urls: URL address does not have the form \"host:port\": http://h:x");
  expect_url_error("http://u@h:1", "flag --listen-client-urls: URL address does not have the form \"host:port\": http://u@h:1");
  expect_url_error("http://h:1/", "flag --listen-client-urls: URL must not contain a path: http://h:1/");
  expect_url_error("http://h:1/p", "flag --listen-client-urls: URL must not contain a path: http://h:1/p");
  expect_url_error("unix://", "flag --listen-client-urls: URL has no socket path (or one too long): unix://");
}

static void test_url_list(void **state) {
  (void)state;
  const char *items[] = {"http://127.0.0.1:0", "unix:///tmp/a"};
  etcd_url *urls = NULL;
  keel_error err = {0};
  assert_int_equal(etcd_url_parse_list("listen-client-urls", items, 2, &urls, &err), 0);
  assert_int_equal(urls[0].port, 0);
  assert_int_equal(urls[1].port, -1);
  free(urls);
  const char *bad[] = {"http://127.0.0.1:0", "tcp://x:1"};
  assert_int_equal(etcd_url_parse_list("listen-client-urls", bad, 2, &urls, &err), -EINVAL);
  assert_null(urls);
  assert_int_equal(etcd_url_parse_list("advertise-client-urls", NULL, 0, &urls, &err), -EINVAL);
  assert_string_equal(err.message, "flag --advertise-client-urls: at least one URL is required");
}

static void test_initial_cluster(void **state) {
  (void)state;
  keel_error err = {0};
  const char *peers[] = {"http://127.0.0.1:2380", "http://10.0.0.1:2380"};
  const char *ok[] = {"infra0=http://10.0.0.1:2380", "infra0=http://127.0.0.1:2380"};
  assert_int_equal(etcd_initial_cluster_check("infra0", ok, 2, peers, 2, &err), 0);

  const char *other[] = {"infra0=http://127.0.0.1:2380", "infra1=http://10.0.0.2:2380"};
  assert_int_equal(etcd_initial_cluster_check("infra0", other, 2, peers, 1, &err), -EINVAL);
  assert_non_null(strstr(err.message, "flag --initial-cluster: keel-store runs a single member"));
  assert_non_null(strstr(err.message, "\"infra1\""));

  const char *missing[] = {"infra0=http://127.0.0.1:2380"};
  assert_int_equal(etcd_initial_cluster_check("infra0", missing, 1, peers, 2, &err), -EINVAL);
  assert_string_equal(err.message,
                      "flag --initial-advertise-peer-urls: has http://10.0.0.1:2380 but "
                      "--initial-cluster does not list it for infra0");
  const char *extra[] = {"infra0=http://127.0.0.1:2380", "infra0=http://10.9.9.9:2380"};
  assert_int_equal(etcd_initial_cluster_check("infra0", extra, 2, peers, 1, &err), -EINVAL);
  assert_string_equal(err.message,
                      "flag --initial-cluster: has infra0=http://10.9.9.9:2380 but it is missing "
                      "from --initial-advertise-peer-urls");

  const char *malformed[] = {"infra0"};
  assert_int_equal(etcd_initial_cluster_check("infra0", malformed, 1, peers, 1, &err), -EINVAL);
  assert_string_equal(err.message, "flag --initial-cluster: \"infra0\" is not NAME=URL");
  const char *badurl[] = {"infra0=ftp://x:1"};
  assert_int_equal(etcd_initial_cluster_check("infra0", badurl, 1, peers, 1, &err), -EINVAL);
  assert_non_null(strstr(err.message, "URL scheme must be"));
  assert_int_equal(etcd_initial_cluster_check("infra0", NULL, 0, peers, 1, &err), -EINVAL);
  assert_string_equal(err.message, "flag --initial-cluster: couldn't find local name \"infra0\" in the "
                                   "initial cluster configuration");
}

static void test_auto_compaction(void **state) {
  (void)state;
  etcd_auto_compaction ac;
  keel_error err = {0};
  assert_int_equal(etcd_auto_compaction_parse("periodic", "0", &ac, &err), 0);
  assert_int_equal(ac.retention_ms, 0);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "", &ac, &err), 0);
  assert_int_equal(ac.retention_ms, 0);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "2", &ac, &err), 0);
  assert_int_equal(ac.mode, ETCD_COMPACTION_PERIODIC);
  assert_int_equal(ac.retention_ms, 2 * 3600000);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "1h30m", &ac, &err), 0);
  assert_int_equal(ac.retention_ms, 90 * 60000);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "30s", &ac, &err), 0);
  assert_int_equal(ac.retention_ms, 30000);
  assert_int_equal(etcd_auto_compaction_parse("revision", "1000", &ac, &err), 0);
  assert_int_equal(ac.mode, ETCD_COMPACTION_REVISION);
  assert_int_equal(ac.retention_revs, 1000);
  assert_int_equal(ac.retention_ms, 0);

  assert_int_equal(etcd_auto_compaction_parse("hourly", "1", &ac, &err), -EINVAL);
  assert_string_equal(err.message, "flag --auto-compaction-mode: unknown auto-compaction-mode "
                                   "\"hourly\" (want periodic or revision)");
  assert_int_equal(etcd_auto_compaction_parse("revision", "1h", &ac, &err), -EINVAL);
  assert_non_null(strstr(err.message, "flag --auto-compaction-retention: invalid"));
  assert_int_equal(etcd_auto_compaction_parse("periodic", "1.5", &ac, &err), -EINVAL);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "-1", &ac, &err), -EINVAL);
  assert_int_equal(etcd_auto_compaction_parse("periodic", "99999999999999999999", &ac, &err), -ERANGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_url_list),
      cmocka_unit_test(test_initial_cluster),
      cmocka_unit_test(test_auto_compaction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
