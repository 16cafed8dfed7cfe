/* cli/misc.c — `keel version` and `keel api-resources`. */
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
