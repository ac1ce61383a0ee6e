/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz-tls: the fake TLS transport (fake-tls.c) and its handshake. */
#ifndef NBDL_FUZZ_FAKE_TLS_H
#define NBDL_FUZZ_FAKE_TLS_H

#include <stdint.h>

/* What the client sends as its "ClientHello", and the server answers;
 * a TLS handshake record's first bytes, then a tag.
 */
#define FAKE_TLS_CLIENT_HELLO "\x16\x03\x01" "CHELLO"
#define FAKE_TLS_SERVER_HELLO "\x16\x03\x03" "SHELLO"
#define FAKE_TLS_HELLO_LEN 9

/* Bytes the server received from inside the fake TLS. */
extern uint64_t fake_tls_bytes_in_tls;

#endif /* NBDL_FUZZ_FAKE_TLS_H */
