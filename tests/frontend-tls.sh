# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-{daemon,plugin}-tls.sh and their test-newest-*
# twins): TLS with real clients through either front end (the daemon's
# OpenSSL, or nbdkit's GnuTLS for the plugin), with --tls=require.
# PSK: nbdinfo and nbdcopy (an image copied in and out, checked in the
# host file); X.509: qemu-img info and convert.  With libnbd 1.22 the
# daemon negotiates extended headers after STARTTLS.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

requires_frontend "$frontend"
tls_setup -c nbdinfo -c nbdcopy -c qemu-img -x -k alice 16M
export tmp
head -c 2M /dev/urandom > "$tmp/in.img"

# serve TLS-OPTIONS... -- CMD: serve disk.img with those TLS options on a
# private socket while CMD runs.
serve ()
{
    local opts=() cmd
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    cmd=$2
    case $frontend in
    daemon)
        nbd-loopback "${opts[@]}" -U - --run "$cmd" \
            loopback fd="$tmp/disk.img" blk cache=16m
        ;;
    plugin)
        loopback_nbdkit "${opts[@]}" -U - --run "$cmd" "$loopback_plugin" \
            loopback=fd="$tmp/disk.img" blk=cache=16m
        ;;
    esac
}

# A plaintext client is refused too (the daemon's refusal; nbdkit's is
# nbdkit's).
export frontend
serve --tls=require --tls-psk="$tmp/keys.psk" -- '
    psk="nbds+unix://alice@/lo0?socket=$unixsocket&tls-psk-file=$tmp/keys.psk"
    nbdinfo "$psk" > "$tmp/info.txt" &&
    nbdcopy "$tmp/in.img" "$psk" &&
    nbdcopy "$psk" "$tmp/out.img" &&
    if [ "$frontend" = daemon ] &&
       nbdinfo "nbd+unix:///lo0?socket=$unixsocket" 2>"$tmp/plain.err"; then
        echo "served without TLS"; exit 1
    fi'
cat "$tmp/info.txt"
grep -q 'with TLS' "$tmp/info.txt"
cmp -n 2M "$tmp/in.img" "$tmp/out.img"
cmp -n 2M "$tmp/in.img" "$tmp/disk.img"
if [ "${newest:-}" = yes ] && [ "$frontend" = daemon ]; then
    grep -q 'with TLS, using extended packets' "$tmp/info.txt"
fi

creds="tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/pki"
serve --tls=require --tls-certificates="$tmp/pki" -- '
    opts="driver=nbd,path=$unixsocket,export=lo0,tls-creds=tls0,tls-hostname=localhost"
    qemu-img info --object "'"$creds"'" --image-opts "$opts" > "$tmp/qinfo" &&
    qemu-img convert -O raw --object "'"$creds"'" --image-opts "$opts" \
        "$tmp/copy.img"'
cat "$tmp/qinfo"
grep -q 'virtual size: 16 MiB' "$tmp/qinfo"
cmp "$tmp/disk.img" "$tmp/copy.img"
