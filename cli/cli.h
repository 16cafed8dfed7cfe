/* cli/cli.h — what every `keel` command shares: the global flags, the
 * connection to keel-apiserver made from the config file (common/client),
 * argument parsing with kubectl's short flags, and kubectl's error lines.
 *
 * A command is `int cmd_x(cli *x, int argc, char **argv)` (argv[0] is the
 * command's name) returning the process exit code: 0, or 1 after printing
 * every error on stderr (exec: the remote command's exit code) ("error: ..." or "Error from server (NotFound):
 * pods \"x\" not found"). Commands print results on stdout. */
#ifndef KEEL_CLI_CLI_H
#define KEEL_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/base/error.h"
#include "common/client/client.h"
#include "common/client/config.h"
#include "common/flags/flags.h"
#include "common/kinds/kinds.h"
#include "common/manifest/manifest.h"
#include "common/protojson/protojson.h"

#define KEEL_CLI_VERSION "v0.1.0"

typedef struct cli {
  /* Global flags (strings point into argv or the environment). */
  char *config_path;     /* --config, else $KEEL_CONFIG, $KEELCONFIG, ~/.keel/config */
  char *context;         /* --context */
  char *server;          /* --server: replaces the context's endpoints */
  char *token;           /* --token: replaces the context's credentials */
  char *namespace_;      /* -n / --namespace */
  char *ca_file;         /* --certificate-authority */
  char *cert_file;       /* --client-certificate */
  char *key_file;        /* --client-key */
  char *tls_server_name; /* --tls-server-name */
  int64_t request_timeout_ms; /* --request-timeout (0: 30 s) */
  /* Resolved on first use. */
  client_config cfg;
  bool have_cfg;
  char config_file[4096]; /* the config file path in use */
  client *c;
  protojson *pj;
  bool color_out, color_err; /* stdout / stderr are terminals (and NO_COLOR is unset) */
} cli;

void cli_init(cli *x);
void cli_destroy(cli *x);

/* ---------------------------------------------------------------- arguments */

/* Flag sets a command accepts besides its own. */
enum {
  CLI_FLAGS_CONNECT = 1, /* --config --context --server --token -n ... */
  CLI_FLAGS_CONFIG = 2,  /* only --config (the `config` commands) */
};

/* Parses argv[1..argc) (argv[0] is the command's name): kubectl's short
 * flags are rewritten to long ones (-n X, -nX, -n=X -> --namespace=X; -o,
 * -l, -f, -c take values; -A, -w, -i, -t, -p, -R are switches and may be
 * combined, -Aw), then common/flags parses `defs` plus the global set.
 * usage is the first line of --help ("keel get TYPE[/NAME] [NAME...]").
 * Returns 0 with the positional arguments (free with flags_free_positional),
 * 1 after --help, -1 after printing the error. */
int cli_parse(cli *x, const char *usage, const char *summary, const flag_def *defs, unsigned sets, int argc,
              char **argv, char ***pos, int *npos);
/* Frees what cli_parse allocated for list flags in defs. */
void cli_parse_done(const flag_def *defs);

/* The rewritten argument vector (exposed for tests): a malloc'ed,
 * NULL-terminated copy whose new strings are listed in *owned (free both with
 * cli_free_expanded). Arguments after "--" are never rewritten. */
char **cli_expand_short_flags(int argc, char **argv, int *out_argc, char ***owned, int *nowned);
void cli_free_expanded(char **argv, char **owned, int nowned);

/* ---------------------------------------------------------------- connection */

/* Loads the config (once) and applies the overrides. -1 after printing. */
int cli_load_config(cli *x);
/* The client (connects once). NULL after printing the error. */
client *cli_client(cli *x);
/* The namespace of the request: -n, else the context's, else "default". */
const char *cli_namespace(cli *x);
/* protojson over the API's descriptors (once). NULL after printing. */
protojson *cli_pj(cli *x);
/* Call options with the request timeout (dry_run as given). */
client_call_options cli_call_opts(const cli *x, bool dry_run);

/* ---------------------------------------------------------------- errors */

/* "error: <message>" on stderr (red on a terminal). Returns 1. */
int cli_error(cli *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Kubernetes' StatusReason for a gRPC status: NotFound, AlreadyExists,
 * Conflict, Invalid, BadRequest, Forbidden, Unauthorized, ... */
const char *cli_status_reason(const client_status *st);
/* "Error from server (Reason): <what><server's message>" on stderr; a
 * connection failure reads "error: cannot reach the server at ADDR: ...".
 * what may be NULL or e.g. "error when creating \"web.yaml\": ". Returns 1. */
int cli_server_error(cli *x, const client_status *st, const char *what);

/* ---------------------------------------------------------------- objects */

/* A kind from what the user typed ("po", "pods", "Deployment",
 * "deployments.apps"); NULL after printing kubectl's "the server doesn't have
 * a resource type" error. */
const api_kind *cli_kind(cli *x, const char *name);

/* One object named on the command line. */
typedef struct cli_ref {
  const api_kind *kind;
  const char *name; /* borrowed from argv ("" when only a kind was given) */
} cli_ref;

/* kubectl's forms: "TYPE NAME [NAME...]", "TYPE/NAME [TYPE/NAME...]", or
 * "TYPE[,TYPE...]" alone (allow_kind_only). Fills *refs (malloc'ed).
 * Returns 0, or -1 after printing the error. */
int cli_parse_refs(cli *x, char **args, int nargs, bool allow_kind_only, cli_ref **refs, size_t *nrefs);

/* The namespace for an object of kind k: "" for cluster-scoped kinds. */
const char *cli_object_namespace(cli *x, const api_kind *k);

/* Objects from -f arguments (files, directories, "-"), in order. -1 after
 * printing the error (which names the file and line). */
int cli_read_manifests(cli *x, const flag_string_list *files, manifest_object **objs, size_t *n);

/* The objects a command acts on: with -f files, one ref per manifest object
 * (named by its metadata.name; objs keeps the decoded objects for their
 * namespaces), otherwise kubectl's positional forms (cli_parse_refs). */
typedef struct cli_targets {
  cli_ref *refs; /* malloc'ed; names borrowed from argv or from objs */
  size_t nrefs;
  manifest_object *objs; /* from -f, else NULL; objs[i] is refs[i] */
  size_t nobjs;
} cli_targets;

/* Fills *t (zeroed first). Returns 0, or -1 after printing the error; free
 * with cli_targets_free either way. */
int cli_targets_read(cli *x, const flag_string_list *files, char **args, int nargs, bool allow_kind_only,
                     cli_targets *t);
/* The namespace of refs[i]: its manifest's metadata.namespace when it has
 * one (namespaced kinds), else cli_object_namespace. */
const char *cli_targets_namespace(cli *x, const cli_targets *t, size_t i);
void cli_targets_free(cli_targets *t);

/* Reads `text` as kubectl's go-duration for --timeout ("30s", "2m", "1h30m",
 * "0" = none). -1 on error. */
int cli_parse_timeout(const char *text, int64_t *ms);

/* Monotonic milliseconds. */
int64_t cli_now_ms(void);

/* Replaces a protobuf-c string field (freeing the old one; "" and NULL both
 * leave the field at its default). */
void cli_set_str(char **slot, const char *value);

/* Prints objects as -o yaml|json|name does: one object as itself when
 * single, else a `kind: List` (yaml, json) or one kind/name per line (name).
 * Returns 0, or 1 after printing the error. */
int cli_print_objects(cli *x, const ProtobufCMessage *const *objs, size_t n, const char *output, bool single);

/* The object as JSON without metadata.resourceVersion, for "did it change". */
json_t *cli_object_json_for_compare(cli *x, const ProtobufCMessage *obj);

/* ---------------------------------------------------------------- commands */

int cmd_get(cli *x, int argc, char **argv);
int cmd_apply(cli *x, int argc, char **argv);
int cmd_create(cli *x, int argc, char **argv);
int cmd_delete(cli *x, int argc, char **argv);
int cmd_describe(cli *x, int argc, char **argv);
int cmd_scale(cli *x, int argc, char **argv);
int cmd_rollout(cli *x, int argc, char **argv);
int cmd_logs(cli *x, int argc, char **argv);
int cmd_exec(cli *x, int argc, char **argv);
int cmd_api_resources(cli *x, int argc, char **argv);
int cmd_version(cli *x, int argc, char **argv);
int cmd_config(cli *x, int argc, char **argv);
int cmd_completion(cli *x, int argc, char **argv);
int cmd_up(cli *x, int argc, char **argv);
int cmd_down(cli *x, int argc, char **argv);

#endif
