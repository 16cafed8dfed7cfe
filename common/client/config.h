/* common/client/config.h — the client config file: where the cluster is and
 * who we are, modeled on kubeconfig.
 *
 * JSON (the CLI adds a YAML reader of the same shape later):
 *   {
 *     "current-context": "local",
 *     "clusters": [{"name": "local", "cluster": {
 *         "endpoints": ["127.0.0.1:6443", "unix:/run/keel/api.sock"],
 *         "certificate-authority": "ca.pem",       optional: TLS, verify with this CA
 *         "tls-server-name": "localhost"}}],        optional: name the certificate must carry
 *     "users": [{"name": "admin", "user": {
 *         "token": "...", or "token-file": "token.txt",    bearer token
 *         "client-certificate": "admin.pem", "client-key": "admin-key.pem"}}],  mutual TLS
 *     "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin",
 *         "namespace": "default"}}]
 *   }
 * "server": "https://host:port" (kubeconfig's single URL) is accepted in place
 * of, or besides, "endpoints". An endpoint written https://host:port means
 * TLS; http://host:port or a bare host:port means plaintext unless a CA or a
 * client certificate is given; unix:/path is a unix socket. Relative file
 * paths are relative to the config file's directory, as kubectl resolves them.
 * "apiVersion", "kind" and "preferences" at the top are ignored; any other
 * unknown key is an error that names it. */
#ifndef KEEL_COMMON_CLIENT_CONFIG_H
#define KEEL_COMMON_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"
#include "common/client/client.h"
#include "common/rpc/rpc.h"

/* The resolved view of one context. Every string is owned (client_config_clear). */
typedef struct client_config {
  char *context;    /* the context's name */
  char *cluster;    /* its cluster's name */
  char *user;       /* its user's name ("" when the context names none) */
  char *namespace_; /* the context's namespace; "default" when unset */
  char **endpoints; /* "host:port" or "unix:/path", scheme removed */
  size_t nendpoints;
  bool tls;
  char *ca_file;     /* absolute or as written; NULL = system roots (with tls) */
  char *server_name; /* tls-server-name, or NULL */
  char *cert_file, *key_file; /* client certificate (mutual TLS), or NULL */
  char *token;       /* bearer token (from "token" or the token file), or NULL */
} client_config;

/* Reads path and resolves `context` (NULL = current-context). On failure
 * returns negative errno with err naming the file and what is wrong
 * ("/home/me/.keel/config: contexts[0].context: unknown key \"clustr\""). */
int client_config_load(const char *path, const char *context, client_config *cfg, keel_error *err);
/* The same from text; base_dir resolves relative paths (NULL = as written). */
int client_config_parse(const char *text, size_t len, const char *base_dir, const char *context,
                        client_config *cfg, keel_error *err);
void client_config_clear(client_config *cfg);

/* $KEELCONFIG if set, else $HOME/.keel/config, into buf. NULL if it does not fit. */
const char *client_config_default_path(char *buf, size_t len);

/* client_options for client_new: pointers borrowed from cfg (and tls, which
 * the caller provides storage for); both must outlive the client_new call. */
void client_config_options(const client_config *cfg, client_options *opts, rpc_tls_config *tls);

#endif
