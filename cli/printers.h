/* cli/printers.h — kubectl's tables, one row layout per kind, and the human
 * ages in them.
 *
 *   Pod         NAME READY STATUS RESTARTS AGE [IP NODE NOMINATED NODE READINESS GATES]
 *   Deployment  NAME READY UP-TO-DATE AVAILABLE AGE [CONTAINERS IMAGES SELECTOR]
 *   ReplicaSet  NAME DESIRED CURRENT READY AGE [CONTAINERS IMAGES SELECTOR]
 *   Service     NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE [SELECTOR]
 *   Node        NAME STATUS ROLES AGE VERSION [INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME]
 *   Namespace   NAME STATUS AGE
 *   Endpoints   NAME ENDPOINTS AGE
 *   Event       LAST SEEN TYPE REASON OBJECT MESSAGE [SUBOBJECT SOURCE FIRST SEEN COUNT NAME]
 *   Lease       NAME HOLDER AGE
 * ([...]: -o wide). A NAMESPACE column comes first with -A, an EVENT column
 * with --output-watch-events, LABELS last with --show-labels. Rows are
 * written into a tabwriter (minwidth 6, padding 3, as kubectl's) as
 * tab-separated cells; a cell's own tabs and newlines become spaces.
 *
 * Everything that depends on the clock takes `now`, so tests are exact. */
#ifndef KEEL_CLI_PRINTERS_H
#define KEEL_CLI_PRINTERS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cli/tabwriter.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/meta.pb-c.h"

typedef struct printer_opts {
  bool wide;           /* -o wide */
  bool namespace_col;  /* NAMESPACE first (-A) */
  bool with_kind;      /* NAME as kind/name (several kinds in one get) */
  bool show_labels;    /* LABELS last */
  bool event_col;      /* EVENT first (--output-watch-events) */
  bool color;          /* color STATUS-like cells (stdout is a terminal) */
  time_t now;
} printer_opts;

/* Tabwriter settings of kubectl's tables. */
#define PRINTERS_MINWIDTH 6
#define PRINTERS_PADDING 3
tabwriter *printers_table_new(void);

/* kubectl's duration.HumanDuration of `seconds`: "0s" .. "119s", "2m" ..
 * "9m59s", "10m" .. "179m", "3h" .. "7h59m", "8h" .. "47h", "2d" .. "7d23h",
 * "8d" .. "729d", "2y" .. "7y364d", "8y"; "<invalid>" below -1. */
void printers_human_duration(int64_t seconds, char *buf, size_t len);
/* The age of ts at now ("<unknown>" when ts is NULL). */
void printers_age(const Google__Protobuf__Timestamp *ts, time_t now, char *buf, size_t len);

/* "pod", "deployment.apps", "lease.coordination.k8s.io": how kubectl names a
 * kind in "deployment.apps/nginx created". */
void printers_kind_ref(const api_kind *k, char *buf, size_t len);
/* "deployment.apps/nginx". */
void printers_object_name(const api_kind *k, const ProtobufCMessage *obj, char *buf, size_t len);

/* A LabelSelector as text ("app=nginx,tier in (a,b)"; "<none>" when empty). */
char *printers_selector_text(const Keel__Api__V1__LabelSelector *sel);
/* A map<string,string> field as "k=v,k2=v2" in key order ("<none>" when empty).
 * entries are protobuf-c map entries (key, value strings). */
char *printers_map_text(void *const *entries, size_t n, const char *sep);

/* The header line of k's table. */
void printers_header(tabwriter *tw, const api_kind *k, const printer_opts *o);
/* One row for obj (of k->object). event: the watch event type, for the
 * EVENT column (NULL: "ADDED" when that column is on). */
void printers_row(tabwriter *tw, const api_kind *k, const ProtobufCMessage *obj, const printer_opts *o,
                  const char *event);

/* A Pod's STATUS column as kubectl computes it ("Running", "Init:0/1",
 * "CrashLoopBackOff", "Terminating", ...), into buf. */
void printers_pod_status(const ProtobufCMessage *pod, char *buf, size_t len);

/* The ANSI color a status word gets ("" for none): green for Running,
 * Ready, Active, Completed, Succeeded, Normal; yellow for Pending,
 * Terminating, ContainerCreating, Init:..., Warning; red for the rest of the
 * failures. */
const char *printers_status_color(const char *status);
#define PRINTERS_COLOR_RESET "\x1b[0m"

#endif
