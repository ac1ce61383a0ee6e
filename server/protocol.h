/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the NBD wire protocol, in one header.
 *
 * Everything that crosses the socket is described here and nowhere
 * else: magic numbers, option and command codes, flags, and the packed
 * structures of the fixed-newstyle handshake and of the transmission
 * phase.  All integers on the wire are big-endian; the structures hold
 * them in wire order and the code converts (be16toh, htobe64, ...)
 * only where it reads or fills a field.  The numbers are those of the
 * NBD protocol document (doc/proto.md of the NetworkBlockDevice
 * project, with its extension-ext-header text for extended headers:
 * 32-byte requests and replies with 64-bit lengths, as libnbd >= 1.18
 * and qemu >= 8.2 speak them).
 */
#ifndef NBDL_PROTOCOL_H
#define NBDL_PROTOCOL_H

#include <stdint.h>

/* Magic numbers. */
#define NBD_MAGIC            UINT64_C (0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT         UINT64_C (0x49484156454f5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC        UINT64_C (0x3e889045565a9)    /* option replies */
#define NBD_REQUEST_MAGIC    UINT32_C (0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)
#define NBD_EXTENDED_REQUEST_MAGIC UINT32_C (0x21e41c71)
#define NBD_EXTENDED_REPLY_MAGIC UINT32_C (0x6e8a278c)

/* Handshake flags (server to client, 16 bits). */
#define NBD_FLAG_FIXED_NEWSTYLE  (1 << 0)
#define NBD_FLAG_NO_ZEROES       (1 << 1)

/* Client flags (32 bits). */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_C_NO_ZEROES      (1 << 1)

/* Options (NBD_OPT_*). */
#define NBD_OPT_EXPORT_NAME        1
#define NBD_OPT_ABORT              2
#define NBD_OPT_LIST               3
#define NBD_OPT_STARTTLS           5
#define NBD_OPT_INFO               6
#define NBD_OPT_GO                 7
#define NBD_OPT_STRUCTURED_REPLY   8
#define NBD_OPT_LIST_META_CONTEXT  9
#define NBD_OPT_SET_META_CONTEXT   10
#define NBD_OPT_EXTENDED_HEADERS   11

/* Option reply types.  Errors have bit 31 set. */
#define NBD_REP_ACK                1
#define NBD_REP_SERVER             2
#define NBD_REP_INFO               3
#define NBD_REP_META_CONTEXT       4
#define NBD_REP_ERR(n)             ((UINT32_C (1) << 31) | (n))
#define NBD_REP_ERR_UNSUP          NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY         NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID        NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM       NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD       NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN        NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN       NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG        NBD_REP_ERR (9)
#define NBD_REP_ERR_EXT_HEADER_REQD NBD_REP_ERR (10)

/* Information types inside NBD_REP_INFO. */
#define NBD_INFO_EXPORT            0
#define NBD_INFO_NAME              1
#define NBD_INFO_DESCRIPTION       2
#define NBD_INFO_BLOCK_SIZE        3

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS         (1 << 0)
#define NBD_FLAG_READ_ONLY         (1 << 1)
#define NBD_FLAG_SEND_FLUSH        (1 << 2)
#define NBD_FLAG_SEND_FUA          (1 << 3)
#define NBD_FLAG_ROTATIONAL        (1 << 4)
#define NBD_FLAG_SEND_TRIM         (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1 << 6)
#define NBD_FLAG_SEND_DF           (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1 << 8)
#define NBD_FLAG_SEND_CACHE        (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1 << 11)
#define NBD_FLAG_BLOCK_STATUS_PAYLOAD (1 << 12) /* extended headers only */

/* Commands (NBD_CMD_*). */
#define NBD_CMD_READ               0
#define NBD_CMD_WRITE              1
#define NBD_CMD_DISC               2
#define NBD_CMD_FLUSH              3
#define NBD_CMD_TRIM               4
#define NBD_CMD_CACHE              5
#define NBD_CMD_WRITE_ZEROES       6
#define NBD_CMD_BLOCK_STATUS       7

/* Command flags. */
#define NBD_CMD_FLAG_FUA           (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE       (1 << 1)
#define NBD_CMD_FLAG_DF            (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE       (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO     (1 << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN   (1 << 5)  /* extended: length is payload */

/* Structured reply flags and chunk types. */
#define NBD_REPLY_FLAG_DONE        (1 << 0)
#define NBD_REPLY_TYPE_NONE        0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6  /* extended headers only */
#define NBD_REPLY_TYPE_ERROR       ((1 << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1 << 15) + 2)

/* base:allocation status flags. */
#define NBD_STATE_HOLE             (1 << 0)
#define NBD_STATE_ZERO             (1 << 1)
#define NBD_STATE_DIRTY            (1 << 0)   /* qemu:dirty-bitmap: changed */

/* Error values on the wire (not the host's errno numbers). */
#define NBD_SUCCESS                0
#define NBD_EPERM                  1
#define NBD_EIO                    5
#define NBD_ENOMEM                 12
#define NBD_EINVAL                 22
#define NBD_ENOSPC                 28
#define NBD_EOVERFLOW              75
#define NBD_ENOTSUP                95
#define NBD_ESHUTDOWN              108

/* Limits the protocol itself sets. */
#define NBD_MAX_STRING             4096  /* names, descriptions, messages */

/* S: greeting of the fixed-newstyle handshake. */
struct nbd_greeting {
  uint64_t magic;               /* NBD_MAGIC */
  uint64_t ihaveopt;            /* NBD_IHAVEOPT */
  uint16_t flags;               /* handshake flags */
} __attribute__ ((packed));

/* C: header of every option; `length' bytes of data follow. */
struct nbd_option {
  uint64_t magic;               /* NBD_IHAVEOPT */
  uint32_t option;              /* NBD_OPT_* */
  uint32_t length;              /* bytes of option data */
} __attribute__ ((packed));

/* S: header of every option reply; `length' bytes of data follow. */
struct nbd_option_reply {
  uint64_t magic;               /* NBD_REP_MAGIC */
  uint32_t option;              /* the option being answered */
  uint32_t reply;               /* NBD_REP_* */
  uint32_t length;              /* bytes of reply data */
} __attribute__ ((packed));

/* S: the end of NBD_OPT_EXPORT_NAME (the zeroes are left out when
 * both sides agreed on NO_ZEROES).
 */
struct nbd_export_name_reply {
  uint64_t size;                /* export size in bytes */
  uint16_t flags;               /* transmission flags */
  uint8_t zeroes[124];          /* historic padding */
} __attribute__ ((packed));

/* S: NBD_REP_INFO payloads. */
struct nbd_info_export {
  uint16_t info;                /* NBD_INFO_EXPORT */
  uint64_t size;                /* export size in bytes */
  uint16_t flags;               /* transmission flags */
} __attribute__ ((packed));

struct nbd_info_block_size {
  uint16_t info;                /* NBD_INFO_BLOCK_SIZE */
  uint32_t minimum;             /* smallest block, a power of 2 */
  uint32_t preferred;           /* block size without read-modify-write */
  uint32_t maximum;             /* largest payload the server accepts */
} __attribute__ ((packed));

/* S: NBD_REP_META_CONTEXT payload header (the name follows). */
struct nbd_meta_context_reply {
  uint32_t context_id;          /* 0 in replies to LIST */
} __attribute__ ((packed));

/* C: a request of the transmission phase; a WRITE's payload follows. */
struct nbd_request {
  uint32_t magic;               /* NBD_REQUEST_MAGIC */
  uint16_t flags;               /* NBD_CMD_FLAG_* */
  uint16_t type;                /* NBD_CMD_* */
  uint64_t cookie;              /* opaque, echoed in the reply */
  uint64_t offset;              /* byte offset in the export */
  uint32_t count;               /* bytes affected (payload of a WRITE) */
} __attribute__ ((packed));

/* C: the same with extended headers: 32 bytes, a 64-bit length.
 * With NBD_CMD_FLAG_PAYLOAD_LEN `length' bytes of payload follow (a
 * WRITE's data, a BLOCK_STATUS filter); without it there is no payload
 * and `length' is the effect length.
 */
struct nbd_request_ext {
  uint32_t magic;               /* NBD_EXTENDED_REQUEST_MAGIC */
  uint16_t flags;               /* NBD_CMD_FLAG_* */
  uint16_t type;                /* NBD_CMD_* */
  uint64_t cookie;              /* opaque, echoed in the reply */
  uint64_t offset;              /* byte offset in the export */
  uint64_t length;              /* payload or effect length */
} __attribute__ ((packed));

/* S: a simple reply; a successful READ's data follows. */
struct nbd_simple_reply {
  uint32_t magic;               /* NBD_SIMPLE_REPLY_MAGIC */
  uint32_t error;               /* NBD_E* */
  uint64_t cookie;              /* of the request */
} __attribute__ ((packed));

/* S: header of one structured reply chunk; `length' bytes follow. */
struct nbd_structured_reply {
  uint32_t magic;               /* NBD_STRUCTURED_REPLY_MAGIC */
  uint16_t flags;               /* NBD_REPLY_FLAG_DONE on the last chunk */
  uint16_t type;                /* NBD_REPLY_TYPE_* */
  uint64_t cookie;              /* of the request */
  uint32_t length;              /* bytes of payload */
} __attribute__ ((packed));

/* S: header of every reply chunk with extended headers (no simple
 * replies then); `length' bytes follow.
 */
struct nbd_extended_reply {
  uint32_t magic;               /* NBD_EXTENDED_REPLY_MAGIC */
  uint16_t flags;               /* NBD_REPLY_FLAG_DONE on the last chunk */
  uint16_t type;                /* NBD_REPLY_TYPE_* */
  uint64_t cookie;              /* of the request */
  uint64_t offset;              /* of the request */
  uint64_t length;              /* bytes of payload */
} __attribute__ ((packed));

/* Chunk payloads. */
struct nbd_chunk_offset_data {
  uint64_t offset;              /* the data follows */
} __attribute__ ((packed));

struct nbd_chunk_offset_hole {
  uint64_t offset;
  uint32_t length;              /* bytes reading as zero */
} __attribute__ ((packed));

struct nbd_chunk_error {
  uint32_t error;               /* NBD_E* */
  uint16_t msg_len;             /* message bytes that follow */
} __attribute__ ((packed));

struct nbd_chunk_block_status {
  uint32_t context_id;          /* descriptors follow */
} __attribute__ ((packed));

struct nbd_block_descriptor {
  uint32_t length;              /* bytes, never 0 */
  uint32_t status;              /* NBD_STATE_* */
} __attribute__ ((packed));

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT: the header, then descriptors. */
struct nbd_chunk_block_status_ext {
  uint32_t context_id;
  uint32_t count;               /* descriptors that follow, never 0 */
} __attribute__ ((packed));

struct nbd_block_descriptor_ext {
  uint64_t length;              /* bytes, never 0 */
  uint64_t status;              /* NBD_STATE_* (high 32 bits 0 for base:) */
} __attribute__ ((packed));

/* C: the payload of NBD_CMD_BLOCK_STATUS with NBD_CMD_FLAG_PAYLOAD_LEN:
 * the effect length, then the context ids to report (4 bytes each).
 */
struct nbd_block_status_payload {
  uint64_t length;              /* effect length */
} __attribute__ ((packed));

#endif /* NBDL_PROTOCOL_H */
