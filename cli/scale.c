/* cli/scale.c — `keel scale (TYPE NAME | TYPE/NAME | -f FILE) --replicas=N`
 * through the Scale subresource (GetScale / UpdateScale), as kubectl does.
 * --current-replicas is a precondition: the scale is refused when the
 * object has another count. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/printers.h"

int cmd_scale(cli *x, int argc, char **argv) {
  flag_string_list files = {0};
  int64_t replicas = -1, current = -1;
  char *dry_run = "none";
  flag_def defs[] = {
      FLAG_INT("replicas", &replicas, "the new number of replicas (required)"),
      FLAG_INT("current-replicas", &current, "precondition: the current number of replicas (-1: any)"),
      FLAG_STRING_LIST("filename", &files, "scale the objects of these manifests (-f)"),
      FLAG_STRING("dry-run", &dry_run, "none or server"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel scale (TYPE NAME | TYPE/NAME | -f FILE) --replicas=N",
                      "Set the replicas of deployments and replicasets.", defs, CLI_FLAGS_CONNECT, argc, argv, &pos,
                      &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  cli_targets t = {0};
  bool server_dry = strcmp(dry_run, "server") == 0;
  if (!server_dry && strcmp(dry_run, "none") != 0) {
    rc = cli_error(x, "invalid dry-run value (%s); must be \"none\" or \"server\"", dry_run);
    goto out;
  }
  if (replicas < 0) {
    rc = cli_error(x, "required flag(s) \"replicas\" not set (or negative)");
    goto out;
  }
  if (replicas > INT32_MAX) {
    rc = cli_error(x, "--replicas %lld is too large", (long long)replicas);
    goto out;
  }
  if (cli_targets_read(x, &files, pos, npos, false, &t) < 0) {
    rc = 1;
    goto out;
  }
  client *c = cli_client(x);
  if (!c) {
    rc = 1;
    goto out;
  }
  for (size_t i = 0; i < t.nrefs; i++) {
    const api_kind *k = t.refs[i].kind;
    char ref[128];
    printers_kind_ref(k, ref, sizeof(ref));
    if (!(k->subresources & API_SUB_SCALE)) {
      rc = cli_error(x, "cannot scale %s: no scale subresource (deployments and replicasets have one)", k->resource);
      continue;
    }
    const char *ns = cli_targets_namespace(x, &t, i);
    Keel__Api__V1__Scale *sc = NULL;
    client_status st;
    client_call_options co = cli_call_opts(x, false);
    if (client_get_scale(c, k, ns, t.refs[i].name, &sc, &co, &st) < 0) {
      rc = cli_server_error(x, &st, NULL);
      continue;
    }
    if (current >= 0 && (!sc->spec || sc->spec->replicas != current)) {
      rc = cli_error(x, "Expected replicas to be %lld, was %d", (long long)current, sc->spec ? sc->spec->replicas : 0);
      protobuf_c_message_free_unpacked(&sc->base, NULL);
      continue;
    }
    if (!sc->spec) {
      sc->spec = (Keel__Api__V1__ScaleSpec *)api_message_new(&keel__api__v1__scale_spec__descriptor);
      if (!sc->spec) {
        protobuf_c_message_free_unpacked(&sc->base, NULL);
        rc = cli_error(x, "out of memory");
        continue;
      }
    }
    sc->spec->replicas = (int32_t)replicas;
    /* Only --current-replicas makes the update conditional on what was read. */
    if (current < 0 && sc->metadata) cli_set_str(&sc->metadata->resource_version, NULL);
    Keel__Api__V1__Scale *out = NULL;
    client_call_options wo = cli_call_opts(x, server_dry);
    if (client_update_scale(c, k, sc, &out, &wo, &st) < 0) {
      rc = cli_server_error(x, &st, NULL);
    } else {
      printf("%s/%s scaled%s\n", ref, t.refs[i].name, server_dry ? " (server dry run)" : "");
      fflush(stdout);
      protobuf_c_message_free_unpacked(&out->base, NULL);
    }
    protobuf_c_message_free_unpacked(&sc->base, NULL);
  }
out:
  cli_targets_free(&t);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
