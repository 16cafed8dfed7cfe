/* common/client/config.c — see config.h. jansson parses; every error names
 * the JSON path of what is wrong. */
#define _GNU_SOURCE
#include "common/client/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void client_config_clear(client_config *cfg) {
  if (!cfg) return;
  free(cfg->context);
  free(cfg->cluster);
  free(cfg->user);
  free(cfg->namespace_);
  for (size_t i = 0; i < cfg->nendpoints; i++) free(cfg->endpoints[i]);
  free(cfg->endpoints);
  free(cfg->ca_file);
  free(cfg->server_name);
  free(cfg->cert_file);
  free(cfg->key_file);
  free(cfg->token);
  memset(cfg, 0, sizeof(*cfg));
}

const char *client_config_default_path(char *buf, size_t len) {
  const char *env = getenv("KEELCONFIG");
  int n;
  if (env && *env) n = snprintf(buf, len, "%s", env);
  else n = snprintf(buf, len, "%s/.keel/config", getenv("HOME") ? getenv("HOME") : "");
  return n >= 0 && (size_t)n < len ? buf : NULL;
}

void client_config_options(const client_config *cfg, client_options *opts, rpc_tls_config *tls) {
  memset(opts, 0, sizeof(*opts));
  memset(tls, 0, sizeof(*tls));
  opts->endpoints = (const char *const *)cfg->endpoints;
  opts->nendpoints = cfg->nendpoints;
  opts->token = cfg->token;
  if (cfg->tls) {
    tls->ca_file = cfg->ca_file;
    tls->cert_file = cfg->cert_file;
    tls->key_file = cfg->key_file;
    tls->server_name_override = cfg->server_name;
    opts->tls = tls;
  }
}

/* ---------------------------------------------------------------- parsing */

static char *resolve_path(const char *base_dir, const char *p) {
  char *out = NULL;
  if (p[0] == '/' || !base_dir || !*base_dir) return strdup(p);
  if (asprintf(&out, "%s/%s", base_dir, p) < 0) return NULL;
  return out;
}

/* Checks that obj (at path `where`) has only keys from allowed (NULL-ended). */
static int only_keys(json_t *obj, const char *where, const char *const *allowed, keel_error *err) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, key) == 0;
    if (!ok) return keel_error_set(err, EINVAL, "%s: unknown key \"%s\"", where, key);
  }
  return 0;
}

/* An optional string member: 0 (absent: *out untouched), or an error. */
static int get_string(json_t *obj, const char *where, const char *key, const char **out, keel_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return keel_error_set(err, EINVAL, "%s.%s: expected a string", where, key);
  *out = json_string_value(v);
  return 0;
}

/* The entry of list `section` whose "name" is name, and its `inner` object. */
static int find_named(json_t *root, const char *section, const char *inner, const char *name, json_t **out,
                      char *where, size_t wlen, keel_error *err) {
  json_t *list = json_object_get(root, section);
  if (list && !json_is_array(list)) return keel_error_set(err, EINVAL, "%s: expected a list", section);
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    snprintf(where, wlen, "%s[%zu]", section, i);
    if (!json_is_object(e)) return keel_error_set(err, EINVAL, "%s: expected an object", where);
    static const char *const keys[] = {"name", "cluster", "user", "context", "extensions", NULL};
    int rc = only_keys(e, where, keys, err);
    if (rc < 0) return rc;
    const char *n = NULL;
    if ((rc = get_string(e, where, "name", &n, err)) < 0) return rc;
    if (!n || strcmp(n, name) != 0) continue;
    json_t *in = json_object_get(e, inner);
    if (!json_is_object(in)) return keel_error_set(err, EINVAL, "%s.%s: expected an object", where, inner);
    size_t l = strlen(where);
    snprintf(where + l, wlen - l, ".%s", inner);
    *out = in;
    return 0;
  }
  return keel_error_set(err, ENOENT, "%s: no entry named \"%s\"", section, name);
}

/* "https://h:p" -> tls, "h:p"; "http://h:p" -> "h:p"; "unix:/p" and "h:p" as they are. */
static int add_endpoint(client_config *cfg, const char *where, const char *ep, bool *https, bool *http,
                        keel_error *err) {
  const char *rest = ep;
  if (strncmp(ep, "https://", 8) == 0) {
    rest = ep + 8;
    *https = true;
  } else if (strncmp(ep, "http://", 7) == 0) {
    rest = ep + 7;
    *http = true;
  } else if (strstr(ep, "://") && strncmp(ep, "unix://", 7) != 0) {
    return keel_error_set(err, EINVAL, "%s: endpoint \"%s\": unknown scheme (want https://, http://, unix:)",
                          where, ep);
  }
  size_t len = strlen(rest);
  while (len > 0 && rest[len - 1] == '/') len--; /* "https://h:p/" */
  if (len == 0) return keel_error_set(err, EINVAL, "%s: empty endpoint", where);
  char **e = realloc(cfg->endpoints, (cfg->nendpoints + 1) * sizeof(*e));
  if (!e) return keel_error_set(err, ENOMEM, "out of memory");
  cfg->endpoints = e;
  if (!(e[cfg->nendpoints] = strndup(rest, len))) return keel_error_set(err, ENOMEM, "out of memory");
  cfg->nendpoints++;
  return 0;
}

static int read_token_file(const char *path, char **out, keel_error *err) {
  FILE *f = fopen(path, "r");
  if (!f) return keel_error_set_errno(err, errno, "token-file %s", path);
  char buf[8192];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  bool more = !feof(f);
  fclose(f);
  if (more) return keel_error_set(err, EFBIG, "token-file %s: over %zu bytes", path, sizeof(buf) - 1);
  buf[n] = 0;
  char *s = buf;
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r')) len--;
  if (len == 0) return keel_error_set(err, EINVAL, "token-file %s: empty", path);
  *out = strndup(s, len);
  return *out ? 0 : keel_error_set(err, ENOMEM, "out of memory");
}

static int parse_root(json_t *root, const char *base_dir, const char *context, client_config *cfg,
                      keel_error *err) {
  if (!json_is_object(root)) return keel_error_set(err, EINVAL, "expected a JSON object");
  static const char *const top[] = {"apiVersion", "kind", "preferences", "current-context",
                                    "clusters", "users", "contexts", NULL};
  int rc = only_keys(root, "config", top, err);
  if (rc < 0) return rc;
  const char *ctx_name = context;
  if (!ctx_name && (rc = get_string(root, "config", "current-context", &ctx_name, err)) < 0) return rc;
  if (!ctx_name || !*ctx_name) return keel_error_set(err, EINVAL, "no context given and no current-context");
  char where[128];
  json_t *ctx;
  if ((rc = find_named(root, "contexts", "context", ctx_name, &ctx, where, sizeof(where), err)) < 0) return rc;
  static const char *const ctx_keys[] = {"cluster", "user", "namespace", "extensions", NULL};
  if ((rc = only_keys(ctx, where, ctx_keys, err)) < 0) return rc;
  const char *cluster_name = NULL, *user_name = NULL, *ns = NULL;
  if ((rc = get_string(ctx, where, "cluster", &cluster_name, err)) < 0 ||
      (rc = get_string(ctx, where, "user", &user_name, err)) < 0 ||
      (rc = get_string(ctx, where, "namespace", &ns, err)) < 0)
    return rc;
  if (!cluster_name || !*cluster_name) return keel_error_set(err, EINVAL, "%s: no cluster", where);
  cfg->context = strdup(ctx_name);
  cfg->cluster = strdup(cluster_name);
  cfg->user = strdup(user_name ? user_name : "");
  cfg->namespace_ = strdup(ns && *ns ? ns : "default");

  json_t *cl;
  if ((rc = find_named(root, "clusters", "cluster", cluster_name, &cl, where, sizeof(where), err)) < 0) return rc;
  static const char *const cl_keys[] = {"endpoints", "server", "certificate-authority", "tls-server-name",
                                        "extensions", NULL};
  if ((rc = only_keys(cl, where, cl_keys, err)) < 0) return rc;
  bool https = false, http = false;
  const char *server = NULL, *ca = NULL, *sni = NULL;
  if ((rc = get_string(cl, where, "server", &server, err)) < 0 ||
      (rc = get_string(cl, where, "certificate-authority", &ca, err)) < 0 ||
      (rc = get_string(cl, where, "tls-server-name", &sni, err)) < 0)
    return rc;
  json_t *eps = json_object_get(cl, "endpoints");
  if (eps && !json_is_array(eps)) return keel_error_set(err, EINVAL, "%s.endpoints: expected a list", where);
  size_t i;
  json_t *e;
  json_array_foreach(eps, i, e) {
    if (!json_is_string(e)) return keel_error_set(err, EINVAL, "%s.endpoints[%zu]: expected a string", where, i);
    if ((rc = add_endpoint(cfg, where, json_string_value(e), &https, &http, err)) < 0) return rc;
  }
  if (server && (rc = add_endpoint(cfg, where, server, &https, &http, err)) < 0) return rc;
  if (cfg->nendpoints == 0) return keel_error_set(err, EINVAL, "%s: no endpoints (\"endpoints\" or \"server\")", where);
  if (ca && !(cfg->ca_file = resolve_path(base_dir, ca))) return keel_error_set(err, ENOMEM, "out of memory");
  if (sni && !(cfg->server_name = strdup(sni))) return keel_error_set(err, ENOMEM, "out of memory");

  if (user_name && *user_name) {
    json_t *u;
    if ((rc = find_named(root, "users", "user", user_name, &u, where, sizeof(where), err)) < 0) return rc;
    static const char *const u_keys[] = {"token", "token-file", "client-certificate", "client-key",
                                         "extensions", NULL};
    if ((rc = only_keys(u, where, u_keys, err)) < 0) return rc;
    const char *tok = NULL, *tok_file = NULL, *cert = NULL, *key = NULL;
    if ((rc = get_string(u, where, "token", &tok, err)) < 0 ||
        (rc = get_string(u, where, "token-file", &tok_file, err)) < 0 ||
        (rc = get_string(u, where, "client-certificate", &cert, err)) < 0 ||
        (rc = get_string(u, where, "client-key", &key, err)) < 0)
      return rc;
    if (tok && tok_file) return keel_error_set(err, EINVAL, "%s: token and token-file are exclusive", where);
    if ((cert != NULL) != (key != NULL))
      return keel_error_set(err, EINVAL, "%s: client-certificate and client-key go together", where);
    if (tok && !(cfg->token = strdup(tok))) return keel_error_set(err, ENOMEM, "out of memory");
    if (tok_file) {
      char *p = resolve_path(base_dir, tok_file);
      if (!p) return keel_error_set(err, ENOMEM, "out of memory");
      rc = read_token_file(p, &cfg->token, err);
      free(p);
      if (rc < 0) return keel_error_wrap(err, "%s", where);
    }
    if (cert && (!(cfg->cert_file = resolve_path(base_dir, cert)) || !(cfg->key_file = resolve_path(base_dir, key))))
      return keel_error_set(err, ENOMEM, "out of memory");
  }
  cfg->tls = https || cfg->ca_file || cfg->cert_file;
  if (cfg->tls && http)
    return keel_error_set(err, EINVAL, "cluster %s: an http:// endpoint with TLS settings", cluster_name);
  if (!cfg->context || !cfg->cluster || !cfg->user || !cfg->namespace_)
    return keel_error_set(err, ENOMEM, "out of memory");
  return 0;
}

int client_config_parse(const char *text, size_t len, const char *base_dir, const char *context,
                        client_config *cfg, keel_error *err) {
  memset(cfg, 0, sizeof(*cfg));
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return keel_error_set(err, EINVAL, "line %d column %d: %s", je.line, je.column, je.text);
  int rc = parse_root(root, base_dir, context, cfg, err);
  json_decref(root);
  if (rc < 0) client_config_clear(cfg);
  return rc;
}

int client_config_load(const char *path, const char *context, client_config *cfg, keel_error *err) {
  memset(cfg, 0, sizeof(*cfg));
  FILE *f = fopen(path, "r");
  if (!f) return keel_error_set_errno(err, errno, "client config %s", path);
  char *text = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len + 4096 > cap) {
      if (cap >= (1u << 24)) {
        free(text);
        fclose(f);
        return keel_error_set(err, EFBIG, "client config %s: over 16 MiB", path);
      }
      char *t = realloc(text, cap = cap ? cap * 2 : 8192);
      if (!t) {
        free(text);
        fclose(f);
        return keel_error_set(err, ENOMEM, "client config %s: out of memory", path);
      }
      text = t;
    }
    size_t n = fread(text + len, 1, cap - len, f);
    len += n;
    if (n == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(text);
    return keel_error_set(err, EIO, "client config %s: read error", path);
  }
  char *dir = strdup(path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash) *slash = 0;
  int rc = client_config_parse(text, len, slash ? (dir[0] ? dir : "/") : NULL, context, cfg, err);
  free(dir);
  free(text);
  if (rc < 0) keel_error_wrap(err, "client config %s", path);
  return rc;
}
