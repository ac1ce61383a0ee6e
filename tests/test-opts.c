/* SPDX-License-Identifier: BSD-3-Clause */
/* Table-driven tests of the option parser (opts/).
 *
 * Each case is a command line (words separated by spaces, as after the
 * daemon's own options), and either the error it must give or lines
 * the resolved configuration must contain, as --dump-config prints
 * them (without probing files: blksz=0 means "probe").  Physical memory
 * is pinned at 8 GiB so percentages are predictable.
 */
#undef NDEBUG

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

#define GiB (1024ULL * 1024 * 1024)

struct test_case {
  const char *line;
  const char *error;            /* substring of the error, or NULL */
  const char *expect[12];       /* whole lines of the dump */
  const char *warning;          /* substring of some warning, or NULL */
};

static const struct test_case cases[] = {
  /* ---- The seeds' and SPEC's examples ---- */
  { "loopback ro,fd=/dev/cd0,rw,fd=/fs/hd/iso.img", NULL,
    { "lo0.path=/dev/cd0", "lo0.access=ro", "lo1.path=/fs/hd/iso.img",
      "lo1.access=rw" } },
  { "loopback blksz=2048,fd=/F1,blksz=,fd=/F2", NULL,
    { "lo0.blksz=2048", "lo1.blksz=0" } },
  { "loopback ro,blksz=2048,fd=/srv/cd.iso,rw,fd=/srv/disk.img blk cache=64m,commit=high",
    NULL,
    { "lo0.access=ro", "lo0.blksz=2048", "lo1.access=rw", "lo1.blksz=2048",
      "cache=67108864", "commit=high" } },
  { "blk cache=128k,auto=none loopback fd=/fs/flash/q4.img", NULL,
    { "lo0.path=/fs/flash/q4.img", "cache=131072" }, "'auto' has no effect" },
  { "blk cache=256k,vnode=128,automount=lo0:/mnt/tts:cd loopback ro,blksz=2048,fd=/mnt/EFS/tts.iso",
    NULL, { "lo0.access=ro", "lo0.blksz=2048", "cache=262144" }, "'vnode'" },
  { "fd=/devf/iso blk automount=lo0:/fs/iso:cd",
    "'fd=/devf/iso': options must follow a group keyword: write "
    "'loopback fd=/devf/iso'" },
  { "disk.img", "'disk.img': options must follow a group keyword, "
    "'loopback' or 'blk'; to serve a file, write 'loopback fd=disk.img'" },
  { "cache=64m loopback fd=/a", "write 'blk cache=64m'" },
  /* A QNX line pasted with its program name. */
  { "devb-loopback loopback fd=/a blk cache=1m", NULL,
    { "lo0.path=/a", "cache=1048576" } },
  { "/sbin/devb-loopback blk cache=1m loopback fd=/a", NULL,
    { "lo0.path=/a" } },
  { "loopback fd=/a devb-loopback", "unknown loopback option" },

  /* ---- Real QNX command lines (qnx-options.md section 6) ---- */
  { "blk cache=64M,auto=partition,vnode=2000,ncache=2000,noatime,commit=low dos exe=all loopback fd=/img",
    NULL, { "cache=67108864", "commit=low", "lo0.path=/img" }, "'dos' options" },
  { "cam quiet blk cache=1m,vnode=384,auto=none,delwri=2:2,rmvto=none,noatime disk name=umass cdrom name=umasscd loopback fd=/img",
    NULL, { "cache=1048576", "delwri=2", "postpone=2", "rmvto=none" },
    "'cdrom' options" },
  { "cam quiet blk auto=partition,cache=100k loopback fd=/img", NULL,
    { "cache=102400", "ra=4096:25600" } },
  { "blk noatime cd exe loopback fd=/img", NULL, { "lo0.path=/img" },
    "'cd' options" },
  { "cam user=1000:1000 blk cache=64M,auto=partition,vnode=2000,ncache=2000,commit=low loopback fd=/img",
    NULL, { "cache=67108864", "commit=low", "prefix=lo" } },
  { "blk noatime,cache=512k,lock,normv,rmvto=none,automount=mmc0t177:/fs/mmc0:qnx6:ro,automount=mmc0t178:/fs/mmc1:qnx6:ro loopback fd=/img",
    NULL, { "cache=524288", "rmvto=none" }, "'automount'" },
  { "blk cache=10M,noatime,ra=128k:128k,automount=@/etc/sdcard.mnt.rules disk name=sda cam quiet,cache,pnp sdmmc x loopback fd=/img",
    NULL, { "cache=10485760", "ra=131072:131072" } },
  { "cam pnp blk cache=2m,auto=partition,automount=hd0@dos:/fs/usb0,ro dos exe=all loopback fd=/img",
    NULL, { "readonly=1", "lo0.access=ro", "cache=2097152" } },
  { "loopback blksz=512,prefix=qvmdisk,fd=/data/hypervisor/guest/disk-qvm", NULL,
    { "prefix=qvmdisk", "qvmdisk0.path=/data/hypervisor/guest/disk-qvm",
      "qvmdisk0.blksz=512" } },
  { "blk cache=128k,automount=bdper0:/mnt:qnx4 loopback fd=/img,prefix=bdper,blksz=4096",
    NULL, { "bdper0.path=/img", "bdper0.blksz=0" },
    "'blksz=4096' comes after the last fd= and applies to no export" },
  { "loopback ro,denyno,fd=/dev/shmem/qfd-probe.img,seek blk cache=1m", NULL,
    { "lo0.access=ro", "lo0.deny=denyno", "lo0.io=probe" },
    "'seek' comes after the last fd=" },
  { "loopback fd=/a,async", NULL, { "lo0.sync=sync" }, "'async' comes after" },
  /* A trailing ro would leave the file writable: refused. */
  { "loopback fd=/a,ro", "would leave /a writable: order-dependent "
    "options apply to the fd= after them, so write 'loopback ro,fd=/a'" },
  { "loopback ro,fd=/a,rw,fd=/b,ro,blksz=512", "would leave /b writable" },
  { "loopback ro blk ramdisk=1m", "'ro' applies to no export" },
  { "loopback ro,fd=/a,ro", NULL, { "lo0.access=ro" }, "'ro' comes after" },
  { "loopback fd=/a,ro blk ro", NULL, { "lo0.access=ro", "readonly=1" },
    "'ro' comes after" },
  { "loopback fd=/a,prefix=qvm", NULL, { "qvm0.path=/a" } },
  { "blk automount=+fd0:/dos/a:dos,automount=+fd0:/fd:qnx4 loopback fd=/img",
    NULL, { "lo0.path=/img" } },
  { "blk cache=512k loopback fd=/img", NULL, { "cache=524288" } },
  { "ram capacity=1 blk ramdisk=10m,cache=512k,vnode=256", NULL,
    { "ramdisk=10485760", "ram0.size=10485760", "ram0.blksz=512",
      "cache=524288" }, "'ram' options" },

  /* ---- Defaults ---- */
  { "loopback fd=/a", NULL,
    { "nio=1", "prefix=lo", "lo0.access=rw", "lo0.sync=sync",
      "lo0.deny=denyrw", "lo0.io=probe", "lo0.blksz=0", "lo0.heads=1",
      "lo0.tracks=1", "cache=1288490188", "alloc=0", "hash=524288" } },
  { "loopback fd=/a", NULL,
    { "delwri=2", "postpone=2", "commit=medium", "ra=4096:262144",
      "protect=2", "wipe=1288490188", "bufsz=512:16384", "thread=12:2:4",
      "readonly=0", "noaiod=0", "rmvto=2", "verbose=0" } },

  /* ---- Order-dependent and global loopback options ---- */
  { "loopback fd=/a,ro,fd=/b,async,fd=/c", NULL,
    { "lo0.access=rw", "lo1.access=ro", "lo1.sync=sync", "lo2.access=ro",
      "lo2.sync=async" } },
  { "loopback denyno,fd=/a,denyrd,fd=/b,denywr,fd=/c,denyrw,fd=/d", NULL,
    { "lo0.deny=denyno", "lo1.deny=denyrd", "lo2.deny=denywr",
      "lo3.deny=denyrw" } },
  { "loopback seek,fd=/a,xtype,fd=/b", NULL,
    { "lo0.io=seek", "lo1.io=xtype" } },
  /* O_DIRECT: where the file system has it unless told, order-dependent. */
  { "loopback fd=/a,direct,fd=/b,nodirect,fd=/c", NULL,
    { "lo0.direct=auto", "lo1.direct=yes", "lo2.direct=no" } },
  { "loopback fd=/a,nodirect", NULL, { "lo0.direct=auto" },
    "'nodirect' comes after the last fd=" },
  { "loopback heads=16,tracks=63,fd=/a,heads=2,fd=/b", NULL,
    { "lo0.heads=16", "lo0.tracks=63", "lo1.heads=2", "lo1.tracks=63" } },
  /* Changed-block tracking: order-dependent, off by default. */
  { "loopback fd=/a,cbt,fd=/b,cbt=4k,fd=/c,nocbt,fd=/d", NULL,
    { "lo0.cbt=0", "lo1.cbt=65536", "lo1.cbtfile=/b.cbt", "lo2.cbt=4096",
      "lo3.cbt=0" } },
  { "loopback cbt=1m,cbtdir=/var/lib/cbt,fd=/srv/a.img,cbtdir=,fd=/b", NULL,
    { "lo0.cbt=1048576", "lo0.cbtfile=/var/lib/cbt/a.img.cbt",
      "lo1.cbtfile=/b.cbt" } },
  { "loopback cbt=512,fd=/a", NULL, { "lo0.cbt=512" } },
  { "loopback cbt=64m,fd=/a", NULL, { "lo0.cbt=67108864" } },
  { "loopback fd=/a,prefix=disk", NULL, { "disk0.path=/a", "prefix=disk" } },
  { "loopback fd=/a,nio=0", NULL, { "nio=0" } },
  { "loopback nio=4,fd=/a,fd=/b", NULL, { "nio=4", "lo1.path=/b" } },
  { "loopback user=1000:100,fd=/a", NULL, { "user=1000:100" } },
  { "loopback user=0,fd=/a", NULL, { "user=0:0" } },
  { "loopback user=root,fd=/a", NULL, { "user=0:0" } },
  { "loopback user=54321,fd=/a", NULL, { "user=54321" } },
  { "loopback ro,fd=/a loopback fd=/b", NULL,
    { "lo0.access=ro", "lo1.access=ro" } },
  { "loopback fd=/a ro,fd=/b", NULL, { "lo0.access=rw", "lo1.access=ro" } },
  { "loopback blksz=1024,fd=/a,blksz=4096,fd=/b,blksz=,fd=/c", NULL,
    { "lo0.blksz=1024", "lo1.blksz=4096", "lo2.blksz=0" } },
  { "blk ro loopback fd=/a,rw,fd=/b", NULL,
    { "lo0.access=ro", "lo1.access=ro", "readonly=1" } },

  /* ---- blk sizes, times and values ---- */
  { "loopback fd=/a blk cache=25%", NULL, { "cache=2147483648" } },
  { "loopback fd=/a blk cache=1G", NULL, { "cache=1073741824" } },
  { "loopback fd=/a blk cache=1g", NULL, { "cache=1073741824" } },
  { "loopback fd=/a blk cache=64M", NULL, { "cache=67108864" } },
  { "loopback fd=/a blk cache=1024K", NULL, { "cache=1048576" } },
  { "loopback fd=/a blk cache=65536b", NULL, { "cache=65536" } },
  { "loopback fd=/a blk cache=1048576", NULL, { "cache=1048576" } },
  { "loopback fd=/a blk cache=256p", NULL, { "cache=1048576" } },
  { "loopback fd=/a blk cache=64m:1000", NULL, { "hash=1000" } },
  { "loopback fd=/a blk cache=64m", NULL, { "hash=16384" } },
  { "loopback fd=/a blk hash=512", NULL, { "hash=512" } },
  { "loopback fd=/a blk cache=64m,alloc=16m", NULL, { "alloc=16777216" } },
  { "loopback fd=/a blk cache=64m,alloc=upfront", NULL, { "alloc=67108864" } },
  { "loopback fd=/a blk cache=64m,alloc=demand", NULL, { "alloc=0" } },
  { "loopback fd=/a blk alloc=1%", NULL, { "alloc=85899345" } },
  { "loopback fd=/a blk cache=64m,wipe=50%", NULL, { "wipe=33554432" } },
  { "loopback fd=/a blk wipe=50%,cache=64m", NULL, { "wipe=33554432" } },
  { "loopback fd=/a blk cache=64m,wipe=8m", NULL, { "wipe=8388608" } },
  { "loopback fd=/a blk delwri=5", NULL, { "delwri=5", "postpone=5" } },
  { "loopback fd=/a blk delwri=1m", NULL, { "delwri=60", "postpone=60" } },
  { "loopback fd=/a blk delwri=1h", NULL, { "delwri=3600" } },
  { "loopback fd=/a blk delwri=0", NULL, { "delwri=0", "postpone=0" } },
  { "loopback fd=/a blk delwri=0.25s", NULL, { "delwri=0.25" } },
  { "loopback fd=/a blk delwri=2:1:10", NULL, { "delwri=2", "postpone=10" } },
  { "loopback fd=/a blk delwri=2S,postpone=30S", NULL, { "postpone=30" } },
  { "loopback fd=/a blk postpone=5", NULL, { "delwri=2", "postpone=5" } },
  { "loopback fd=/a blk commit=none", NULL, { "commit=none" } },
  { "loopback fd=/a blk commit=low", NULL, { "commit=low" } },
  { "loopback fd=/a blk ra=16k:1m", NULL, { "ra=16384:1048576" } },
  { "loopback fd=/a blk ra=8k", NULL, { "ra=8192:262144" } },
  { "loopback fd=/a blk ra=0", NULL, { "ra=0:0" } },
  { "loopback fd=/a blk nora", NULL, { "ra=0:0" } },
  { "loopback fd=/a blk protect=0", NULL, { "protect=0" } },
  { "loopback fd=/a blk bufsz=1k:4k", NULL, { "bufsz=1024:4096" } },
  { "loopback fd=/a blk bufsz=2048", NULL, { "bufsz=2048:16384" } },
  { "loopback fd=/a blk thread=8:1:3", NULL, { "thread=8:1:3" } },
  { "loopback fd=/a blk thread=1", NULL, { "thread=1:1:1" } },
  { "loopback fd=/a blk thread=32", NULL, { "thread=32:2:4" } },
  { "loopback fd=/a blk thread=20:6", NULL, { "thread=20:6:6" } },
  { "loopback fd=/a blk noaiod", NULL, { "noaiod=1" } },
  { "blk ramdisk=1m:4096", NULL, { "ram0.blksz=4096", "ramdisk=1048576" } },
  { "loopback fd=/a blk rmvto=10s", NULL, { "rmvto=10" } },
  { "loopback fd=/a blk rmvto=none", NULL, { "rmvto=none" } },
  { "loopback fd=/a blk rw", NULL, { "readonly=0", "lo0.access=rw" } },
  { "loopback fd=/a blk verbose", NULL, { "verbose=1" } },
  { "loopback fd=/a blk verbose=3", NULL, { "verbose=3" } },
  { "loopback fd=/a blk verbose=!r", NULL, { "verbose=1" } },
  { "loopback fd=/a blk cache=64m ra=8k:64k", NULL,
    { "cache=67108864", "ra=8192:65536" } },
  { "blk cache=64m loopback fd=/a blk commit=high", NULL,
    { "cache=67108864", "commit=high" } },

  /* ---- File-system level options: validated, warned ---- */
  { "loopback fd=/a blk devdir=/dev,exclusive,priority=21,rmvpoll=0", NULL,
    { "lo0.path=/a" }, "'exclusive' has no effect" },
  { "loopback fd=/a blk fdinfo=ncache,naming=a1,devno=class,enumpart=windows",
    NULL, { "lo0.path=/a" }, "'naming'" },
  { "loopback fd=/a blk error=mountro,marking=dynamic,map=100:10", NULL,
    { "lo0.path=/a" }, "'marking'" },
  { "loopback fd=/a blk atime,creat,nocreat,exec,noexec,nolock,suid,nosuid,rmv,before,after",
    NULL, { "lo0.path=/a" }, "'nosuid'" },
  { "loopback fd=/a blk memory=sysram,mfu=50%,maxio=128,maxcio=64,pregrow-fill=zero",
    NULL, { "lo0.path=/a" }, "'mfu'" },
  { "loopback fd=/a blk fse-device=/dev/x,fse-size=1m,fse-period=5s,hookdll=x.so",
    NULL, { "lo0.path=/a" }, "'hookdll'" },
  { "loopback fd=/a blk mntperms=0755,mntuid=0,mntgid=0", NULL,
    { "lo0.path=/a" }, "'mntperms'" },
  { "loopback fd=/a blk auto=sometimes", "auto=sometimes: expected auto=none|partition" },
  { "loopback fd=/a blk error=explode", "error=explode: expected" },
  { "loopback fd=/a blk vnode=lots", "vnode=lots: expected vnode=N[:MAX]" },
  { "loopback fd=/a blk automount=:/mnt", "automount=:/mnt: expected" },
  { "loopback fd=/a blk rmvpoll=soon", "rmvpoll=soon: expected a time" },
  { "loopback fd=/a blk noatime=1", "noatime=1: noatime takes no value" },

  /* ---- Bad input ---- */
  { "loopback blksz=3000,fd=/a", "blksz=3000: must be 512, 1024, 2048 or 4096" },
  { "loopback blksz=abc,fd=/a", "blksz=abc: must be 512, 1024, 2048 or 4096" },
  { "loopback fd=/a blk bufsz=1k:2k loopback blksz=4096,fd=/b",
    "blksz=4096 (for fd=/b): outside the allowed block sizes bufsz=1024:2048" },
  { "loopback fd=/a,", "empty option in 'fd=/a,' (stray comma?)" },
  { "loopback ,fd=/a", "stray comma" },
  { "loopback fd=/a,,ro", "stray comma" },
  { "loopback fd=", "fd=: empty value; expected fd=PATH" },
  { "loopback fd", "fd: needs a value: fd=PATH" },
  { "loopback fd=/a blk cache=", "cache=: empty value" },
  { "loopback fd=/a blk cache=64x", "cache=64x: unknown size suffix" },
  { "loopback fd=/a blk cache=64mb", "cache=64mb: unexpected characters after the size suffix" },
  { "loopback fd=/a blk cache=-1", "cache=-1: expected a size" },
  { "loopback fd=/a blk cache=101%", "cache=101%: a percentage must be at most 100%" },
  { "loopback fd=/a blk cache=99999999999999999999", "cache=99999999999999999999: size too large" },
  { "loopback fd=/a blk cache=99999999999g", "cache=99999999999g: size too large" },
  { "loopback fd=/a blk cache=16k", "the cache must be at least 64k" },
  { "loopback fd=/a blk cache=9g", "more than the physical memory" },
  { "loopback fd=/a blk cache=64m,cache=32m", "cache=32m: given twice (first as cache=64m)" },
  { "loopback fd=/a blk cache=64m blk cache=32m", "given twice" },
  { "loopback fd=/a blk commit=high,commit=low", "commit=low: given twice" },
  { "loopback fd=/a blk ro,rw", "rw: conflicts with ro given earlier" },
  { "loopback fd=/a blk ra=4k,nora", "nora: conflicts with ra=4k given earlier" },
  { "loopback fd=/a blk cache=64m:100,hash=200", "hash=200: conflicts with the :HASH of cache=" },
  { "loopback fd=/a blk hash=0", "hash=0: must be a number from 1" },
  { "loopback fd=/a blk delwri=2:1:10,postpone=3", "postpone=3: conflicts with the :POSTPONE of delwri=" },
  { "loopback fd=/a blk delwri=5,postpone=1", "postpone=1: shorter than delwri=5" },
  { "loopback fd=/a blk delwri=2:1:10:4", "delwri=2:1:10:4: expected delwri=T[:T2[:POSTPONE]]" },
  { "loopback fd=/a blk delwri=2d", "delwri=2d: unknown time suffix" },
  { "loopback fd=/a blk delwri=200h", "delwri=200h: time too long" },
  { "loopback fd=/a blk delwri=1.", "delwri=1.: expected digits after the decimal point" },
  { "loopback fd=/a blk commit=max", "commit=max: must be none, low, medium or high" },
  { "loopback fd=/a blk thread=12:5:4", "thread=12:5:4: low water 5 is above high water 4" },
  { "loopback fd=/a blk thread=4:2:8", "thread=4:2:8: high water 8 is above the maximum 4" },
  { "loopback fd=/a blk thread=0", "thread=0: expected thread=MAX[:LOW[:HIGH]]" },
  { "loopback fd=/a blk thread=8::2", "thread=8::2: expected thread=MAX[:LOW[:HIGH]]" },
  { "loopback fd=/a blk ra=64k:4k", "ra=64k:4k: MIN is larger than MAX" },
  { "loopback fd=/a blk ra=1%", "ra=1%: a percentage is not allowed here" },
  { "loopback fd=/a blk cache=1m,ra=1m", "the read-ahead window must be at most half" },
  { "loopback fd=/a blk bufsz=1000:4k", "bufsz=1000:4k: sizes must be powers of 2" },
  { "loopback fd=/a blk bufsz=4k:1k", "bufsz=4k:1k: MIN is larger than MAX" },
  { "loopback fd=/a blk ramdisk=1000", "ramdisk=1000: SIZE must be a non-zero multiple" },
  { "loopback fd=/a blk ramdisk=1m:3000", "ramdisk=1m:3000: SECTOR must be 512" },
  { "loopback fd=/a blk cache=64m,alloc=128m", "alloc=128m: more than cache=" },
  { "loopback fd=/a blk alloc=lots", "alloc=lots: expected a size" },
  { "loopback fd=/a blk cache=64m,wipe=128m", "wipe=128m: more than cache=" },
  { "loopback fd=/a blk wipe=0%", "wipe=0%: must be more than 0%" },
  { "loopback fd=/a blk protect=1000", "protect=1000: must be a number from 0 to 255" },
  { "loopback fd=/a blk verbose=xyz", "verbose=xyz: expected a level" },
  { "loopback fd=/a blk rmvto=never", "rmvto=never: expected a time: a number with an optional suffix h, m or s (e.g. 2s), or none" },
  { "loopback fd=/a blk bogus=1", "bogus=1: unknown blk option" },
  { "loopback fd=/a,colour=red", "colour=red: unknown loopback option" },
  { "loopback fd=/a,cache=64m", "cache=64m: is a blk option, not a loopback one" },
  { "loopback fd=/a blk nio=2", "nio=2: is a loopback option, not a blk one" },
  { "loopback ro=1,fd=/a", "ro=1: ro takes no value" },
  { "loopback nio=2,nio=3,fd=/a", "nio=3: given twice" },
  { "loopback fd=/a,prefix=a,prefix=b", "prefix=b: given twice" },
  { "loopback nio=65,fd=/a", "nio=65: must be a number from 0 to 64" },
  { "loopback prefix=a/b,fd=/a", "prefix=a/b: only letters" },
  { "loopback prefix=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,fd=/a", "too long" },
  { "loopback cbt=3000,fd=/a", "cbt=3000: the granularity must be a power of two" },
  { "loopback cbt,cbtdir=/x,fd=/a/d.img,fd=/b/d.img",
    "fd=/a/d.img and fd=/b/d.img would share the tracking file /x/d.img.cbt" },
  { "loopback cbt=256,fd=/a", "cbt=256: the granularity must be a power of two" },
  { "loopback cbt=128m,fd=/a", "cbt=128m: the granularity must be a power of two" },
  { "loopback cbt=x,fd=/a", "cbt=x: the granularity must be a power of two" },
  { "loopback nocbt=1,fd=/a", "nocbt takes no value" },
  { "loopback cbtdir,fd=/a", "needs a value" },
  { "loopback heads=0,fd=/a", "heads=0: must be a number from 1 to 255" },
  { "loopback tracks=256,fd=/a", "tracks=256: must be a number from 1 to 255" },
  { "loopback user=nosuchuser12345,fd=/a", "user=nosuchuser12345: no such user" },
  { "loopback user=0:nosuchgroup12345,fd=/a", "no such group" },
  { "loopback user=:5,fd=/a", "user=:5: expected user=UID[:GID]" },
  { "loopback", "loopback: no options follow the keyword" },
  { "loopback blk cache=1m", "loopback: no options follow the keyword" },
  { "blk", "blk: no options follow the keyword" },
  { "blk cache=1m", "nothing to export" },
  { "", "nothing to export" },
  { "loopback ro,denyno", "nothing to export" },
};

/* Split a line into words (modifies a copy). */
static int
split_words (char *s, char **words, int max)
{
  int n = 0;
  for (char *w = strtok (s, " "); w && n < max; w = strtok (NULL, " "))
    words[n++] = w;
  return n;
}

static bool
has_line (const char *text, const char *line)
{
  size_t len = strlen (line);
  for (const char *p = text; (p = strstr (p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && (p[len] == '\n' || p[len] == '\0'))
      return true;
  return false;
}

static int
run_case (const struct test_case *tc)
{
  char *copy = strdup (tc->line), *words[64], *err = NULL, *dump = NULL;
  int nwords = split_words (copy, words, 64), ok = 1;
  struct opts *o = opts_new ();
  struct config *cfg = NULL;
  size_t dumplen;
  FILE *fp;

  if (o == NULL || copy == NULL)
    abort ();
  opts_set_physical_memory (o, 8 * GiB);
  if (opts_parse_words (o, nwords, words, &err) == 0)
    cfg = opts_finish (o, &err);

  if (tc->error) {
    if (cfg) {
      fprintf (stderr, "FAIL: '%s': accepted, expected error '%s'\n",
               tc->line, tc->error);
      ok = 0;
    }
    else if (err == NULL || strstr (err, tc->error) == NULL) {
      fprintf (stderr, "FAIL: '%s': error '%s', expected '%s'\n",
               tc->line, err ? err : "(none)", tc->error);
      ok = 0;
    }
    goto out;
  }
  if (cfg == NULL) {
    fprintf (stderr, "FAIL: '%s': %s\n", tc->line, err ? err : "(no message)");
    ok = 0;
    goto out;
  }

  fp = open_memstream (&dump, &dumplen);
  if (fp == NULL || config_dump (cfg, fp, NULL) == -1)
    abort ();
  fclose (fp);
  for (size_t i = 0; i < 12 && tc->expect[i]; i++)
    if (!has_line (dump, tc->expect[i])) {
      fprintf (stderr, "FAIL: '%s': no line '%s' in:\n%s", tc->line,
               tc->expect[i], dump);
      ok = 0;
    }
  if (tc->warning) {
    bool found = false;
    for (size_t i = 0; i < cfg->nr_warnings; i++)
      found |= strstr (cfg->warnings[i], tc->warning) != NULL;
    if (!found) {
      fprintf (stderr, "FAIL: '%s': no warning containing '%s'\n", tc->line,
               tc->warning);
      ok = 0;
    }
  }
  if (!tc->warning && cfg->nr_warnings > 0 && strstr (tc->line, " dos ") == NULL) {
    /* Only file-system options and foreign groups warn. */
    bool fs_line = false;
    for (size_t i = 0; i < opts_table_len; i++)
      if (opts_table[i].scope == SCOPE_NO_EFFECT &&
          strstr (tc->line, opts_table[i].name))
        fs_line = true;
    if (!fs_line && !strstr (tc->line, "cam ") && !strstr (tc->line, "disk ")) {
      fprintf (stderr, "FAIL: '%s': unexpected warning '%s'\n", tc->line,
               cfg->warnings[0]);
      ok = 0;
    }
  }

 out:
  free (dump);
  free (err);
  free (copy);
  config_free (cfg);
  opts_free (o);
  return ok;
}

/* Each file-system option warns once however often it is given. */
static int
test_warn_once (void)
{
  char *words[] = { "loopback", "fd=/a", "blk", "noatime,noatime",
                    "blk", "automount=a:/b,automount=c:/d" };
  struct opts *o = opts_new ();
  struct config *cfg;
  char *err = NULL;
  int ok;

  opts_set_physical_memory (o, 8 * GiB);
  if (opts_parse_words (o, 6, words, &err) == -1 ||
      (cfg = opts_finish (o, &err)) == NULL) {
    fprintf (stderr, "FAIL: warn-once: %s\n", err);
    return 0;
  }
  ok = cfg->nr_warnings == 2;
  if (!ok)
    fprintf (stderr, "FAIL: warn-once: %zu warnings, expected 2\n",
             cfg->nr_warnings);
  config_free (cfg);
  opts_free (o);
  return ok;
}

/* The plugin feeds groups one key at a time: same parser, same state. */
static int
test_parse_group (void)
{
  struct opts *o = opts_new ();
  struct config *cfg;
  char *err = NULL;
  int ok;

  opts_set_physical_memory (o, 8 * GiB);
  if (opts_parse_group (o, OPTS_GROUP_LOOPBACK, "ro,fd=/a", &err) == -1 ||
      opts_parse_group (o, OPTS_GROUP_BLK, "cache=1m", &err) == -1 ||
      opts_parse_group (o, OPTS_GROUP_LOOPBACK, "fd=/b", &err) == -1 ||
      (cfg = opts_finish (o, &err)) == NULL) {
    fprintf (stderr, "FAIL: parse_group: %s\n", err);
    return 0;
  }
  ok = cfg->nr_exports == 2 && cfg->exports[1].access == ACCESS_RO &&
    cfg->blk.cache == 1024 * 1024 && strcmp (cfg->exports[1].name, "lo1") == 0;
  if (!ok)
    fprintf (stderr, "FAIL: parse_group: wrong configuration\n");
  config_free (cfg);
  opts_free (o);
  return ok;
}

/* The table has no duplicate rows and every row can be shown in --help. */
static int
test_table (void)
{
  int ok = 1;

  for (size_t i = 0; i < opts_table_len; i++) {
    for (size_t j = i + 1; j < opts_table_len; j++)
      if (opts_table[i].group == opts_table[j].group &&
          strcmp (opts_table[i].name, opts_table[j].name) == 0) {
        fprintf (stderr, "FAIL: option %s twice in the table\n",
                 opts_table[i].name);
        ok = 0;
      }
    if (!opts_table[i].syntax || !opts_table[i].help ||
        strncmp (opts_table[i].syntax, opts_table[i].name,
                 strlen (opts_table[i].name)) != 0) {
      fprintf (stderr, "FAIL: option %s: bad syntax or help\n",
               opts_table[i].name);
      ok = 0;
    }
  }
  return ok;
}

int
main (void)
{
  size_t n = sizeof cases / sizeof cases[0], failed = 0;

  for (size_t i = 0; i < n; i++)
    failed += !run_case (&cases[i]);
  failed += !test_warn_once ();
  failed += !test_parse_group ();
  failed += !test_table ();
  printf ("%zu cases, %zu failed\n", n + 3, failed);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
