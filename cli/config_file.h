/* cli/config_file.h — the client config file as a JSON document, for
 * reading it in either spelling and for `keel config` to edit it.
 *
 * common/client/config.h reads JSON; people write kubeconfig-style YAML.
 * The CLI reads both (YAML goes through common/manifest's reader, which
 * keeps kubectl's scalar rules) and hands client_config_parse the JSON text.
 * `keel config` writes JSON (which is also YAML) so that every other reader
 * of the file, the daemons included, keeps working. */
#ifndef KEEL_CLI_CONFIG_FILE_H
#define KEEL_CLI_CONFIG_FILE_H

#include <jansson.h>

#include "common/base/error.h"

/* The file at path as a JSON object (a new reference). -ENOENT (with err)
 * when it does not exist; -EINVAL naming FILE:LINE when it does not parse. */
int config_file_read(const char *path, json_t **root, keel_error *err);

/* Writes root as indented JSON, atomically (a temporary file renamed over
 * path), mode 0600, creating the directory (0700) when missing. */
int config_file_write(const char *path, const json_t *root, keel_error *err);

/* The directory part of path ("." when none), malloc'ed. */
char *config_file_dir(const char *path);

#endif
