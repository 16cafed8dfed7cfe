/* cli/config_cmd.c — `keel config`: contexts, clusters (endpoints, CA) and
 * users (token, token file, client certificate) in the client config file,
 * as `kubectl config` edits a kubeconfig.
 *
 * The file is read as YAML or JSON and written back as JSON (config_file.h);
 * file paths given to set-cluster and set-credentials are stored absolute,
 * so the file means the same from any directory. `view` prints YAML with
 * tokens shown as REDACTED unless --raw. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config_file.h"
#include "cli/printers.h"

static const char *config_path(cli *x, char *buf, size_t len) {
  const char *p = x->config_path;
  if (!p || !*p) p = getenv("KEEL_CONFIG");
  if (p && *p) {
    snprintf(buf, len, "%s", p);
    return buf;
  }
  return client_config_default_path(buf, len);
}

/* The config, or an empty one when the file does not exist yet. */
static json_t *load(cli *x, const char *path, bool must_exist) {
  json_t *root = NULL;
  keel_error err = {0};
  int rc = config_file_read(path, &root, &err);
  if (rc == -ENOENT && !must_exist) {
    root = json_pack("{s:s, s:s, s:[], s:[], s:[]}", "apiVersion", "v1", "kind", "Config", "clusters", "users",
                     "contexts");
    if (!root) cli_error(x, "out of memory");
    return root;
  }
  if (rc == -ENOENT) {
    cli_error(x, "%s does not exist", path);
    return NULL;
  }
  if (rc < 0) {
    cli_error(x, "%s", err.message);
    return NULL;
  }
  return root;
}

static int save(cli *x, const char *path, json_t *root) {
  keel_error err = {0};
  if (config_file_write(path, root, &err) < 0) return cli_error(x, "%s", err.message), -1;
  return 0;
}

static json_t *section(json_t *root, const char *name) {
  json_t *s = json_object_get(root, name);
  if (!json_is_array(s)) {
    s = json_array();
    json_object_set_new(root, name, s);
  }
  return s;
}

/* The entry {"name": name, inner: {...}} of a section, or NULL. */
static json_t *find(json_t *root, const char *sec, const char *name, size_t *index) {
  json_t *s = json_object_get(root, sec);
  size_t i;
  json_t *e;
  json_array_foreach(s, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && strcmp(n, name) == 0) {
      if (index) *index = i;
      return e;
    }
  }
  return NULL;
}

/* The inner object of the named entry, created when missing. */
static json_t *ensure(json_t *root, const char *sec, const char *inner, const char *name, bool *created) {
  json_t *e = find(root, sec, name, NULL);
  *created = e == NULL;
  if (!e) {
    e = json_pack("{s:s, s:{}}", "name", name, inner);
    json_array_append_new(section(root, sec), e);
  }
  json_t *in = json_object_get(e, inner);
  if (!json_is_object(in)) {
    in = json_object();
    json_object_set_new(e, inner, in);
  }
  return in;
}

static char *absolute(const char *p) {
  if (!p || p[0] == '/') return p ? strdup(p) : NULL;
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) return strdup(p);
  char *out = NULL;
  return asprintf(&out, "%s/%s", cwd, p) < 0 ? NULL : out;
}

static void set_path(json_t *obj, const char *key, const char *value) {
  if (!value) return;
  if (!*value) {
    json_object_del(obj, key);
    return;
  }
  char *abs = absolute(value);
  json_object_set_new(obj, key, json_string(abs ? abs : value));
  free(abs);
}

static void set_string(json_t *obj, const char *key, const char *value) {
  if (!value) return;
  if (!*value) json_object_del(obj, key);
  else json_object_set_new(obj, key, json_string(value));
}

/* ---------------------------------------------------------------- commands */

static int usage_error(cli *x, const char *usage) {
  return cli_error(x, "unexpected arguments\nUsage: %s", usage);
}

static int view(cli *x, int argc, char **argv) {
  bool raw = false, minify = false;
  char *output = "yaml";
  flag_def defs[] = {FLAG_BOOL("raw", &raw, "show tokens"),
                     FLAG_BOOL("minify", &minify, "only the current context, its cluster and its user"),
                     FLAG_STRING("output", &output, "yaml or json (-o)"), FLAG_END};
  int prc = cli_parse(x, "keel config view", "Print the config (tokens redacted unless --raw).", defs,
                      CLI_FLAGS_CONFIG, argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  if (strcmp(output, "yaml") && strcmp(output, "json")) return cli_error(x, "--output must be yaml or json");
  char path[4096];
  if (!config_path(x, path, sizeof(path))) return cli_error(x, "config path too long");
  json_t *root = load(x, path, false);
  if (!root) return 1;
  if (minify) {
    const char *cur = json_string_value(json_object_get(root, "current-context"));
    if (!cur || !*cur) {
      json_decref(root);
      return cli_error(x, "current-context must exist in order to minify");
    }
    json_t *ctx = find(root, "contexts", cur, NULL);
    const char *cl = ctx ? json_string_value(json_object_get(json_object_get(ctx, "context"), "cluster")) : NULL;
    const char *us = ctx ? json_string_value(json_object_get(json_object_get(ctx, "context"), "user")) : NULL;
    json_t *min = json_pack("{s:s, s:s, s:s, s:[], s:[], s:[]}", "apiVersion", "v1", "kind", "Config",
                            "current-context", cur, "clusters", "users", "contexts");
    if (ctx) json_array_append(json_object_get(min, "contexts"), ctx);
    json_t *e;
    if (cl && (e = find(root, "clusters", cl, NULL))) json_array_append(json_object_get(min, "clusters"), e);
    if (us && (e = find(root, "users", us, NULL))) json_array_append(json_object_get(min, "users"), e);
    json_decref(root);
    root = min;
  }
  if (!raw) {
    /* Copy before redacting: entries may be shared with the loaded root. */
    json_t *copy = json_deep_copy(root);
    json_decref(root);
    root = copy;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(root, "users"), i, u) {
      json_t *in = json_object_get(u, "user");
      if (json_object_get(in, "token")) json_object_set_new(in, "token", json_string("REDACTED"));
    }
  }
  keel_error err = {0};
  char *text = strcmp(output, "json") == 0 ? json_dumps(root, JSON_INDENT(4)) : manifest_json_to_yaml(root, 0, &err);
  json_decref(root);
  if (!text) return cli_error(x, "%s", *err.message ? err.message : "out of memory");
  fputs(text, stdout);
  if (strcmp(output, "json") == 0) fputc('\n', stdout);
  free(text);
  return 0;
}

static int current_context(cli *x, int argc, char **argv) {
  flag_def defs[] = {FLAG_END};
  int prc = cli_parse(x, "keel config current-context", "Print the current context's name.", defs, CLI_FLAGS_CONFIG,
                      argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  char path[4096];
  if (!config_path(x, path, sizeof(path))) return cli_error(x, "config path too long");
  json_t *root = load(x, path, false);
  if (!root) return 1;
  const char *cur = json_string_value(json_object_get(root, "current-context"));
  int rc = 0;
  if (cur && *cur) printf("%s\n", cur);
  else rc = cli_error(x, "current-context is not set");
  json_decref(root);
  return rc;
}

static int get_contexts(cli *x, int argc, char **argv) {
  bool no_headers = false;
  char *output = "";
  flag_def defs[] = {FLAG_BOOL("no-headers", &no_headers, "no header line"),
                     FLAG_STRING("output", &output, "-o name: names only"), FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config get-contexts [NAME...]", "List the config's contexts.", defs, CLI_FLAGS_CONFIG,
                      argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  char path[4096];
  json_t *root = config_path(x, path, sizeof(path)) ? load(x, path, false) : NULL;
  int rc = 0;
  if (!root) {
    flags_free_positional(pos);
    return 1;
  }
  const char *cur = json_string_value(json_object_get(root, "current-context"));
  tabwriter *tw = printers_table_new();
  bool names = strcmp(output, "name") == 0;
  if (!no_headers && !names) tabwriter_write(tw, "CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE\n");
  for (int i = 0; i < npos; i++)
    if (!find(root, "contexts", pos[i], NULL)) rc = cli_error(x, "context %s not found", pos[i]);
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(root, "contexts"), i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!name) continue;
    bool wanted = npos == 0;
    for (int j = 0; j < npos; j++) wanted = wanted || strcmp(pos[j], name) == 0;
    if (!wanted) continue;
    json_t *c = json_object_get(e, "context");
    const char *cl = json_string_value(json_object_get(c, "cluster"));
    const char *us = json_string_value(json_object_get(c, "user"));
    const char *ns = json_string_value(json_object_get(c, "namespace"));
    if (names) printf("%s\n", name);
    else tabwriter_printf(tw, "%s\t%s\t%s\t%s\t%s\n", cur && strcmp(cur, name) == 0 ? "*" : "", name, cl ? cl : "",
                          us ? us : "", ns ? ns : "");
  }
  tabwriter_flush(tw, stdout);
  tabwriter_free(tw);
  json_decref(root);
  flags_free_positional(pos);
  return rc;
}

static int get_names(cli *x, int argc, char **argv, const char *sec, const char *title) {
  flag_def defs[] = {FLAG_END};
  char usage[64];
  snprintf(usage, sizeof(usage), "keel config get-%s", sec);
  int prc = cli_parse(x, usage, "List names in the config.", defs, CLI_FLAGS_CONFIG, argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  char path[4096];
  json_t *root = config_path(x, path, sizeof(path)) ? load(x, path, false) : NULL;
  if (!root) return 1;
  printf("%s\n", title);
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(root, sec), i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (name) printf("%s\n", name);
  }
  json_decref(root);
  return 0;
}

static int use_context(cli *x, int argc, char **argv) {
  flag_def defs[] = {FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config use-context NAME", "Make NAME the current context.", defs, CLI_FLAGS_CONFIG,
                      argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  if (npos != 1) {
    usage_error(x, "keel config use-context NAME");
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, true))) {
  } else if (!find(root, "contexts", pos[0], NULL)) {
    cli_error(x, "no context exists with the name: \"%s\"", pos[0]);
  } else {
    json_object_set_new(root, "current-context", json_string(pos[0]));
    if (save(x, path, root) == 0) {
      printf("Switched to context \"%s\".\n", pos[0]);
      rc = 0;
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  return rc;
}

static int set_context(cli *x, int argc, char **argv) {
  char *cluster = NULL, *user = NULL, *ns = NULL;
  bool current = false;
  flag_def defs[] = {FLAG_STRING("cluster", &cluster, "the context's cluster"),
                     FLAG_STRING("user", &user, "the context's user"),
                     FLAG_STRING("namespace", &ns, "the context's default namespace (-n)"),
                     FLAG_BOOL("current", &current, "modify the current context"), FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config set-context (NAME | --current) [--cluster=C] [--user=U] [--namespace=NS]",
                      "Create or modify a context.", defs, CLI_FLAGS_CONFIG, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  if ((npos != 1 && !current) || (npos > 0 && current)) {
    usage_error(x, "keel config set-context (NAME | --current) [--cluster=C] [--user=U] [--namespace=NS]");
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, false))) {
  } else {
    const char *name = current ? json_string_value(json_object_get(root, "current-context")) : pos[0];
    if (!name || !*name) {
      cli_error(x, "no current context is set");
    } else {
      char *n = strdup(name); /* name may point into root, which changes */
      bool created;
      json_t *c = ensure(root, "contexts", "context", n, &created);
      set_string(c, "cluster", cluster);
      set_string(c, "user", user);
      set_string(c, "namespace", ns);
      if (save(x, path, root) == 0) {
        printf("Context \"%s\" %s.\n", n, created ? "created" : "modified");
        rc = 0;
      }
      free(n);
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

static int set_cluster(cli *x, int argc, char **argv) {
  char *server = NULL, *ca = NULL, *sni = NULL;
  flag_string_list endpoints = {0};
  flag_def defs[] = {
      FLAG_STRING("server", &server, "the cluster's address: https://host:port, host:port or unix:/path"),
      FLAG_STRING_LIST("endpoints", &endpoints, "several apiserver addresses, tried in order (replaces the list)"),
      FLAG_STRING("certificate-authority", &ca, "CA file verifying the apiserver (TLS)"),
      FLAG_STRING("tls-server-name", &sni, "name the apiserver's certificate must carry"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config set-cluster NAME [--server=URL] [--endpoints=A,B] [--certificate-authority=FILE]",
                      "Create or modify a cluster.", defs, CLI_FLAGS_CONFIG, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  if (npos != 1) {
    usage_error(x, "keel config set-cluster NAME [--server=URL] [--certificate-authority=FILE]");
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, false))) {
  } else {
    bool created;
    json_t *c = ensure(root, "clusters", "cluster", pos[0], &created);
    set_string(c, "server", server);
    if (endpoints.count > 0) {
      json_t *eps = json_array();
      for (int i = 0; i < endpoints.count; i++) json_array_append_new(eps, json_string(endpoints.items[i]));
      json_object_set_new(c, "endpoints", eps);
    }
    set_path(c, "certificate-authority", ca);
    set_string(c, "tls-server-name", sni);
    if (save(x, path, root) == 0) {
      printf("Cluster \"%s\" set.\n", pos[0]);
      rc = 0;
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

static int set_credentials(cli *x, int argc, char **argv) {
  char *token = NULL, *token_file = NULL, *cert = NULL, *key = NULL;
  flag_def defs[] = {
      FLAG_STRING("token", &token, "bearer token"),
      FLAG_STRING("token-file", &token_file, "file holding the bearer token"),
      FLAG_STRING("client-certificate", &cert, "client certificate file (mutual TLS)"),
      FLAG_STRING("client-key", &key, "key of --client-certificate"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config set-credentials NAME [--token=T | --token-file=F] [--client-certificate=C --client-key=K]",
                      "Create or modify a user.", defs, CLI_FLAGS_CONFIG, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  if (npos != 1) {
    usage_error(x, "keel config set-credentials NAME [--token=T] [--client-certificate=C --client-key=K]");
  } else if (token && token_file) {
    cli_error(x, "--token and --token-file are exclusive");
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, false))) {
  } else {
    bool created;
    json_t *u = ensure(root, "users", "user", pos[0], &created);
    if (token) json_object_del(u, "token-file");
    if (token_file) json_object_del(u, "token");
    set_string(u, "token", token);
    set_path(u, "token-file", token_file);
    set_path(u, "client-certificate", cert);
    set_path(u, "client-key", key);
    if (save(x, path, root) == 0) {
      printf("User \"%s\" set.\n", pos[0]);
      rc = 0;
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

static int delete_entry(cli *x, int argc, char **argv, const char *sec, const char *what) {
  flag_def defs[] = {FLAG_END};
  char usage[64];
  snprintf(usage, sizeof(usage), "keel config delete-%s NAME", what);
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, usage, "Remove an entry from the config.", defs, CLI_FLAGS_CONFIG, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  size_t index;
  if (npos != 1) {
    usage_error(x, usage);
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, true))) {
  } else if (!find(root, sec, pos[0], &index)) {
    cli_error(x, "cannot delete %s %s, not in %s", what, pos[0], path);
  } else {
    json_array_remove(json_object_get(root, sec), index);
    const char *cur = json_string_value(json_object_get(root, "current-context"));
    bool was_current = strcmp(what, "context") == 0 && cur && strcmp(cur, pos[0]) == 0;
    if (was_current) fprintf(stderr, "warning: this removed your active context, use \"keel config use-context\" to select a different one\n");
    if (save(x, path, root) == 0) {
      printf("deleted %s %s from %s\n", what, pos[0], path);
      rc = 0;
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  return rc;
}

static int rename_context(cli *x, int argc, char **argv) {
  flag_def defs[] = {FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel config rename-context OLD NEW", "Rename a context.", defs, CLI_FLAGS_CONFIG, argc, argv,
                      &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  char path[4096];
  json_t *root = NULL;
  json_t *e;
  if (npos != 2) {
    usage_error(x, "keel config rename-context OLD NEW");
  } else if (!config_path(x, path, sizeof(path)) || !(root = load(x, path, true))) {
  } else if (!(e = find(root, "contexts", pos[0], NULL))) {
    cli_error(x, "cannot rename the context \"%s\", it's not in %s", pos[0], path);
  } else if (find(root, "contexts", pos[1], NULL)) {
    cli_error(x, "cannot rename the context \"%s\", the context \"%s\" already exists in %s", pos[0], pos[1], path);
  } else {
    json_object_set_new(e, "name", json_string(pos[1]));
    const char *cur = json_string_value(json_object_get(root, "current-context"));
    if (cur && strcmp(cur, pos[0]) == 0) json_object_set_new(root, "current-context", json_string(pos[1]));
    if (save(x, path, root) == 0) {
      printf("Context \"%s\" renamed to \"%s\".\n", pos[0], pos[1]);
      rc = 0;
    }
  }
  json_decref(root);
  flags_free_positional(pos);
  return rc;
}

int cmd_config(cli *x, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  int sargc = argc - 1;
  char **sargv = argv + 1;
  if (strcmp(sub, "view") == 0) return view(x, sargc, sargv);
  if (strcmp(sub, "current-context") == 0) return current_context(x, sargc, sargv);
  if (strcmp(sub, "get-contexts") == 0) return get_contexts(x, sargc, sargv);
  if (strcmp(sub, "get-clusters") == 0) return get_names(x, sargc, sargv, "clusters", "NAME");
  if (strcmp(sub, "get-users") == 0) return get_names(x, sargc, sargv, "users", "NAME");
  if (strcmp(sub, "use-context") == 0) return use_context(x, sargc, sargv);
  if (strcmp(sub, "set-context") == 0) return set_context(x, sargc, sargv);
  if (strcmp(sub, "set-cluster") == 0) return set_cluster(x, sargc, sargv);
  if (strcmp(sub, "set-credentials") == 0) return set_credentials(x, sargc, sargv);
  if (strcmp(sub, "delete-context") == 0) return delete_entry(x, sargc, sargv, "contexts", "context");
  if (strcmp(sub, "delete-cluster") == 0) return delete_entry(x, sargc, sargv, "clusters", "cluster");
  if (strcmp(sub, "delete-user") == 0) return delete_entry(x, sargc, sargv, "users", "user");
  if (strcmp(sub, "rename-context") == 0) return rename_context(x, sargc, sargv);
  bool help = !*sub || strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0;
  if (!help) cli_error(x, "unknown config command \"%s\"", sub);
  fprintf(help ? stdout : stderr,
          "Usage: keel config COMMAND [flags]\n\n"
          "Edit the client config file (--config, $KEEL_CONFIG, else ~/.keel/config).\n\n"
          "Commands:\n"
          "  view               print the config (--raw shows tokens, --minify the current context only)\n"
          "  current-context    print the current context\n"
          "  get-contexts       list contexts\n"
          "  get-clusters       list clusters\n"
          "  get-users          list users\n"
          "  use-context        set the current context\n"
          "  set-context        create or modify a context (--cluster, --user, --namespace)\n"
          "  set-cluster        create or modify a cluster (--server, --endpoints, --certificate-authority)\n"
          "  set-credentials    create or modify a user (--token, --token-file, --client-certificate/--client-key)\n"
          "  delete-context     remove a context\n"
          "  delete-cluster     remove a cluster\n"
          "  delete-user        remove a user\n"
          "  rename-context     rename a context\n");
  return help ? 0 : 1;
}
