/* services/store/fuzz/request_fuzz.h — what request_fuzz.c (the target),
 * request_fuzz_mutator.c (structure-aware mutations) and common/fuzz/standalone_main.c
 * (the standalone driver) share. The input format is described in
 * request_fuzz.c. */
#ifndef KEEL_SERVICES_STORE_FUZZ_REQUEST_FUZZ_H
#define KEEL_SERVICES_STORE_FUZZ_REQUEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"

enum {
  RF_RANGE,
  RF_PUT,
  RF_DELETE,
  RF_TXN,
  RF_COMPACT,
  RF_LEASE_GRANT,
  RF_LEASE_REVOKE,
  RF_WATCH,
  RF_NTYPES
};

#define RF_FLAG_COMPACTED 0x08 /* the seeded store is compacted at revision 5 */
#define RF_FLAG_EMPTY 0x10     /* start from an empty store */
#define RF_FLAG_LARGE 0x20     /* add 150 keys under /registry/ (B-tree splits, merges) */
#define RF_FLAG_SEQUENCE 0x80  /* frames [type][length][message] follow */
#define RF_MAX_SEQUENCE 64

/* The message type of each request type. */
extern const ProtobufCMessageDescriptor *const request_fuzz_descriptors[RF_NTYPES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes seed inputs through fn (used by both drivers). */
void request_fuzz_seeds(void (*fn)(void *arg, const uint8_t *data, size_t len), void *arg);
void request_fuzz_write_seeds(const char *dir);

/* Mutates data[0..size) in place (at most max bytes) and returns the new size:
 * mostly structure-aware (unpack, change a field, a repeated element, a oneof
 * member, a frame of a sequence, the store variant; pack again), otherwise
 * through `bytes`, a byte-level mutator (libFuzzer's LLVMFuzzerMutate, or the
 * standalone driver's), so the decoder keeps seeing malformed input too. */
size_t request_fuzz_mutate(uint8_t *data, size_t size, size_t max, unsigned int seed,
                           size_t (*bytes)(uint8_t *data, size_t size, size_t max));

#endif
