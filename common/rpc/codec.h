/* common/rpc/codec.h — protobuf-c messages <-> gRPC byte buffers (internal).
 *
 * Encoding packs straight into one malloc'ed grpc_slice (no intermediate copy);
 * decoding reads a single uncompressed slice in place and only flattens
 * multi-slice or compressed buffers. */
#ifndef KEEL_COMMON_RPC_CODEC_H
#define KEEL_COMMON_RPC_CODEC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

/* A new byte buffer holding msg's encoding; *size (if not NULL) gets its length. */
grpc_byte_buffer *rpc_codec_encode(const ProtobufCMessage *msg, size_t *size);

/* Decodes bb as desc; NULL when the bytes are not a valid message of that type. */
ProtobufCMessage *rpc_codec_decode(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb);

#endif
