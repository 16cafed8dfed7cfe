/* keel — the CLI: kubectl's habits over keel-apiserver's gRPC API.
 *
 * main only finds the command and hands it the arguments; global flags
 * written before the command (`keel -n web get pods`) are moved after it,
 * where every command parses them. Exit code: 0, or 1 on any error. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
  const char *name;
  int (*run)(cli *x, int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"up", cmd_up, "Bring up a local control plane and make it the current context"},
    {"down", cmd_down, "Stop the local control plane `keel up` started (--purge: delete its data)"},
    {"get", cmd_get, "Display objects (tables, -o yaml|json|name|wide, -w to stream changes)"},
    {"describe", cmd_describe, "Show the details of objects and their events"},
    {"apply", cmd_apply, "Create or update objects from manifests (-f FILE|DIR|-)"},
    {"create", cmd_create, "Create objects from manifests, or a namespace"},
    {"delete", cmd_delete, "Delete objects (by name, -f, -l or --all; --wait)"},
    {"scale", cmd_scale, "Set the replicas of a deployment or replicaset"},
    {"rollout", cmd_rollout, "Manage a deployment's rollout: status, history, undo, restart, pause, resume"},
    {"logs", cmd_logs, "Print a container's logs (through its node agent)"},
    {"exec", cmd_exec, "Run a command in a container (through its node agent)"},
    {"api-resources", cmd_api_resources, "List the kinds the API serves"},
    {"config", cmd_config, "Edit the client config: contexts, clusters, users"},
    {"version", cmd_version, "Print the client and server versions"},
    {"completion", cmd_completion, "Print the bash completion script"},
};

static void usage(FILE *f) {
  fprintf(f,
          "keel controls a Keel cluster, as kubectl controls Kubernetes.\n\n"
          "Usage: keel [flags] COMMAND [args] [flags]\n\n"
          "Commands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-15s%s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\nFlags every command takes:\n"
          "  -n, --namespace NS            the namespace (default: the context's)\n"
          "      --config PATH             client config (default $KEEL_CONFIG, else ~/.keel/config)\n"
          "      --context NAME            a context of the config other than the current one\n"
          "      --server ADDR             the apiserver (host:port, https://host:port, unix:/path)\n"
          "      --token TOKEN             a bearer token\n"
          "      --certificate-authority, --client-certificate, --client-key, --tls-server-name, "
          "--request-timeout\n\n"
          "Use \"keel COMMAND --help\" for a command's flags.\n");
}

/* Flags before the command that take a value as the next word. */
static bool global_takes_value(const char *a) {
  static const char *const with_value[] = {"-n", "--namespace", "--context", "--config", "--server", "--token",
                                           "--certificate-authority", "--client-certificate", "--client-key",
                                           "--tls-server-name", "--request-timeout", NULL};
  for (const char *const *w = with_value; *w; w++)
    if (strcmp(a, *w) == 0) return true;
  return false;
}

int main(int argc, char **argv) {
  /* A closed pipe (keel get pods | head) ends the process quietly, as for any filter. */
  signal(SIGPIPE, SIG_DFL);
  /* Resolve the apiserver's name with getaddrinfo, not gRPC's c-ares: a CLI
   * resolves one name once, and Debian 12's c-ares (1.18) leaks the answer
   * of ares_gethostbyname("localhost"), which LeakSanitizer reports. An
   * explicit GRPC_DNS_RESOLVER still wins. */
  setenv("GRPC_DNS_RESOLVER", "native", 0);
  int first = 1;
  while (first < argc && argv[first][0] == '-' && strcmp(argv[first], "-h") != 0 &&
         strcmp(argv[first], "--help") != 0 && strcmp(argv[first], "--version") != 0)
    first += global_takes_value(argv[first]) && first + 1 < argc ? 2 : 1;
  if (first >= argc) {
    if (argc > 1 && first > 1) {
      fprintf(stderr, "error: no command given\n");
      usage(stderr);
      return 1;
    }
    usage(stdout);
    return 0;
  }
  const char *name = argv[first];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(name, "--version") == 0) name = "version";
  const command *cmd = NULL;
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(commands[i].name, name) == 0) cmd = &commands[i];
  if (!cmd) {
    fprintf(stderr, "error: unknown command \"%s\" for \"keel\"\nRun 'keel --help' for usage.\n", name);
    return 1;
  }
  /* argv for the command: its name, then its own words, then the global
   * flags that came before it. */
  char **cargv = calloc((size_t)argc + 1, sizeof(*cargv));
  if (!cargv) {
    fprintf(stderr, "error: out of memory\n");
    return 1;
  }
  int cargc = 0;
  cargv[cargc++] = argv[first];
  int dashdash = -1;
  for (int i = first + 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dashdash = i;
      break;
    }
  int end = dashdash < 0 ? argc : dashdash;
  for (int i = first + 1; i < end; i++) cargv[cargc++] = argv[i];
  for (int i = 1; i < first; i++) cargv[cargc++] = argv[i];
  for (int i = end; i < argc; i++) cargv[cargc++] = argv[i];
  cargv[cargc] = NULL;
  cli x;
  cli_init(&x);
  int rc = cmd->run(&x, cargc, cargv);
  fflush(stdout);
  cli_destroy(&x);
  free(cargv);
  /* A command's own exit code (exec passes the remote command's on). */
  return rc >= 0 && rc <= 255 ? rc : 1;
}
