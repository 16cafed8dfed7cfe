/* cli/wait.h — waiting on one object through a watch: until it is gone
 * (delete --wait) or until a predicate holds (rollout status).
 *
 * The watch is on the object's name (field selector metadata.name) from the
 * resourceVersion of a fresh Get, so no change between the read and the
 * watch is missed; a stream the server ends (timeout, slow watcher) is
 * resumed from the last version seen. */
#ifndef KEEL_CLI_WAIT_H
#define KEEL_CLI_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

/* Called with each state of the object (NULL once it is deleted); returns
 * true when the wait is over. Runs on a client thread, one call at a time. */
typedef bool (*wait_check_fn)(const ProtobufCMessage *obj, void *arg);

typedef enum wait_result {
  WAIT_DONE = 0,
  WAIT_TIMEOUT = 1,
  WAIT_ERROR = 2, /* printed */
} wait_result;

/* Waits on k ns/name until check returns true, up to timeout_ms (0: no
 * limit). uid, when set, names the incarnation: another object under the
 * same name counts as this one gone. */
wait_result wait_for_object(cli *x, client *c, const api_kind *k, const char *ns, const char *name, const char *uid,
                            int64_t timeout_ms, wait_check_fn check, void *arg);

#endif
