/* common/protojson/protojson_fuzz.h — the JSON mapping fuzz target
 * (protojson_fuzz.c), for libFuzzer and for the standalone driver
 * (common/fuzz/standalone_main.c).
 *
 * Input: byte 0 picks the message type (mod 5: Pod, Deployment, Service, Node,
 * Namespace), the rest is JSON text for protojson_from_string. A refusal must
 * be EINVAL with a message; an acceptance must pass protobuf_c_message_check,
 * convert back to JSON, read back from that JSON's text to the same JSON, and
 * pack + unpack to the same JSON. A violation prints "protojson_fuzz:
 * VIOLATION ..." and aborts, so the fuzzer keeps the input. */
#ifndef KEEL_COMMON_PROTOJSON_PROTOJSON_FUZZ_H
#define KEEL_COMMON_PROTOJSON_PROTOJSON_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Calls add for each built-in seed (the manifests of testdata/, each under its
 * type byte, and a few kubectl-style variants). */
void protojson_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg);

#endif
