#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The TLS and --allow options: every bad combination, missing or
# broken credential is a clear error naming what is wrong, before the
# server listens (exit 1); a bad PSK line is reported by number and
# its key never printed.  --help lists them all.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -x -k alice 1M
lb () { timeout 20 nbd-loopback -f -U "$tmp/sock" "$@" loopback fd="$tmp/disk.img"; }

nbd-loopback --help > "$tmp/help"
for o in --tls --tls-certificates --tls-psk --tls-verify-peer --allow; do
    grep -q -- "$o " "$tmp/help"
done

expect_fail_with '--tls=maybe: expected off, on or require' lb --tls=maybe
expect_fail_with '--tls=on: TLS needs --tls-certificates DIR or --tls-psk FILE' lb --tls=on
expect_fail_with '--tls=require: TLS needs' lb --tls=require
expect_fail_with '--tls-verify-peer: client certificates are checked against the CA' \
    lb --tls-psk="$tmp/keys.psk" --tls-verify-peer
expect_fail_with '--allow 127.0.0.1/33: expected an IPv4 or IPv6 address' lb --allow 127.0.0.1/33
expect_fail_with '--allow localhost: expected' lb --allow localhost
expect_fail_with '--allow ::1/129: expected' lb --allow ::1/129

# Credentials that are not there or do not fit.
expect_fail_with "--tls-certificates $tmp/nowhere: No such file" \
    lb --tls-certificates="$tmp/nowhere"
mkdir "$tmp/empty"
expect_fail_with "--tls-certificates: .*/empty/server-cert.pem: No such file" \
    lb --tls-certificates="$tmp/empty"
mkdir "$tmp/mismatch"
make_cert "$tmp/pki" "$tmp/mismatch" server server
cp "$tmp/pki/server-key.pem" "$tmp/mismatch/server-key.pem"
expect_fail_with "--tls-certificates: .*/mismatch/server-key.pem does not match .*/mismatch/server-cert.pem" \
    lb --tls-certificates="$tmp/mismatch"
mkdir "$tmp/noca"
cp "$tmp/pki/server-"* "$tmp/noca/"
expect_fail_with "--tls-verify-peer: .*/noca/ca-cert.pem: No such file" \
    lb --tls-certificates="$tmp/noca" --tls-verify-peer
expect_fail_with "--tls-psk $tmp/none.psk: No such file" lb --tls-psk="$tmp/none.psk"

key=$(cut -d: -f2 "$tmp/keys.psk")
printf 'alice:%s\nbob:%sZ\n' "$key" "${key:1}" > "$tmp/bad.psk"
out=$(lb --tls-psk="$tmp/bad.psk" 2>&1) && fail "a bad PSK file was accepted"
echo "$out"
grep -q "bad.psk: line 2: the key is not hexadecimal" <<<"$out"
if grep -q "$key" <<<"$out"; then
    fail "the message shows the key"
fi
printf 'alice:%s\nalice:%s\n' "$key" "$key" > "$tmp/twice.psk"
expect_fail_with "line 2: user 'alice' appears twice" lb --tls-psk="$tmp/twice.psk"
printf 'carol\n' > "$tmp/nokey.psk"
expect_fail_with 'line 1: expected username:hexkey' lb --tls-psk="$tmp/nokey.psk"
printf 'dave:%s%s%s\n' "$key" "$key" "$key" > "$tmp/long.psk"
expect_fail_with 'line 1: the key must be an even number of hex digits, at most 64 bytes' \
    lb --tls-psk="$tmp/long.psk"
: > "$tmp/empty.psk"
expect_fail_with 'no username:hexkey line' lb --tls-psk="$tmp/empty.psk"
test ! -e "$tmp/sock"
