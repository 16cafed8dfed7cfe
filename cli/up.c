/* keel up / keel down — a local control plane on this machine.
 *
 * `keel up` makes a cluster directory (default ~/.keel/cluster): a CA and
 * certificates (the apiserver's for localhost and 127.0.0.1, an admin client
 * certificate with O=system:masters), then starts keel-store and
 * keel-apiserver as daemons (own session, logs in the directory, ports picked
 * by the kernel and read from their ready files), waits until both serve, and
 * writes a "keel-local" context into the client config, made current. As the
 * scheduler, controllers and node agents come to exist they join here.
 * Running it again while the cluster is up only says so.
 *
 * `keel down` stops the daemons it started (SIGTERM, then SIGKILL after a
 * grace), checking each pid is still the binary it started before signalling
 * it, and removes the context; `--purge` also deletes the directory (the
 * store's data with it).
 *
 * Binaries: --store-bin / --apiserver-bin, else next to `keel`, else where
 * Bazel puts them relative to it (bazel-bin/cli/keel ->
 * bazel-bin/services/store/keel-store), else $PATH. */
#define _XOPEN_SOURCE 700
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config_file.h"

/* Paths here are the cluster directory plus short fixed names; the directory
 * is checked to leave room for them (UP_DIR_MAX), so GCC's worst-case
 * arithmetic on the composed buffers is moot. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#define UP_DIR_MAX (PATH_MAX - 128)

#define UP_CONTEXT "keel-local"
#define UP_READY_TIMEOUT_S 30
#define DOWN_GRACE_S 10

/* ---------------------------------------------------------------- certificates */

static EVP_PKEY *new_key(void) {
  return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/* A certificate for key, signed by ca_key (self-signed when ca is NULL). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *org, X509 *ca, EVP_PKEY *ca_key,
                      const char *const *exts) {
  X509 *c = X509_new();
  if (!c) return NULL;
  unsigned char serial[8];
  FILE *r = fopen("/dev/urandom", "rb");
  if (!r || fread(serial, 1, sizeof serial, r) != sizeof serial) memset(serial, 0x5a, sizeof serial);
  if (r) fclose(r);
  serial[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_set_version(c, 2);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 365L * 24 * 3600);
  X509_set_pubkey(c, key);
  X509_NAME *name = X509_get_subject_name(c);
  if (org) X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(c, ca ? X509_get_subject_name(ca) : name);
  X509 *issuer = ca ? ca : c;
  for (const char *const *e = exts; *e; e += 2) {
    int nid = OBJ_txt2nid(e[0]);
    if (nid == NID_undef || add_ext(c, issuer, nid, e[1]) < 0) {
      X509_free(c);
      return NULL;
    }
  }
  if (!X509_sign(c, ca_key ? ca_key : key, EVP_sha256())) {
    X509_free(c);
    return NULL;
  }
  return c;
}

static int write_pem(const char *dir, const char *name, X509 *cert, EVP_PKEY *key, keel_error *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.pem", dir, name);
  FILE *f = fopen(path, "w");
  if (!f || !PEM_write_X509(f, cert)) {
    if (f) fclose(f);
    return keel_error_set_errno(err, errno ? errno : EIO, "write %s", path);
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)) {
    if (f) fclose(f);
    else if (fd >= 0) close(fd);
    return keel_error_set_errno(err, errno ? errno : EIO, "write %s", path);
  }
  fclose(f);
  return 0;
}

/* ca, apiserver (localhost, 127.0.0.1) and admin (O=system:masters) in dir,
 * unless they are there already. */
static int make_certs(const char *dir, keel_error *err) {
  char probe[PATH_MAX];
  snprintf(probe, sizeof probe, "%s/admin.key", dir);
  if (access(probe, R_OK) == 0) return 0;
  int rc = -1;
  EVP_PKEY *ca_key = new_key(), *srv_key = new_key(), *adm_key = new_key();
  X509 *ca = NULL, *srv = NULL, *adm = NULL;
  static const char *const ca_ext[] = {"basicConstraints", "critical,CA:TRUE", "keyUsage",
                                       "critical,keyCertSign,cRLSign", "subjectKeyIdentifier", "hash", NULL};
  static const char *const srv_ext[] = {"basicConstraints", "critical,CA:FALSE", "keyUsage",
                                        "critical,digitalSignature,keyEncipherment", "extendedKeyUsage", "serverAuth",
                                        "subjectAltName", "DNS:localhost,IP:127.0.0.1", NULL};
  static const char *const adm_ext[] = {"basicConstraints", "critical,CA:FALSE", "keyUsage",
                                        "critical,digitalSignature", "extendedKeyUsage", "clientAuth", NULL};
  if (!ca_key || !srv_key || !adm_key) {
    keel_error_set(err, EIO, "certificates: cannot generate keys");
    goto out;
  }
  ca = new_cert(ca_key, "keel-local-ca", NULL, NULL, NULL, ca_ext);
  srv = ca ? new_cert(srv_key, "keel-apiserver", NULL, ca, ca_key, srv_ext) : NULL;
  adm = srv ? new_cert(adm_key, "keel-admin", "system:masters", ca, ca_key, adm_ext) : NULL;
  if (!adm) {
    keel_error_set(err, EIO, "certificates: cannot sign them");
    goto out;
  }
  if (write_pem(dir, "ca", ca, ca_key, err) < 0 || write_pem(dir, "apiserver", srv, srv_key, err) < 0 ||
      write_pem(dir, "admin", adm, adm_key, err) < 0)
    goto out;
  rc = 0;
out:
  X509_free(ca);
  X509_free(srv);
  X509_free(adm);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(srv_key);
  EVP_PKEY_free(adm_key);
  return rc;
}

/* ---------------------------------------------------------------- daemons */

/* The binary `name`: next to this program, in Bazel's layout relative to it,
 * or on $PATH. Writes the path into out. */
static int find_binary(const char *name, const char *rel, char *out, size_t len) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(out, len, "%s/%s", self, name);
    if (access(out, X_OK) == 0) return 0;
    snprintf(out, len, "%s/../%s", self, rel);
    if (access(out, X_OK) == 0) return 0;
  }
  const char *path = getenv("PATH");
  for (const char *p = path ? path : ""; *p;) {
    const char *end = strchr(p, ':');
    size_t l = end ? (size_t)(end - p) : strlen(p);
    snprintf(out, len, "%.*s/%s", (int)l, p, name);
    if (l && access(out, X_OK) == 0) return 0;
    if (!end) break;
    p = end + 1;
  }
  return -1;
}

/* Starts argv as a daemon (own session, output to log); returns its pid. */
static pid_t spawn(char *const *argv, const char *log) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setsid();
  int in = open("/dev/null", O_RDONLY);
  int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (in >= 0) dup2(in, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  execv(argv[0], argv);
  _exit(127);
}

/* Waits until the ready file has a `key=` line; copies its value. */
static int wait_ready(const char *ready, const char *key, pid_t pid, char *value, size_t len) {
  size_t klen = strlen(key);
  for (int i = 0; i < UP_READY_TIMEOUT_S * 20; i++) {
    FILE *f = fopen(ready, "r");
    if (f) {
      char line[512];
      while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
          line[strcspn(line, "\n")] = '\0';
          snprintf(value, len, "%s", line + klen + 1);
          fclose(f);
          return 0;
        }
      }
      fclose(f);
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return -ECHILD;
    struct timespec t = {.tv_nsec = 50 * 1000 * 1000};
    nanosleep(&t, NULL);
  }
  return -ETIMEDOUT;
}

/* The pids file: "name pid binary" per line. */
typedef struct daemon_rec {
  char name[32];
  pid_t pid;
  char bin[PATH_MAX];
} daemon_rec;

static int read_pids(const char *dir, daemon_rec *recs, int max) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/pids", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0;
  char line[PATH_MAX + 64];
  while (n < max && fgets(line, sizeof line, f)) {
    int pid;
    if (sscanf(line, "%31s %d %4095s", recs[n].name, &pid, recs[n].bin) == 3 && pid > 1) {
      recs[n].pid = pid;
      n++;
    }
  }
  fclose(f);
  return n;
}

/* Still the process we started: the pid runs the binary recorded for it. */
static bool still_ours(const daemon_rec *r) {
  char link[64], exe[PATH_MAX];
  snprintf(link, sizeof link, "/proc/%d/exe", (int)r->pid);
  ssize_t n = readlink(link, exe, sizeof exe - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  char want[PATH_MAX];
  if (!realpath(r->bin, want)) return false;
  return strcmp(exe, want) == 0;
}

static void default_dir(char *out, size_t len) {
  const char *home = getenv("HOME");
  snprintf(out, len, "%s/.keel/cluster", home && *home ? home : ".");
}

/* ---------------------------------------------------------------- config */

/* Removes the entry named `name` from root[key] (an array of {name: ...}). */
static void remove_named(json_t *root, const char *key, const char *name) {
  json_t *arr = json_object_get(root, key);
  if (!json_is_array(arr)) return;
  for (size_t i = json_array_size(arr); i-- > 0;) {
    json_t *n = json_object_get(json_array_get(arr, i), "name");
    if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) json_array_remove(arr, i);
  }
}

static void put_named(json_t *root, const char *key, const char *name, const char *field, json_t *value) {
  remove_named(root, key, name);
  json_t *arr = json_object_get(root, key);
  if (!json_is_array(arr)) {
    arr = json_array();
    json_object_set_new(root, key, arr);
  }
  json_array_append_new(arr, json_pack("{s:s, s:o}", "name", name, field, value));
}

static int write_context(const char *config, const char *dir, const char *grpc, keel_error *err) {
  json_t *root = NULL;
  int rc = config_file_read(config, &root, err);
  if (rc == -ENOENT) {
    root = json_object();
    keel_error_clear(err);
  } else if (rc < 0) {
    return rc;
  }
  char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
  snprintf(ca, sizeof ca, "%s/certs/ca.pem", dir);
  snprintf(cert, sizeof cert, "%s/certs/admin.pem", dir);
  snprintf(key, sizeof key, "%s/certs/admin.key", dir);
  put_named(root, "clusters", UP_CONTEXT, "cluster",
            json_pack("{s:[s], s:s, s:s}", "endpoints", grpc, "certificate-authority", ca, "tls-server-name",
                      "localhost"));
  put_named(root, "users", UP_CONTEXT, "user", json_pack("{s:s, s:s}", "client-certificate", cert, "client-key", key));
  put_named(root, "contexts", UP_CONTEXT, "context",
            json_pack("{s:s, s:s, s:s}", "cluster", UP_CONTEXT, "user", UP_CONTEXT, "namespace", "default"));
  json_object_set_new(root, "current-context", json_string(UP_CONTEXT));
  rc = config_file_write(config, root, err);
  json_decref(root);
  return rc;
}

static void remove_context(const char *config) {
  json_t *root = NULL;
  if (config_file_read(config, &root, NULL) < 0) return;
  remove_named(root, "clusters", UP_CONTEXT);
  remove_named(root, "users", UP_CONTEXT);
  remove_named(root, "contexts", UP_CONTEXT);
  json_t *cur = json_object_get(root, "current-context");
  if (json_is_string(cur) && strcmp(json_string_value(cur), UP_CONTEXT) == 0) json_object_del(root, "current-context");
  config_file_write(config, root, NULL);
  json_decref(root);
}

/* The client config path `keel` uses (--config, $KEEL_CONFIG, ~/.keel/config). */
static void config_path(cli *x, char *out, size_t len) {
  const char *env = getenv("KEEL_CONFIG");
  const char *home = getenv("HOME");
  if (x->config_path && *x->config_path) snprintf(out, len, "%s", x->config_path);
  else if (env && *env) snprintf(out, len, "%s", env);
  else snprintf(out, len, "%s/.keel/config", home && *home ? home : ".");
}

/* ---------------------------------------------------------------- commands */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type == FTW_DP) rmdir(path);
  else unlink(path);
  return 0;
}

static int stop_daemons(const char *dir, bool quiet) {
  daemon_rec recs[8];
  int n = read_pids(dir, recs, 8);
  /* In reverse order of start: the apiserver before its store. */
  for (int i = n - 1; i >= 0; i--) {
    if (!still_ours(&recs[i])) continue;
    kill(recs[i].pid, SIGTERM);
    bool gone = false;
    for (int t = 0; t < DOWN_GRACE_S * 20 && !gone; t++) {
      struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
      gone = !still_ours(&recs[i]);
    }
    if (!gone) kill(recs[i].pid, SIGKILL);
    if (!quiet) printf("stopped %s (pid %d)\n", recs[i].name, (int)recs[i].pid);
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/pids", dir);
  unlink(path);
  return n;
}

int cmd_up(cli *x, int argc, char **argv) {
  char *dir_flag = "", *store_bin = "", *api_bin = "";
  flag_def defs[] = {
      FLAG_STRING("dir", &dir_flag, "the cluster's directory: certificates, data, logs (default ~/.keel/cluster)"),
      FLAG_STRING("store-bin", &store_bin, "the keel-store binary (default: next to keel, or on $PATH)"),
      FLAG_STRING("apiserver-bin", &api_bin, "the keel-apiserver binary (default: next to keel, or on $PATH)"),
      FLAG_END,
  };
  int prc = cli_parse(x, "keel up",
                      "Bring up a local control plane (keel-store, keel-apiserver) with generated certificates, "
                      "and make it the current context.",
                      defs, CLI_FLAGS_CONFIG, argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  char dir[PATH_MAX], certs[PATH_MAX + 8], path[PATH_MAX + 64], store[PATH_MAX], api[PATH_MAX];
  if (*dir_flag) snprintf(dir, sizeof dir, "%s", dir_flag);
  else default_dir(dir, sizeof dir);
  if (strlen(dir) > UP_DIR_MAX) return cli_error(x, "--dir: the path is too long");
  char cfg[PATH_MAX];
  config_path(x, cfg, sizeof cfg);
  daemon_rec recs[8];
  int n = read_pids(dir, recs, 8);
  int alive = 0;
  for (int i = 0; i < n; i++) alive += still_ours(&recs[i]);
  if (n > 0 && alive == n) {
    printf("Keel is already up (%s); `keel down` stops it.\n", dir);
    return 0;
  }
  if (n > 0) stop_daemons(dir, true); /* half up: start over */
  if ((*store_bin ? snprintf(store, sizeof store, "%s", store_bin) < 0
                  : find_binary("keel-store", "services/store/keel-store", store, sizeof store) < 0) ||
      access(store, X_OK) != 0)
    return cli_error(x, "keel-store not found: build it (bazel build //services/store:keel-store) or pass --store-bin");
  if ((*api_bin ? snprintf(api, sizeof api, "%s", api_bin) < 0
                : find_binary("keel-apiserver", "services/apiserver/keel-apiserver", api, sizeof api) < 0) ||
      access(api, X_OK) != 0)
    return cli_error(x, "keel-apiserver not found: build it (bazel build //services/apiserver:keel-apiserver) or "
                        "pass --apiserver-bin");
  char mk[PATH_MAX + 32];
  snprintf(mk, sizeof mk, "%s", dir);
  for (char *p = mk + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(mk, 0700);
      *p = '/';
    }
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return cli_error(x, "cannot create %s: %s", dir, strerror(errno));
  snprintf(certs, sizeof certs, "%s/certs", dir);
  if (mkdir(certs, 0700) < 0 && errno != EEXIST) return cli_error(x, "cannot create %s: %s", certs, strerror(errno));
  keel_error err = {0};
  if (make_certs(certs, &err) < 0) return cli_error(x, "%s", err.message);

  /* keel-store. */
  char data[PATH_MAX + 8], ready[PATH_MAX + 16], log[PATH_MAX + 16], store_url[300], api_grpc[300], api_http[300];
  snprintf(data, sizeof data, "%s/store", dir);
  snprintf(ready, sizeof ready, "%s/store.ready", dir);
  snprintf(log, sizeof log, "%s/keel-store.log", dir);
  unlink(ready);
  char a_data[PATH_MAX + 16], a_ready[PATH_MAX + 32];
  snprintf(a_data, sizeof a_data, "--data-dir=%s", data);
  snprintf(a_ready, sizeof a_ready, "--ready-file=%s", ready);
  char *store_argv[] = {store, "--name=keel-local", a_data, "--listen-client-urls=http://127.0.0.1:0",
                        "--advertise-client-urls=http://127.0.0.1:0", a_ready, NULL};
  pid_t spid = spawn(store_argv, log);
  snprintf(path, sizeof path, "%s/pids", dir);
  FILE *pf = fopen(path, "w");
  if (!pf) return cli_error(x, "cannot write %s: %s", path, strerror(errno));
  fprintf(pf, "keel-store %d %s\n", (int)spid, store);
  fflush(pf);
  int rc = wait_ready(ready, "client-url", spid, store_url, sizeof store_url);
  if (rc < 0) {
    fclose(pf);
    stop_daemons(dir, true);
    return cli_error(x, "keel-store did not start (%s): see %s", rc == -ECHILD ? "it exited" : "timed out", log);
  }

  /* keel-apiserver, TLS with the admin's CA as client CA. */
  snprintf(ready, sizeof ready, "%s/apiserver.ready", dir);
  snprintf(log, sizeof log, "%s/keel-apiserver.log", dir);
  unlink(ready);
  char a_etcd[400], a_cert[PATH_MAX + 32], a_key[PATH_MAX + 40], a_ca[PATH_MAX + 32], a_ready2[PATH_MAX + 32];
  snprintf(a_etcd, sizeof a_etcd, "--etcd-servers=%s", store_url);
  snprintf(a_cert, sizeof a_cert, "--tls-cert-file=%s/apiserver.pem", certs);
  snprintf(a_key, sizeof a_key, "--tls-private-key-file=%s/apiserver.key", certs);
  snprintf(a_ca, sizeof a_ca, "--client-ca-file=%s/ca.pem", certs);
  snprintf(a_ready2, sizeof a_ready2, "--ready-file=%s", ready);
  char *api_argv[] = {api, a_etcd, a_cert, a_key, a_ca, "--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
                      a_ready2, NULL};
  pid_t apid = spawn(api_argv, log);
  fprintf(pf, "keel-apiserver %d %s\n", (int)apid, api);
  fclose(pf);
  rc = wait_ready(ready, "grpc", apid, api_grpc, sizeof api_grpc);
  if (rc == 0) rc = wait_ready(ready, "http", apid, api_http, sizeof api_http);
  if (rc < 0) {
    stop_daemons(dir, true);
    return cli_error(x, "keel-apiserver did not start (%s): see %s", rc == -ECHILD ? "it exited" : "timed out", log);
  }
  if (write_context(cfg, dir, api_grpc, &err) < 0) {
    stop_daemons(dir, true);
    return cli_error(x, "write the client config: %s", err.message);
  }
  const char *port = strrchr(api_http, ':');
  printf("Keel is up.\n"
         "  keel-apiserver  gRPC %s, REST https://localhost%s  (pid %d)\n"
         "  keel-store      %s  (pid %d)\n"
         "  directory       %s (certificates, data, logs)\n"
         "  context \"%s\" is current in %s\n"
         "Try: keel get namespaces; keel apply -f examples/; keel down\n",
         api_grpc, port ? port : "", (int)apid, store_url, (int)spid, dir, UP_CONTEXT, cfg);
  return 0;
}

int cmd_down(cli *x, int argc, char **argv) {
  char *dir_flag = "";
  bool purge = false;
  flag_def defs[] = {
      FLAG_STRING("dir", &dir_flag, "the cluster's directory (default ~/.keel/cluster)"),
      FLAG_BOOL("purge", &purge, "also delete the directory: certificates, logs and the store's data"),
      FLAG_END,
  };
  int prc = cli_parse(x, "keel down", "Stop the local control plane `keel up` started and remove its context.",
                      defs, CLI_FLAGS_CONFIG, argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  char dir[PATH_MAX], cfg[PATH_MAX];
  if (*dir_flag) snprintf(dir, sizeof dir, "%s", dir_flag);
  else default_dir(dir, sizeof dir);
  config_path(x, cfg, sizeof cfg);
  int n = stop_daemons(dir, false);
  remove_context(cfg);
  if (purge) {
    /* Only what `keel up` made: its known files and directories. */
    static const char *const files[] = {"store.ready", "apiserver.ready", "keel-store.log", "keel-apiserver.log",
                                        "certs/ca.pem", "certs/ca.key", "certs/apiserver.pem", "certs/apiserver.key",
                                        "certs/admin.pem", "certs/admin.key", NULL};
    char p[PATH_MAX + 64];
    for (const char *const *f = files; *f; f++) {
      snprintf(p, sizeof p, "%s/%s", dir, *f);
      unlink(p);
    }
    snprintf(p, sizeof p, "%s/certs", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/store", dir);
    nftw(p, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    rmdir(dir);
  }
  if (n == 0) printf("Keel was not up (%s).\n", dir);
  else printf("Keel is down.%s\n", purge ? " Its directory is removed." : "");
  return 0;
}
