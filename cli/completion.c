/* cli/completion.c — `keel completion bash`: a bash script completing
 * commands, their flags, kinds (from the kind registry, every spelling
 * kubectl accepts), and object names, which it asks the cluster for with
 * `keel get TYPE -o name` (passing on -n, --context and --config from the
 * line being completed). Load it with `source <(keel completion bash)`. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command_flags {
  const char *command;
  const char *flags;
} command_flags;

#define CONNECT_FLAGS " --namespace --context --config --server --token --certificate-authority --client-certificate --client-key --tls-server-name --request-timeout --help"

static const command_flags flags_of[] = {
    {"get", "--output --selector --field-selector --all-namespaces --watch --watch-only --output-watch-events "
            "--no-headers --show-labels --ignore-not-found --filename" CONNECT_FLAGS},
    {"apply", "--filename --dry-run --output" CONNECT_FLAGS},
    {"create", "--filename --dry-run --output" CONNECT_FLAGS},
    {"delete", "--filename --selector --all --all-namespaces --wait --timeout --grace-period --now --force "
               "--ignore-not-found --dry-run" CONNECT_FLAGS},
    {"describe", "--selector --all-namespaces --filename" CONNECT_FLAGS},
    {"scale", "--replicas --current-replicas --filename --dry-run" CONNECT_FLAGS},
    {"rollout", "--timeout --watch --revision --to-revision --dry-run" CONNECT_FLAGS},
    {"logs", "--container --follow --previous --timestamps --all-containers --tail --since" CONNECT_FLAGS},
    {"exec", "--container --stdin --tty" CONNECT_FLAGS},
    {"api-resources", "--output --namespaced --api-group --no-headers --help"},
    {"version", "--client --output" CONNECT_FLAGS},
    {"config", "--config --raw --minify --output --cluster --user --namespace --current --server --endpoints "
               "--certificate-authority --tls-server-name --token --token-file --client-certificate --client-key "
               "--no-headers --help"},
    {"completion", "--help"},
};

static void print_kinds(void) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++) {
    printf(" %s %s", ks[i].resource, ks[i].singular);
    if (*ks[i].short_names) {
      char buf[128];
      snprintf(buf, sizeof(buf), "%s", ks[i].short_names);
      for (char *p = buf; *p; p++)
        if (*p == ',') *p = ' ';
      printf(" %s", buf);
    }
  }
}

int cmd_completion(cli *x, int argc, char **argv) {
  flag_def defs[] = {FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel completion bash",
                      "Print a bash completion script: source <(keel completion bash)", defs, 0, argc, argv, &pos,
                      &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  if (npos != 1) {
    rc = cli_error(x, "Shell not specified.\nSee 'keel completion -h' for help and examples");
  } else if (strcmp(pos[0], "bash") != 0) {
    rc = cli_error(x, "Unsupported shell type \"%s\" (bash is)", pos[0]);
  } else {
    printf("# bash completion for keel. Load it with:  source <(keel completion bash)\n");
    printf("__keel_commands=\"get apply create delete describe scale rollout logs exec api-resources config "
           "version completion\"\n");
    printf("__keel_kinds=\"all");
    print_kinds();
    printf("\"\n");
    printf("__keel_command_flags() {\n  case \"$1\" in\n");
    for (size_t i = 0; i < sizeof(flags_of) / sizeof(flags_of[0]); i++)
      printf("    %s) echo \"%s\";;\n", flags_of[i].command, flags_of[i].flags);
    printf("  esac\n}\n");
    fputs(
        "# -n, --context, --config, --server, --token of the line being completed.\n"
        "__keel_connect_flags() {\n"
        "  local i w out=()\n"
        "  for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do\n"
        "    w=\"${COMP_WORDS[i]}\"\n"
        "    case \"$w\" in\n"
        "      -n|--namespace|--context|--config|--server|--token) out+=(\"$w\" \"${COMP_WORDS[i+1]}\"); ((i++));;\n"
        "      --namespace=*|--context=*|--config=*|--server=*|--token=*|-n?*) out+=(\"$w\");;\n"
        "    esac\n"
        "  done\n"
        "  ((${#out[@]})) && printf '%s ' \"${out[@]}\"\n"
        "}\n"
        "# The names of the objects of kind $1.\n"
        "__keel_names() {\n"
        "  local k=\"$1\"; shift\n"
        "  # shellcheck disable=SC2046\n"
        "  \"${COMP_WORDS[0]}\" get \"$k\" -o name $(__keel_connect_flags) \"$@\" 2>/dev/null | sed 's|^[^/]*/||'\n"
        "}\n"
        "__keel_reply() { mapfile -t COMPREPLY < <(compgen \"$@\"); }\n"
        "_keel() {\n"
        "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
        "  local cmd=\"\" args=() i w skip=0\n"
        "  COMPREPLY=()\n"
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "    w=\"${COMP_WORDS[i]}\"\n"
        "    if ((skip)); then skip=0; continue; fi\n"
        "    case \"$w\" in\n"
        "      -n|--namespace|--context|--config|--server|--token|-o|--output|-l|--selector|-f|--filename|-c|--container|\\\n"
        "      --field-selector|--replicas|--current-replicas|--timeout|--grace-period|--dry-run|--revision|--to-revision|\\\n"
        "      --certificate-authority|--client-certificate|--client-key|--tls-server-name|--request-timeout|--tail|--since|\\\n"
        "      --cluster|--user|--endpoints|--token-file|--namespaced|--api-group) skip=1; continue;;\n"
        "      -*) continue;;\n"
        "    esac\n"
        "    if [[ -z \"$cmd\" ]]; then cmd=\"$w\"; else args+=(\"$w\"); fi\n"
        "  done\n"
        "  case \"$prev\" in\n"
        "    -n|--namespace) if [[ \"$cmd\" != config ]]; then __keel_reply -W \"$(__keel_names namespaces)\" -- \"$cur\"; return; fi;;\n"
        "    -o|--output) __keel_reply -W \"wide yaml json name\" -- \"$cur\"; return;;\n"
        "    -f|--filename|--config|--certificate-authority|--client-certificate|--client-key|--token-file)\n"
        "      __keel_reply -f -- \"$cur\"; return;;\n"
        "    --context) __keel_reply -W \"$(\"${COMP_WORDS[0]}\" config get-contexts -o name 2>/dev/null)\" -- \"$cur\"; return;;\n"
        "    --dry-run) __keel_reply -W \"none server client\" -- \"$cur\"; return;;\n"
        "  esac\n"
        "  if [[ -z \"$cmd\" ]]; then\n"
        "    if [[ \"$cur\" == -* ]]; then __keel_reply -W \"--help\" -- \"$cur\"; else __keel_reply -W \"$__keel_commands\" -- \"$cur\"; fi\n"
        "    return\n"
        "  fi\n"
        "  if [[ \"$cur\" == -* ]]; then __keel_reply -W \"$(__keel_command_flags \"$cmd\")\" -- \"$cur\"; return; fi\n"
        "  local kind\n"
        "  case \"$cmd\" in\n"
        "    get|describe|delete|scale)\n"
        "      if ((${#args[@]} == 0)); then\n"
        "        if [[ \"$cur\" == */* ]]; then\n"
        "          kind=\"${cur%%/*}\"\n"
        "          __keel_reply -P \"$kind/\" -W \"$(__keel_names \"$kind\")\" -- \"${cur#*/}\"\n"
        "        else\n"
        "          __keel_reply -W \"$__keel_kinds\" -- \"$cur\"\n"
        "        fi\n"
        "      elif [[ \"${args[0]}\" != */* ]]; then\n"
        "        __keel_reply -W \"$(__keel_names \"${args[0]}\")\" -- \"$cur\"\n"
        "      fi;;\n"
        "    rollout)\n"
        "      if ((${#args[@]} == 0)); then\n"
        "        __keel_reply -W \"status history undo restart pause resume\" -- \"$cur\"\n"
        "      elif ((${#args[@]} == 1)); then\n"
        "        if [[ \"$cur\" == */* ]]; then\n"
        "          __keel_reply -P \"deployment/\" -W \"$(__keel_names deployments)\" -- \"${cur#*/}\"\n"
        "        else\n"
        "          __keel_reply -W \"deployment/ deployments\" -- \"$cur\"; compopt -o nospace 2>/dev/null\n"
        "        fi\n"
        "      elif ((${#args[@]} == 2)); then\n"
        "        __keel_reply -W \"$(__keel_names deployments)\" -- \"$cur\"\n"
        "      fi;;\n"
        "    logs|exec)\n"
        "      if ((${#args[@]} == 0)); then __keel_reply -W \"$(__keel_names pods)\" -- \"$cur\"; fi;;\n"
        "    config)\n"
        "      if ((${#args[@]} == 0)); then\n"
        "        __keel_reply -W \"view current-context get-contexts get-clusters get-users use-context set-context "
        "set-cluster set-credentials delete-context delete-cluster delete-user rename-context\" -- \"$cur\"\n"
        "      else\n"
        "        case \"${args[0]}\" in\n"
        "          use-context|delete-context|rename-context|get-contexts|set-context)\n"
        "            __keel_reply -W \"$(\"${COMP_WORDS[0]}\" config get-contexts -o name 2>/dev/null)\" -- \"$cur\";;\n"
        "        esac\n"
        "      fi;;\n"
        "    completion) if ((${#args[@]} == 0)); then __keel_reply -W \"bash\" -- \"$cur\"; fi;;\n"
        "  esac\n"
        "}\n"
        "complete -o default -F _keel keel\n",
        stdout);
  }
  flags_free_positional(pos);
  return rc;
}
