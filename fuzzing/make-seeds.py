#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Writes the seed corpora of the fuzz targets (corpus/opts,
# corpus/handshake, corpus/request, corpus/tls): small, valid-looking inputs that
# reach each option, each NBD option and each command, so the fuzzers
# start from the interesting states.  The files are committed; run
# this again (python3 fuzzing/make-seeds.py) after changing it.
# Regression inputs (crashes found) live next to them as crash-*.
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))

IHAVEOPT = 0x49484156454f5054
REQ = 0x25609513
EXT_REQ = 0x21e41c71
(OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO,
 OPT_STRUCTURED_REPLY, OPT_LIST_META, OPT_SET_META,
 OPT_EXTENDED_HEADERS) = (1, 2, 3, 5, 6, 7, 8, 9, 10, 11)
(READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZEROES, BLOCK_STATUS) = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO, PAYLOAD_LEN = 1, 2, 4, 8, 16, 32


def flags(f=3):
    return struct.pack(">I", f)


def option(opt, body=b"", length=None):
    return struct.pack(">QII", IHAVEOPT, opt,
                       len(body) if length is None else length) + body


def name(s):
    return struct.pack(">I", len(s)) + s


def info_body(export, infos=()):
    return name(export) + struct.pack(">H", len(infos)) + b"".join(
        struct.pack(">H", i) for i in infos)


def meta_body(export, queries):
    return name(export) + struct.pack(">I", len(queries)) + b"".join(
        name(q) for q in queries)


def request(cmd, offset=0, count=0, fl=0, cookie=1, payload=None, magic=REQ):
    r = struct.pack(">IHHQQI", magic, fl, cmd, cookie, offset, count)
    if cmd == WRITE and payload is None:
        payload = bytes((i * 7) & 0xff for i in range(count))
    return r + (payload or b"")


def ext_request(cmd, offset=0, length=0, fl=0, cookie=1, payload=None):
    """An extended (32-byte) request; a WRITE's payload is made up."""
    if cmd == WRITE and payload is None:
        payload = bytes((i * 7) & 0xff for i in range(length))
        fl |= PAYLOAD_LEN
    return struct.pack(">IHHQQQ", EXT_REQ, fl, cmd, cookie, offset,
                       length) + (payload or b"")


def status_filter(length, ids):
    return struct.pack(">Q", length) + b"".join(struct.pack(">I", i)
                                                 for i in ids)


def write(corpus, fname, data):
    d = os.path.join(here, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# ---- opts: words separated by newlines, or '@' and group:text lines
opts = {
    "simple": "loopback\nfd=/srv/disk.img\nblk\ncache=64m",
    "spec-example": "loopback\nro,blksz=2048,fd=/srv/cd.iso,rw,fd=/srv/disk.img"
                    "\nblk\ncache=64m,commit=high",
    "blk-all": "blk\ncache=10%:4096,alloc=1m,hash=1024,delwri=2s:5:10,"
               "postpone=3m,commit=low,ra=4k:64k,protect=3,wipe=50%,"
               "bufsz=512:16k,thread=12:2:4,noaiod,ramdisk=16m:4096,"
               "rmvto=none,verbose=3,ro",
    "loopback-all": "loopback\nnio=4,prefix=disk,user=0:0,sync,denywr,seek,"
                    "blksz=4096,heads=2,tracks=63,fd=/a,async,denyno,xtype,"
                    "blksz=,fd=/b",
    "qnx-fs": "blk\nnoatime,exec,creat,before,auto=none,vnode=100,"
              "ncache=64k,devdir=/dev,map=x,exclusive\ndos\nexe=all",
    "errors": "blk\ncache=abc,commit=sometimes\nloopback\nblksz=3000,fd=",
    "times-sizes": "blk\ndelwri=1h,rmvto=30s,cache=2g,ra=0,wipe=1p",
    "plugin-keys": "@loopback:ro,fd=/srv/cd.iso\nblk:cache=1m,nora\n"
                   "loopback:rw,fd=/srv/disk.img",
}
for k, v in opts.items():
    write("opts", k, v.encode())

# ---- handshake: the whole client stream
hs = {
    "go-read": flags() + option(OPT_GO, info_body(b""))
               + request(READ, 0, 4096) + request(DISC),
    "list-abort": flags() + option(OPT_LIST) + option(OPT_ABORT),
    "info-then-export-name": flags(1)
        + option(OPT_INFO, info_body(b"lo0", (0, 1, 2, 3)))
        + option(OPT_EXPORT_NAME, b"ram0")
        + request(WRITE, 512, 512) + request(READ, 0, 1024) + request(DISC),
    "structured-meta": flags() + option(OPT_STRUCTURED_REPLY)
        + option(OPT_LIST_META, meta_body(b"lo0", []))
        + option(OPT_LIST_META, meta_body(b"lo0", [b"base:"]))
        + option(OPT_SET_META, meta_body(b"lo0", [b"base:allocation"]))
        + option(OPT_GO, info_body(b"lo0", (3,)))
        + request(BLOCK_STATUS, 0, 65536) + request(DISC),
    "unsupported": flags() + option(OPT_STARTTLS) + option(99, b"xyz")
        + option(OPT_INFO, b"\x00\x00") + option(OPT_GO, info_body(b"nope"))
        + option(OPT_ABORT),
    "too-long": flags() + option(OPT_LIST, length=100000) + b"\0" * 64,
    "bad-export-name": flags(2) + option(OPT_EXPORT_NAME, b"nonexistent"),
    "bad-flags": flags(0xff),
    "extended": flags() + option(OPT_EXTENDED_HEADERS)
        + option(OPT_EXTENDED_HEADERS) + option(OPT_STRUCTURED_REPLY)
        + option(OPT_SET_META, meta_body(b"lo0", [b"base:allocation"]))
        + option(OPT_GO, info_body(b"lo0", (3,)))
        + ext_request(WRITE, 0, 512) + ext_request(READ, 0, 1024)
        + ext_request(BLOCK_STATUS, 0, 1 << 40) + ext_request(DISC),
    "extended-export-name": flags() + option(OPT_EXTENDED_HEADERS)
        + option(OPT_EXPORT_NAME, b"lo0"),
    "meta-unknown": flags() + option(OPT_STRUCTURED_REPLY)
        + option(OPT_SET_META, meta_body(b"ram0", [b"qemu:dirty-bitmap:x"]))
        + option(OPT_SET_META, meta_body(b"lo0", [b"base:allocation"]) + b"x"),
}
for k, v in hs.items():
    write("handshake", k, v)

# ---- request: first byte picks the handshake (bit 0 structured,
# bit 1 base:allocation, bit 2 ram0, bit 3 extended headers), then
# requests.
rq = {
    "everything": bytes([3]) + request(READ, 0, 4096, cookie=1)
        + request(WRITE, 4096, 512, cookie=2)
        + request(WRITE, 8192, 4096, FUA, cookie=3)
        + request(FLUSH, cookie=4) + request(TRIM, 0, 8192, cookie=5)
        + request(ZEROES, 0, 65536, NO_HOLE, cookie=6)
        + request(ZEROES, 65536, 65536, FAST_ZERO, cookie=7)
        + request(CACHE, 0, 1 << 20, cookie=8)
        + request(BLOCK_STATUS, 0, 1 << 20, REQ_ONE, cookie=9)
        + request(READ, 0, 131072, DF, cookie=10)
        + request(READ, 0, 131072, cookie=11) + request(DISC),
    "simple-unaligned": bytes([0]) + request(WRITE, 100, 1000)
        + request(READ, 99, 1002, cookie=2) + request(READ, 4 << 20, 0)
        + request(FLUSH),
    "ram0": bytes([5]) + request(WRITE, 0, 8192) + request(READ, 0, 8192)
        + request(ZEROES, 4096, 4096) + request(TRIM, 0, 512),
    "errors": bytes([1]) + request(READ, 0, 65 << 20)
        + request(WRITE, (4 << 20) - 512, 1024)
        + request(99, 0, 0) + request(READ, 0, 512, 0x80)
        + request(FLUSH, 5, 5) + request(BLOCK_STATUS, 0, 512)
        + request(READ, 0, 512, DF) + request(WRITE, 0, 16, REQ_ONE),
    "bad-magic": bytes([0]) + request(READ, 0, 512, magic=0x12345678),
    "big-write-cut": bytes([3]) + request(WRITE, 0, 1 << 20)[:28 + 4096],
    "extended": bytes([10]) + ext_request(WRITE, 4096, 512, cookie=2)
        + ext_request(WRITE, 0, 16, 0, cookie=3, payload=b"x" * 16)
        + ext_request(READ, 0, 8192, cookie=4)
        + ext_request(ZEROES, 0, 1 << 34, cookie=5)
        + ext_request(TRIM, 0, (1 << 64) - 1, cookie=6)
        + ext_request(CACHE, 0, 1 << 40, cookie=7)
        + ext_request(BLOCK_STATUS, 0, 1 << 34, cookie=8)
        + ext_request(BLOCK_STATUS, 0, 12, PAYLOAD_LEN, cookie=9,
                      payload=status_filter(1 << 20, [1]))
        + ext_request(BLOCK_STATUS, 0, 16, PAYLOAD_LEN, cookie=10,
                      payload=status_filter(1 << 20, [1, 2]))
        + ext_request(FLUSH, 0, 3, PAYLOAD_LEN, cookie=11, payload=b"abc")
        + ext_request(READ, 0, 1 << 33, cookie=12)
        + request(FLUSH, cookie=13),
    "extended-big-payload": bytes([8])
        + ext_request(WRITE, 0, 1 << 40, PAYLOAD_LEN, payload=b""),
    "pipelined-reads": bytes([1]) + b"".join(
        request(READ, i * 4096, 4096, cookie=i) for i in range(64)),
}
for k, v in rq.items():
    write("request", k, v)

# ---- tls: a script building the client stream (fuzz-tls.c): byte 0
# bit 0 --tls=require (else --tls=on), then records.  The known
# STARTTLS attacks: plaintext injected after STARTTLS (in its packet,
# in the next, or half an option), state negotiated in the clear, a
# second STARTTLS, options in the clear under --tls=require.
REQUIRE, ON = b"\x01", b"\x00"
STARTTLS, PACKET, HELLO = b"\x01", b"\x02", b"\x03"
LO0, RAM0, NOPE = 1, 2, 3


def t_opt(n, data=b""):
    return bytes([0, n, len(data)]) + data


def t_raw(data):
    return bytes([4, len(data)]) + data


def t_info(export=LO0, names=False):
    return bytes([5, 1 | export << 1 | (8 if names else 0)])


def t_go(export=LO0, names=False):
    return bytes([5, export << 1 | (8 if names else 0)])


T_SR, T_EH, T_LIST, T_ABORT = (bytes([6, k]) for k in range(4))


def t_meta(set_, export=LO0, query=0):
    return bytes([7, (1 if set_ else 0) | export << 1 | query << 3])


TLS_UP = STARTTLS + PACKET + HELLO
read_disc = t_raw(request(READ, 0, 4096)) + t_raw(request(DISC))
opt_hdr = option(OPT_STRUCTURED_REPLY)
tls = {
    "require-starttls-go": REQUIRE + TLS_UP + t_go() + read_disc,
    "require-injected-same-packet": REQUIRE + STARTTLS + T_SR
        + t_meta(True) + t_go() + PACKET + HELLO + t_go(),
    "require-injected-next-packet": REQUIRE + STARTTLS + PACKET + T_SR
        + t_go() + PACKET + HELLO + t_go(),
    "require-injected-half-option": REQUIRE + STARTTLS + t_raw(opt_hdr[:10])
        + PACKET + HELLO + t_raw(opt_hdr[10:]) + t_go(),
    "require-injected-before-hello-same-packet": REQUIRE + STARTTLS + PACKET
        + T_SR + HELLO + t_go(),
    "require-starttls-twice": REQUIRE + TLS_UP + STARTTLS + PACKET
        + STARTTLS + t_go() + read_disc,
    "require-starttls-twice-in-clear": REQUIRE + STARTTLS + STARTTLS
        + PACKET + HELLO + t_go(),
    "require-starttls-with-data": REQUIRE + t_opt(OPT_STARTTLS, b"x")
        + PACKET + TLS_UP + t_go(),
    "require-options-before": REQUIRE + T_LIST + t_info(names=True)
        + t_go(NOPE) + T_SR + T_EH + t_meta(False) + t_meta(True)
        + t_opt(99, b"xyz") + t_raw(option(OPT_INFO, length=70000))
        + t_raw(b"\0" * 255) + PACKET + TLS_UP + t_go() + read_disc,
    "require-export-name-before": REQUIRE + t_opt(OPT_EXPORT_NAME, b"lo0")
        + read_disc,
    "require-abort-before": REQUIRE + T_ABORT,
    "require-after-tls-all": REQUIRE + TLS_UP + T_LIST
        + t_info(RAM0, names=True) + t_meta(True) + T_SR
        + t_meta(False, query=1) + t_meta(True, query=2)
        + t_meta(True) + t_info(LO0) + t_go(LO0, names=True)
        + t_raw(request(BLOCK_STATUS, 0, 65536)) + read_disc,
    "require-after-tls-extended": REQUIRE + TLS_UP + T_EH + T_SR + T_EH
        + t_meta(True) + t_go()
        + t_raw(ext_request(READ, 0, 1024)) + t_raw(ext_request(DISC)),
    "require-after-tls-export-name": REQUIRE + TLS_UP
        + t_opt(OPT_EXPORT_NAME, b"ram0") + read_disc,
    "require-hello-split": REQUIRE + STARTTLS + PACKET
        + t_raw(b"\x16\x03\x01C") + PACKET + t_raw(b"HELLO") + t_go(),
    "require-bad-hello": REQUIRE + STARTTLS + PACKET
        + t_raw(b"\x16\x03\x01GARBAGE") + t_go(),
    "on-state-before-starttls": ON + T_SR + T_EH + t_meta(True)
        + STARTTLS + PACKET + HELLO + t_meta(True) + T_SR + t_info()
        + T_EH + t_go(),
    "on-structured-then-tls": ON + T_SR + t_info() + TLS_UP + t_info()
        + T_SR + t_meta(True) + t_go() + read_disc,
    "on-clear-then-go": ON + T_SR + t_go() + STARTTLS + read_disc,
    "on-export-name-clear": ON + t_opt(OPT_EXPORT_NAME, b"lo0") + read_disc,
}
for k, v in tls.items():
    write("tls", k, v)
