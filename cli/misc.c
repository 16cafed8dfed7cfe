/* cli/misc.c — `keel version`, `keel api-resources`, and `keel logs` /
 * `keel exec`.
 *
 * logs and exec parse kubectl's flags, find the pod, its container and its
 * node through the API, then stop: reading a container's log or running a
 * command in it is the node agent's work (CRI on the node), keel has no
 * agent yet, and keel.api.v1 has no log or exec call for the apiserver to
 * forward. They fail with "the pod's node agent is not reachable", exit 1. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/printers.h"
#include "grpc/health/v1/health.pb-c.h"

/* ---------------------------------------------------------------- version */

int cmd_version(cli *x, int argc, char **argv) {
  bool client_only = false;
  char *output = "";
  flag_def defs[] = {
      FLAG_BOOL("client", &client_only, "the client's version only (no server needed)"),
      FLAG_STRING("output", &output, "-o yaml or json"),
      FLAG_END,
  };
  int prc = cli_parse(x, "keel version", "Print the client's version and the server's (endpoint and health).", defs,
                      CLI_FLAGS_CONNECT, argc, argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  bool json = strcmp(output, "json") == 0, yaml = strcmp(output, "yaml") == 0;
  if (*output && !json && !yaml) return cli_error(x, "--output must be 'yaml' or 'json'");
  if (!json && !yaml) printf("Client Version: %s\n", KEEL_CLI_VERSION);
  fflush(stdout);
  if (client_only) {
    if (json) printf("{\n  \"clientVersion\": {\n    \"gitVersion\": \"%s\"\n  }\n}\n", KEEL_CLI_VERSION);
    if (yaml) printf("clientVersion:\n  gitVersion: %s\n", KEEL_CLI_VERSION);
    return 0;
  }
  client *c = cli_client(x);
  if (!c) return 1;
  /* keel-apiserver serves no version call yet: report where it is and
   * whether it answers grpc.health.v1. */
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  rpc_metadata md[1];
  char *auth = NULL;
  size_t nmd = 0;
  if (x->cfg.token && *x->cfg.token && asprintf(&auth, "Bearer %s", x->cfg.token) >= 0)
    md[nmd++] = (rpc_metadata){.key = "authorization", .value = auth, .value_len = strlen(auth)};
  rpc_call_options co = {.timeout_ms = x->request_timeout_ms > 0 ? x->request_timeout_ms : 10000,
                         .idempotent = true, .metadata = md, .nmetadata = nmd};
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  int rc = rpc_unary(client_channel(c), "/grpc.health.v1.Health/Check", &req.base,
                     &grpc__health__v1__health_check_response__descriptor, &resp, &co, &st);
  free(auth);
  const char *endpoint = rpc_channel_current_endpoint(client_channel(c));
  if (rc < 0) {
    client_status cs = {.code = st.code};
    snprintf(cs.message, sizeof(cs.message), "%s", st.message ? st.message : "");
    rpc_status_clear(&st);
    return cli_server_error(x, &cs, NULL);
  }
  rpc_status_clear(&st);
  const char *health = "UNKNOWN";
  switch (((Grpc__Health__V1__HealthCheckResponse *)resp)->status) {
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING: health = "SERVING"; break;
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING: health = "NOT_SERVING"; break;
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN: health = "SERVICE_UNKNOWN"; break;
    default: break;
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  if (json)
    printf("{\n  \"clientVersion\": {\n    \"gitVersion\": \"%s\"\n  },\n  \"server\": {\n    \"endpoint\": \"%s\",\n"
           "    \"health\": \"%s\"\n  }\n}\n",
           KEEL_CLI_VERSION, endpoint ? endpoint : "", health);
  else if (yaml)
    printf("clientVersion:\n  gitVersion: %s\nserver:\n  endpoint: %s\n  health: %s\n", KEEL_CLI_VERSION,
           endpoint ? endpoint : "", health);
  else
    printf("Server: %s (health: %s; keel-apiserver reports no version)\n", endpoint ? endpoint : "", health);
  return strcmp(health, "SERVING") == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- api-resources */

int cmd_api_resources(cli *x, int argc, char **argv) {
  char *output = "", *namespaced = "", *group = NULL;
  bool no_headers = false;
  flag_def defs[] = {
      FLAG_STRING("output", &output, "-o wide (with VERBS) or name"),
      FLAG_STRING("namespaced", &namespaced, "true: namespaced kinds only; false: cluster-scoped only"),
      FLAG_STRING("api-group", &group, "only this API group (\"\" is the core group)"),
      FLAG_BOOL("no-headers", &no_headers, "no header line"),
      FLAG_END,
  };
  int prc = cli_parse(x, "keel api-resources", "List the kinds the API serves (the kind registry).", defs, 0, argc,
                      argv, NULL, NULL);
  if (prc) return prc < 0 ? 1 : 0;
  if (*output && strcmp(output, "wide") && strcmp(output, "name"))
    return cli_error(x, "--output %s is not available in api-resources (wide, name)", output);
  if (*namespaced && strcmp(namespaced, "true") && strcmp(namespaced, "false"))
    return cli_error(x, "--namespaced: want true or false");
  size_t n;
  const api_kind *ks = api_kinds(&n);
  tabwriter *tw = printers_table_new();
  bool wide = strcmp(output, "wide") == 0, names = strcmp(output, "name") == 0;
  if (!no_headers && !names)
    tabwriter_printf(tw, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND%s\n", wide ? "\tVERBS" : "");
  for (size_t i = 0; i < n; i++) {
    const api_kind *k = &ks[i];
    if (*namespaced && (strcmp(namespaced, "true") == 0) != k->namespaced) continue;
    if (group && strcmp(group, k->group) != 0) continue;
    if (names) {
      printf("%s%s%s\n", k->resource, *k->group ? "." : "", k->group);
      continue;
    }
    tabwriter_printf(tw, "%s\t%s\t%s\t%s\t%s", k->resource, k->short_names, k->api_version,
                     k->namespaced ? "true" : "false", k->kind);
    if (wide) {
      /* The verbs of the kind's gRPC service, as Kubernetes names them. */
      tabwriter_write(tw, "\t[create delete get list update watch");
      if (k->subresources & API_SUB_STATUS) tabwriter_write(tw, " update/status");
      if (k->subresources & API_SUB_SCALE) tabwriter_write(tw, " get/scale update/scale");
      if (k->subresources & API_SUB_BIND) tabwriter_write(tw, " create/binding");
      tabwriter_write(tw, "]");
    }
    tabwriter_write(tw, "\n");
  }
  int rc = tabwriter_flush(tw, stdout) < 0 ? cli_error(x, "writing the table failed") : 0;
  tabwriter_free(tw);
  return rc;
}

/* ---------------------------------------------------------------- logs, exec */

#define NO_AGENT "the pod's node agent is not reachable: keel has no node agent yet"

/* The pod named by arg ("web" or "pod/web"; other kinds have no containers
 * of their own) and its container: -c, else the first (named on stderr when
 * there are several, as kubectl does). *pod_out is the caller's to free. */
static int resolve_container(cli *x, client *c, const char *arg, const char *container, const char *verb,
                             Keel__Api__V1__Pod **pod_out, const char **cname) {
  const char *name = arg;
  const char *slash = strchr(arg, '/');
  if (slash) {
    char *type = strndup(arg, (size_t)(slash - arg));
    const api_kind *k = type ? cli_kind(x, type) : NULL;
    free(type);
    if (!k) return -1;
    if (strcmp(k->kind, "Pod") != 0)
      return cli_error(x, "cannot %s %s: only pods have containers (name a pod)", verb, arg), -1;
    name = slash + 1;
  }
  const api_kind *pk = api_kind_by_name("Pod");
  ProtobufCMessage *obj = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_get(c, pk, cli_namespace(x), name, NULL, &obj, &co, &st) < 0) return cli_server_error(x, &st, NULL), -1;
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)obj;
  size_t n = p->spec ? p->spec->n_containers : 0;
  *cname = NULL;
  if (container && *container) {
    for (size_t i = 0; i < n; i++)
      if (p->spec->containers[i]->name && strcmp(p->spec->containers[i]->name, container) == 0)
        *cname = p->spec->containers[i]->name;
    for (size_t i = 0; !*cname && p->spec && i < p->spec->n_init_containers; i++)
      if (p->spec->init_containers[i]->name && strcmp(p->spec->init_containers[i]->name, container) == 0)
        *cname = p->spec->init_containers[i]->name;
    if (!*cname) {
      cli_error(x, "container %s is not valid for pod %s", container, name);
      protobuf_c_message_free_unpacked(obj, NULL);
      return -1;
    }
  } else if (n > 0) {
    *cname = p->spec->containers[0]->name;
    if (n > 1) {
      fprintf(stderr, "Defaulted container \"%s\" out of: ", *cname);
      for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? ", " : "", p->spec->containers[i]->name);
      fprintf(stderr, "\n");
    }
  } else {
    cli_error(x, "pod %s has no containers", name);
    protobuf_c_message_free_unpacked(obj, NULL);
    return -1;
  }
  *pod_out = p;
  return 0;
}

static int no_agent(cli *x, const Keel__Api__V1__Pod *p, const char *cname, const char *what) {
  const char *node = p->spec && p->spec->node_name && *p->spec->node_name ? p->spec->node_name : NULL;
  if (node)
    return cli_error(x, "cannot %s container \"%s\" in pod \"%s\" on node \"%s\": " NO_AGENT, what, cname,
                     p->metadata->name, node);
  return cli_error(x, "cannot %s container \"%s\" in pod \"%s\" (not scheduled to a node yet): " NO_AGENT, what, cname,
                   p->metadata->name);
}

int cmd_logs(cli *x, int argc, char **argv) {
  char *container = NULL, *since = NULL;
  bool follow = false, previous = false, timestamps = false, all_containers = false;
  int64_t tail = -1;
  flag_def defs[] = {
      FLAG_STRING("container", &container, "the container (-c; default: the first)"),
      FLAG_BOOL("follow", &follow, "keep streaming new lines"),
      FLAG_BOOL("previous", &previous, "the previous instance of the container (-p)"),
      FLAG_BOOL("timestamps", &timestamps, "prefix each line with its time"),
      FLAG_BOOL("all-containers", &all_containers, "every container of the pod"),
      FLAG_INT("tail", &tail, "only the last N lines (-1: all)"),
      FLAG_STRING("since", &since, "only lines newer than this (e.g. 5s, 2m)"),
      FLAG_END,
  };
  /* kubectl spells --follow -f, which elsewhere is --filename. */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-f") == 0) argv[i] = "--follow";
    else if (strcmp(argv[i], "--") == 0) break;
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel logs POD [-c CONTAINER] [-f]", "Print a container's log (through its node agent).",
                      defs, CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  int64_t since_ms = 0;
  if (npos != 1) {
    cli_error(x, "expected one pod name: keel logs POD [-c CONTAINER]");
  } else if (since && cli_parse_timeout(since, &since_ms) < 0) {
    cli_error(x, "invalid --since \"%s\" (want e.g. 5s, 2m)", since);
  } else {
    client *c = cli_client(x);
    Keel__Api__V1__Pod *p = NULL;
    const char *cname = NULL;
    if (c && resolve_container(x, c, pos[0], all_containers ? NULL : container, "get logs of", &p, &cname) == 0) {
      rc = no_agent(x, p, cname, follow ? "follow the logs of" : "get the logs of");
      protobuf_c_message_free_unpacked(&p->base, NULL);
    }
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

int cmd_exec(cli *x, int argc, char **argv) {
  char *container = NULL;
  bool stdin_ = false, tty = false;
  flag_def defs[] = {
      FLAG_STRING("container", &container, "the container (-c; default: the first)"),
      FLAG_BOOL("stdin", &stdin_, "pass standard input to the command (-i)"),
      FLAG_BOOL("tty", &tty, "allocate a terminal (-t)"),
      FLAG_END,
  };
  /* The command is everything after "--". */
  int cmd_at = argc;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      cmd_at = i;
      break;
    }
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
                      "Run a command in a container (through its node agent).", defs, CLI_FLAGS_CONNECT, cmd_at, argv,
                      &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  int ncmd = cmd_at < argc ? argc - cmd_at - 1 : 0;
  if (npos < 1) {
    cli_error(x, "expected a pod name: keel exec POD -- COMMAND");
  } else if (npos > 1) {
    cli_error(x, "exec [POD] [COMMAND] is not supported: put the command after --: keel exec %s -- %s", pos[0], pos[1]);
  } else if (ncmd == 0) {
    cli_error(x, "you must specify at least one command for the container");
  } else {
    client *c = cli_client(x);
    Keel__Api__V1__Pod *p = NULL;
    const char *cname = NULL;
    if (c && resolve_container(x, c, pos[0], container, "exec in", &p, &cname) == 0) {
      rc = no_agent(x, p, cname, "exec in");
      protobuf_c_message_free_unpacked(&p->base, NULL);
    }
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
