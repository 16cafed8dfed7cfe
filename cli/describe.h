/* cli/describe.h — kubectl's `describe` layout, shared with `rollout
 * history --revision` (which prints a pod template the same way).
 *
 * Output is written into a tabwriter with minwidth 0 and padding 2 (as
 * kubectl's describe), "Key:\tvalue" lines indented two spaces per level, so
 * each run of keys lines up. */
#ifndef KEEL_CLI_DESCRIBE_H
#define KEEL_CLI_DESCRIBE_H

#include <stdbool.h>
#include <time.h>

#include "cli/tabwriter.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

#define DESCRIBE_MINWIDTH 0
#define DESCRIBE_PADDING 2

/* "Pod Template:" and the template's labels, annotations, containers and
 * volumes, at level 0. */
void describe_pod_template(tabwriter *tw, const Keel__Api__V1__PodTemplateSpec *t);

/* A timestamp as kubectl's describe writes it (RFC 1123 with a numeric zone,
 * local time): "Mon, 02 Jan 2006 15:04:05 -0700"; "<unset>" when NULL. */
void describe_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len);

#endif
