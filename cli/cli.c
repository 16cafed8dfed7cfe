/* cli/cli.c — see cli.h: arguments, the connection, errors, object refs.
 *
 * The connection is made lazily: `keel config`, `keel completion` and
 * `keel version --client` never read the cluster config, and a command that
 * fails on its arguments fails before dialing anything. */
#define _GNU_SOURCE
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/config_file.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;

#define RED "\x1b[31m"
#define RESET "\x1b[0m"

/* Strings the short-flag rewriting made; flag values point into them. */
static char **g_owned;
static int g_nowned;

void cli_init(cli *x) {
  memset(x, 0, sizeof(*x));
  x->request_timeout_ms = 30000;
  bool no_color = getenv("NO_COLOR") && *getenv("NO_COLOR");
  const char *term = getenv("TERM");
  bool dumb = term && strcmp(term, "dumb") == 0;
  x->color_out = !no_color && !dumb && isatty(STDOUT_FILENO);
  x->color_err = !no_color && !dumb && isatty(STDERR_FILENO);
}

void cli_destroy(cli *x) {
  if (x->c) client_free(x->c);
  if (x->pj) protojson_destroy(x->pj);
  if (x->have_cfg) client_config_clear(&x->cfg);
  for (int i = 0; i < g_nowned; i++) free(g_owned[i]);
  free(g_owned);
  g_owned = NULL;
  g_nowned = 0;
  memset(x, 0, sizeof(*x));
}

int64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- errors */

static void verror(cli *x, const char *fmt, va_list ap) {
  fflush(stdout);
  fprintf(stderr, "%serror:%s ", x && x->color_err ? RED : "", x && x->color_err ? RESET : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_error(cli *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(x, fmt, ap);
  va_end(ap);
  return 1;
}

const char *cli_status_reason(const client_status *st) {
  switch (st->code) {
    case GRPC_STATUS_NOT_FOUND: return "NotFound";
    case GRPC_STATUS_ALREADY_EXISTS: return "AlreadyExists";
    case GRPC_STATUS_FAILED_PRECONDITION: return api_message_is_conflict(st->message) ? "Conflict" : "BadRequest";
    case GRPC_STATUS_ABORTED: return "Conflict";
    case GRPC_STATUS_INVALID_ARGUMENT: return strstr(st->message, "is invalid") ? "Invalid" : "BadRequest";
    case GRPC_STATUS_PERMISSION_DENIED: return "Forbidden";
    case GRPC_STATUS_UNAUTHENTICATED: return "Unauthorized";
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return "TooManyRequests";
    case GRPC_STATUS_OUT_OF_RANGE: return "Expired";
    case GRPC_STATUS_UNAVAILABLE: return "ServiceUnavailable";
    case GRPC_STATUS_DEADLINE_EXCEEDED: return "Timeout";
    case GRPC_STATUS_UNIMPLEMENTED: return "MethodNotAllowed";
    default: return "InternalError";
  }
}

static void endpoints_text(const cli *x, char *buf, size_t len) {
  buf[0] = 0;
  size_t off = 0;
  for (size_t i = 0; x->have_cfg && i < x->cfg.nendpoints && off < len; i++) {
    int n = snprintf(buf + off, len - off, "%s%s", i ? "," : "", x->cfg.endpoints[i]);
    if (n < 0) break;
    off += (size_t)n;
  }
}

int cli_server_error(cli *x, const client_status *st, const char *what) {
  fflush(stdout);
  if (strncmp(st->message, "client:", 7) == 0) return cli_error(x, "%s%s", what ? what : "", st->message);
  if (st->code == GRPC_STATUS_UNAVAILABLE || (st->code == GRPC_STATUS_DEADLINE_EXCEEDED && !*st->message)) {
    char eps[512];
    endpoints_text(x, eps, sizeof(eps));
    return cli_error(x, "%sunable to connect to the server at %s: %s", what ? what : "", eps,
                     *st->message ? st->message : rpc_status_code_name(st->code));
  }
  fprintf(stderr, "%sError from server (%s):%s %s%s\n", x->color_err ? RED : "", cli_status_reason(st),
          x->color_err ? RESET : "", what ? what : "", st->message);
  return 1;
}

/* ---------------------------------------------------------------- arguments */

typedef struct short_flag {
  char c;
  const char *name;
  bool value;
} short_flag;

static const short_flag shorts[] = {
    {'n', "namespace", true}, {'o', "output", true},     {'l', "selector", true}, {'f', "filename", true},
    {'c', "container", true}, {'A', "all-namespaces", false}, {'w', "watch", false}, {'i', "stdin", false},
    {'t', "tty", false},      {'p', "previous", false},  {'R', "recursive", false},
};

static const short_flag *find_short(char c) {
  for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++)
    if (shorts[i].c == c) return &shorts[i];
  return NULL;
}

static bool all_known_shorts(const char *s) {
  for (; *s; s++) {
    const short_flag *f = find_short(*s);
    if (!f) return false;
    if (f->value) return true; /* the rest is its value */
  }
  return true;
}

char **cli_expand_short_flags(int argc, char **argv, int *out_argc, char ***owned, int *nowned) {
  /* Each short letter becomes at most one word; a value short may swallow
   * the next word. So argc words become at most argc + (letters) words. */
  size_t cap = 1;
  for (int i = 0; i < argc; i++) cap += strlen(argv[i]) + 1;
  char **out = calloc(cap, sizeof(*out));
  char **own = calloc(cap, sizeof(*own));
  if (!out || !own) {
    free(out);
    free(own);
    return NULL;
  }
  int n = 0, no = 0;
  bool ended = false;
  for (int i = 0; i < argc; i++) {
    char *a = argv[i];
    if (i == 0 || ended || a[0] != '-' || a[1] == '\0' || a[1] == '-' || strcmp(a, "-h") == 0 ||
        !all_known_shorts(a + 1)) {
      if (strcmp(a, "--") == 0) ended = true;
      out[n++] = a; /* flags_parse reports unknown single-dash words itself */
      continue;
    }
    for (const char *p = a + 1; *p; p++) {
      const short_flag *f = find_short(*p);
      char *word = NULL;
      if (!f->value) {
        if (asprintf(&word, "--%s", f->name) < 0) goto oom;
      } else {
        const char *v = p + 1;
        if (*v == '=') v++;
        if (*v) {
          if (asprintf(&word, "--%s=%s", f->name, v) < 0) goto oom;
        } else if (i + 1 < argc) {
          if (asprintf(&word, "--%s=%s", f->name, argv[++i]) < 0) goto oom;
        } else {
          if (asprintf(&word, "--%s", f->name) < 0) goto oom; /* flags_parse: missing value */
        }
        own[no++] = word;
        out[n++] = word;
        break;
      }
      own[no++] = word;
      out[n++] = word;
    }
  }
  out[n] = NULL;
  *out_argc = n;
  *owned = own;
  *nowned = no;
  return out;
oom:
  for (int k = 0; k < no; k++) free(own[k]);
  free(own);
  free(out);
  return NULL;
}

void cli_free_expanded(char **argv, char **owned, int nowned) {
  for (int i = 0; i < nowned; i++) free(owned[i]);
  free(owned);
  free(argv);
}

static size_t count_defs(const flag_def *d) {
  size_t n = 0;
  while (d && d[n].type != FLAG_TYPE_END) n++;
  return n;
}

int cli_parse(cli *x, const char *usage, const char *summary, const flag_def *defs, unsigned sets, int argc,
              char **argv, char ***pos, int *npos) {
  const flag_def connect[] = {
      FLAG_STRING("namespace", &x->namespace_, "namespace of the request (-n; default: the context's)"),
      FLAG_STRING("context", &x->context, "the config's context to use"),
      FLAG_STRING("config", &x->config_path, "client config file (default $KEEL_CONFIG, else ~/.keel/config)"),
      FLAG_STRING("server", &x->server, "apiserver address, replacing the context's: host:port, https://host:port, unix:/path"),
      FLAG_STRING("token", &x->token, "bearer token, replacing the context's"),
      FLAG_STRING("certificate-authority", &x->ca_file, "CA file to verify the server (TLS)"),
      FLAG_STRING("client-certificate", &x->cert_file, "client certificate file (mutual TLS)"),
      FLAG_STRING("client-key", &x->key_file, "key of --client-certificate"),
      FLAG_STRING("tls-server-name", &x->tls_server_name, "name the server certificate must carry"),
      FLAG_DURATION("request-timeout", &x->request_timeout_ms, "deadline of each request"),
      FLAG_END,
  };
  const flag_def config_only[] = {
      FLAG_STRING("config", &x->config_path, "client config file (default $KEEL_CONFIG, else ~/.keel/config)"),
      FLAG_END,
  };
  const flag_def *extra = (sets & CLI_FLAGS_CONNECT) ? connect : (sets & CLI_FLAGS_CONFIG) ? config_only : NULL;
  size_t nd = count_defs(defs), ne = count_defs(extra);
  flag_def *all = calloc(nd + ne + 1, sizeof(*all));
  if (!all) return cli_error(x, "out of memory"), -1;
  if (nd) memcpy(all, defs, nd * sizeof(*all));
  if (ne) memcpy(all + nd, extra, ne * sizeof(*all));
  int eargc = 0, nowned = 0;
  char **owned = NULL;
  char **eargv = cli_expand_short_flags(argc, argv, &eargc, &owned, &nowned);
  if (!eargv) {
    free(all);
    return cli_error(x, "out of memory"), -1;
  }
  keel_error err = {0};
  int rc = flags_parse(usage, summary, all, eargc, eargv, pos, npos, &err);
  free(all);
  free(eargv); /* the words themselves live on: flag values point into them */
  char **grown = realloc(g_owned, (size_t)(g_nowned + nowned + 1) * sizeof(*grown));
  if (grown) {
    g_owned = grown;
    for (int i = 0; i < nowned; i++) g_owned[g_nowned++] = owned[i];
  }
  free(owned);
  if (rc == FLAGS_HELP) return 1;
  if (rc < 0) {
    cli_error(x, "%s\nSee '%s --help' for usage.", err.message, usage);
    return -1;
  }
  return 0;
}

void cli_parse_done(const flag_def *defs) {
  flags_free_lists(defs);
}

/* ---------------------------------------------------------------- config */

static int set_endpoint_from_url(client_config *cfg, const char *url, keel_error *err) {
  const char *rest = url;
  bool https = false;
  if (strncmp(url, "https://", 8) == 0) {
    rest = url + 8;
    https = true;
  } else if (strncmp(url, "http://", 7) == 0) {
    rest = url + 7;
  } else if (strstr(url, "://")) {
    return keel_error_set(err, EINVAL, "--server %s: unknown scheme (want https://, http://, unix:)", url);
  }
  size_t len = strlen(rest);
  while (len > 0 && rest[len - 1] == '/') len--;
  if (len == 0) return keel_error_set(err, EINVAL, "--server: empty address");
  for (size_t i = 0; i < cfg->nendpoints; i++) free(cfg->endpoints[i]);
  free(cfg->endpoints);
  cfg->endpoints = calloc(1, sizeof(char *));
  cfg->nendpoints = 0;
  if (!cfg->endpoints || !(cfg->endpoints[0] = strndup(rest, len))) return keel_error_set(err, ENOMEM, "out of memory");
  cfg->nendpoints = 1;
  if (https) cfg->tls = true;
  else if (strncmp(url, "http://", 7) == 0) cfg->tls = false;
  return 0;
}

static void replace(char **slot, const char *v) {
  free(*slot);
  *slot = v ? strdup(v) : NULL;
}

int cli_load_config(cli *x) {
  if (x->have_cfg) return 0;
  const char *path = x->config_path;
  if (!path || !*path) path = getenv("KEEL_CONFIG");
  if (!path || !*path) path = client_config_default_path(x->config_file, sizeof(x->config_file));
  if (!path) return cli_error(x, "no client config path: set --config or $KEEL_CONFIG"), -1;
  if (path != x->config_file) snprintf(x->config_file, sizeof(x->config_file), "%s", path);
  keel_error err = {0};
  client_config *cfg = &x->cfg;
  memset(cfg, 0, sizeof(*cfg));
  json_t *root = NULL;
  int rc = config_file_read(x->config_file, &root, &err);
  if (rc == -ENOENT && x->server && (!x->context || !*x->context)) {
    /* No file: --server (and --token) alone describe the cluster. */
    cfg->context = strdup("");
    cfg->cluster = strdup("");
    cfg->user = strdup("");
    cfg->namespace_ = strdup("default");
  } else if (rc == -ENOENT) {
    return cli_error(x,
                     "no configuration: %s does not exist; create it with `keel config set-cluster` and "
                     "`keel config set-context`, or pass --server",
                     x->config_file),
           -1;
  } else if (rc < 0) {
    return cli_error(x, "client config %s", err.message), -1;
  } else {
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *dir = config_file_dir(x->config_file);
    if (!text || !dir) {
      free(text);
      free(dir);
      return cli_error(x, "out of memory"), -1;
    }
    rc = client_config_parse(text, strlen(text), dir, x->context, cfg, &err);
    free(text);
    free(dir);
    if (rc < 0) return cli_error(x, "client config %s: %s", x->config_file, err.message), -1;
  }
  x->have_cfg = true;
  if (x->server && *x->server && set_endpoint_from_url(cfg, x->server, &err) < 0)
    return cli_error(x, "%s", err.message), -1;
  if (x->token && *x->token) {
    replace(&cfg->token, x->token);
    /* A token given on the command line replaces the context's identity. */
    replace(&cfg->cert_file, NULL);
    replace(&cfg->key_file, NULL);
  }
  if (x->ca_file && *x->ca_file) {
    replace(&cfg->ca_file, x->ca_file);
    cfg->tls = true;
  }
  if ((x->cert_file && *x->cert_file) != (x->key_file && *x->key_file))
    return cli_error(x, "--client-certificate and --client-key go together"), -1;
  if (x->cert_file && *x->cert_file) {
    replace(&cfg->cert_file, x->cert_file);
    replace(&cfg->key_file, x->key_file);
    cfg->tls = true;
  }
  if (x->tls_server_name && *x->tls_server_name) replace(&cfg->server_name, x->tls_server_name);
  if (cfg->nendpoints == 0) return cli_error(x, "no server: the context has no endpoints; pass --server"), -1;
  return 0;
}

client *cli_client(cli *x) {
  if (x->c) return x->c;
  if (cli_load_config(x) < 0) return NULL;
  client_options o;
  rpc_tls_config tls;
  client_config_options(&x->cfg, &o, &tls);
  o.timeout_ms = x->request_timeout_ms > 0 ? x->request_timeout_ms : 30000;
  keel_error err = {0};
  x->c = client_new(&o, &err);
  if (!x->c) cli_error(x, "%s", err.message);
  return x->c;
}

const char *cli_namespace(cli *x) {
  if (x->namespace_ && *x->namespace_) return x->namespace_;
  if (x->have_cfg && x->cfg.namespace_ && *x->cfg.namespace_) return x->cfg.namespace_;
  return "default";
}

const char *cli_object_namespace(cli *x, const api_kind *k) {
  return k->namespaced ? cli_namespace(x) : "";
}

protojson *cli_pj(cli *x) {
  if (x->pj) return x->pj;
  protojson_descriptor_set set = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  keel_error err = {0};
  x->pj = protojson_create(&set, 1, &err);
  if (!x->pj) cli_error(x, "%s", err.message);
  return x->pj;
}

client_call_options cli_call_opts(const cli *x, bool dry_run) {
  client_call_options o = {.timeout_ms = x->request_timeout_ms, .dry_run = dry_run};
  return o;
}

/* ---------------------------------------------------------------- objects */

const api_kind *cli_kind(cli *x, const char *name) {
  const api_kind *k = api_kind_by_name(name);
  if (!k) {
    /* "deployments.apps", "leases.coordination.k8s.io": resource.group */
    const char *dot = strchr(name, '.');
    if (dot) {
      char *head = strndup(name, (size_t)(dot - name));
      const api_kind *g = head ? api_kind_by_name(head) : NULL;
      free(head);
      if (g && strcasecmp(g->group, dot + 1) == 0) k = g;
    }
  }
  if (!k) cli_error(x, "the server doesn't have a resource type \"%s\"", name);
  return k;
}

static int add_ref(cli_ref **refs, size_t *n, const api_kind *k, const char *name) {
  cli_ref *r = realloc(*refs, (*n + 1) * sizeof(*r));
  if (!r) return -1;
  *refs = r;
  r[*n].kind = k;
  r[*n].name = name;
  (*n)++;
  return 0;
}

/* Splits "pods,svc" (or "all") into kinds, each added with name. */
static int add_kinds(cli *x, const char *types, const char *name, cli_ref **refs, size_t *n) {
  char *copy = strdup(types);
  if (!copy) return cli_error(x, "out of memory"), -1;
  int rc = 0;
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
    if (strcasecmp(t, "all") == 0) {
      static const char *const all[] = {"Pod", "Service", "Deployment", "ReplicaSet"};
      for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && rc == 0; i++)
        rc = add_ref(refs, n, api_kind_by_name(all[i]), name);
      continue;
    }
    const api_kind *k = cli_kind(x, t);
    if (!k) rc = -1;
    else rc = add_ref(refs, n, k, name);
  }
  free(copy);
  return rc;
}

int cli_parse_refs(cli *x, char **args, int nargs, bool allow_kind_only, cli_ref **refs, size_t *nrefs) {
  *refs = NULL;
  *nrefs = 0;
  if (nargs == 0) {
    cli_error(x, "you must specify the type of resource%s", allow_kind_only ? "" : " and its name");
    return -1;
  }
  if (strchr(args[0], '/')) {
    for (int i = 0; i < nargs; i++) {
      char *slash = strchr(args[i], '/');
      if (!slash) {
        cli_error(x,
                  "there is no need to specify a resource type as a separate argument when passing arguments in "
                  "resource/name form (e.g. 'keel get resource/<resource_name>' instead of 'keel get resource "
                  "resource/<resource_name>')");
        goto fail;
      }
      if (!slash[1]) {
        cli_error(x, "arguments in resource/name form must have a single resource and name: \"%s\"", args[i]);
        goto fail;
      }
      *slash = 0; /* argv is ours to cut */
      const api_kind *k = cli_kind(x, args[i]);
      *slash = '/';
      if (!k || add_ref(refs, nrefs, k, slash + 1) < 0) goto fail;
    }
    return 0;
  }
  if (nargs == 1) {
    if (!allow_kind_only) {
      cli_error(x, "you must specify the name of the %s", args[0]);
      goto fail;
    }
    if (add_kinds(x, args[0], "", refs, nrefs) < 0) goto fail;
    return 0;
  }
  if (strcasecmp(args[0], "all") == 0 && !allow_kind_only) {
    cli_error(x, "\"all\" names several kinds; name one");
    goto fail;
  }
  for (int i = 1; i < nargs; i++) {
    if (strchr(args[i], '/')) {
      cli_error(x, "there is no need to specify a resource type as a separate argument when passing arguments in "
                   "resource/name form");
      goto fail;
    }
    if (add_kinds(x, args[0], args[i], refs, nrefs) < 0) goto fail;
  }
  return 0;
fail:
  free(*refs);
  *refs = NULL;
  *nrefs = 0;
  return -1;
}

int cli_read_manifests(cli *x, const flag_string_list *files, manifest_object **objs, size_t *n) {
  *objs = NULL;
  *n = 0;
  protojson *pj = cli_pj(x);
  if (!pj) return -1;
  for (int i = 0; i < files->count; i++) {
    manifest_object *more = NULL;
    size_t nmore = 0;
    keel_error err = {0};
    if (manifest_decode_path(pj, files->items[i], &more, &nmore, &err) < 0) {
      if (err.code == ENOENT) cli_error(x, "the path \"%s\" does not exist", files->items[i]);
      else cli_error(x, "%s", err.message);
      manifest_objects_free(*objs, *n);
      *objs = NULL;
      *n = 0;
      return -1;
    }
    manifest_object *all = realloc(*objs, (*n + nmore) * sizeof(*all));
    if (!all && *n + nmore > 0) {
      manifest_objects_free(more, nmore);
      manifest_objects_free(*objs, *n);
      *objs = NULL;
      *n = 0;
      return cli_error(x, "out of memory"), -1;
    }
    if (nmore) memcpy(all + *n, more, nmore * sizeof(*all));
    free(more);
    *objs = all;
    *n += nmore;
  }
  return 0;
}

int cli_targets_read(cli *x, const flag_string_list *files, char **args, int nargs, bool allow_kind_only,
                     cli_targets *t) {
  memset(t, 0, sizeof(*t));
  if (files->count == 0) return cli_parse_refs(x, args, nargs, allow_kind_only, &t->refs, &t->nrefs);
  if (cli_read_manifests(x, files, &t->objs, &t->nobjs) < 0) return -1;
  t->refs = calloc(t->nobjs ? t->nobjs : 1, sizeof(*t->refs));
  if (!t->refs) return cli_error(x, "out of memory"), -1;
  for (size_t i = 0; i < t->nobjs; i++) {
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(t->objs[i].kind, t->objs[i].msg);
    t->refs[i] = (cli_ref){t->objs[i].kind, m && m->name ? m->name : ""};
  }
  t->nrefs = t->nobjs;
  return 0;
}

const char *cli_targets_namespace(cli *x, const cli_targets *t, size_t i) {
  const api_kind *k = t->refs[i].kind;
  if (t->objs && k->namespaced) {
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, t->objs[i].msg);
    if (m && m->namespace_ && *m->namespace_) return m->namespace_;
  }
  return cli_object_namespace(x, k);
}

void cli_targets_free(cli_targets *t) {
  manifest_objects_free(t->objs, t->nobjs);
  free(t->refs);
  memset(t, 0, sizeof(*t));
}

int cli_parse_timeout(const char *text, int64_t *ms) {
  *ms = 0;
  if (!text || !*text) return 0;
  bool digits = true;
  for (const char *p = text; *p; p++)
    if (*p < '0' || *p > '9') digits = false;
  if (digits) return strspn(text, "0") == strlen(text) ? 0 : -1; /* "0" only: units are required */
  return flags_parse_duration_ms(text, ms) < 0 ? -1 : 0;
}

void cli_set_str(char **slot, const char *value) {
  char *copy = value && *value ? strdup(value) : NULL;
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = copy ? copy : (char *)protobuf_c_empty_string;
}

json_t *cli_object_json_for_compare(cli *x, const ProtobufCMessage *obj) {
  protojson *pj = cli_pj(x);
  if (!pj) return NULL;
  json_t *j = protojson_to_json(pj, obj, NULL);
  json_t *meta = j ? json_object_get(j, "metadata") : NULL;
  if (meta) json_object_del(meta, "resourceVersion");
  if (j) {
    json_object_del(j, "apiVersion");
    json_object_del(j, "kind");
  }
  return j;
}
