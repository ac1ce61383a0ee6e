# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the TLS tests (tests/test-tls-*.sh), sourced after
# functions.sh.  Credentials are made fresh in each
# test with GnuTLS's certtool and psktool (an ECDSA CA, RSA leaf keys:
# qemu 10 wants key encipherment in their key usage, which ECDSA keys
# cannot have).

requires certtool --version
requires psktool --version

# make_ca DIR CN: a CA key and self-signed certificate in DIR
# (ca-key.pem, ca-cert.pem).
make_ca ()
{
    local dir=$1 cn=$2
    mkdir -p "$dir"
    printf 'cn = %s\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 7\n' \
        "$cn" > "$dir/ca.info"
    certtool --generate-privkey --key-type=ecdsa --outfile "$dir/ca-key.pem" 2>/dev/null
    certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" \
        --template "$dir/ca.info" --outfile "$dir/ca-cert.pem" 2>/dev/null
}

# make_cert CADIR OUTDIR NAME server|client: NAME-key.pem and
# NAME-cert.pem in OUTDIR, signed by CADIR's CA.  Server certificates
# are for localhost, 127.0.0.1 and ::1.
make_cert ()
{
    local cadir=$1 dir=$2 name=$3 kind=$4
    mkdir -p "$dir"
    {
        echo "organization = nbd-loopback tests"
        echo "cn = $name"
        if [ "$kind" = server ]; then
            echo "dns_name = localhost"
            echo "ip_address = 127.0.0.1"
            echo "ip_address = ::1"
            echo "tls_www_server"
        else
            echo "tls_www_client"
        fi
        echo "signing_key"
        # qemu 10 refuses certificates whose key usage lacks key
        # encipherment (its documentation's templates have both).
        echo "encryption_key"
        echo "expiration_days = 7"
    } > "$dir/$name.info"
    certtool --generate-privkey --key-type=rsa --bits=2048 \
        --outfile "$dir/$name-key.pem" 2>/dev/null
    certtool --generate-certificate --load-ca-certificate "$cadir/ca-cert.pem" \
        --load-ca-privkey "$cadir/ca-key.pem" --load-privkey "$dir/$name-key.pem" \
        --template "$dir/$name.info" --outfile "$dir/$name-cert.pem" 2>/dev/null
}

# make_pki DIR: nbdkit's and qemu's layout in DIR (ca-cert.pem,
# server-cert.pem, server-key.pem, client-cert.pem, client-key.pem),
# usable by the server and, as the same directory, by the clients.
make_pki ()
{
    local dir=$1
    make_ca "$dir" "nbd-loopback test CA"
    make_cert "$dir" "$dir" server server
    make_cert "$dir" "$dir" client client
    chmod 600 "$dir"/*-key.pem
}

# make_psk FILE USER: a psktool key file with one random key.
make_psk ()
{
    psktool -u "$2" -p "$1" >/dev/null
}

# nbd_tls_uri PKIDIR [EXPORT]: the nbds+unix URI of start_server_unix's
# server with X.509 credentials (libnbd's tls-certificates).
nbd_tls_uri ()
{
    echo "nbds+unix:///${2:-}?socket=$sock&tls-certificates=$1"
}

# nbd_psk_uri PSKFILE USER [EXPORT]: the same with a pre-shared key.
nbd_psk_uri ()
{
    echo "nbds+unix://$2@/${3:-}?socket=$sock&tls-psk-file=$1"
}

# tls_setup [-c CLIENT]... [-x] [-k USER]... SIZE: the start of a TLS
# test.  Skips unless each CLIENT runs (CLIENT --version); makes $tmp
# (make_tmpdir), X.509 credentials in $tmp/pki (-x, make_pki), a PSK
# file $tmp/keys.psk with a key for each USER (-k, make_psk), and a
# sparse host file $tmp/disk.img of SIZE.
tls_setup ()
{
    local opt OPTIND=1 pki=no users=() u
    while getopts c:xk: opt; do
        case $opt in
            c) requires "$OPTARG" --version ;;
            x) pki=yes ;;
            k) users+=("$OPTARG") ;;
            *) fail "tls_setup: bad option" ;;
        esac
    done
    shift $((OPTIND - 1))
    [ $# -eq 1 ] || fail "tls_setup: expected one SIZE"
    make_tmpdir
    [ "$pki" = no ] || make_pki "$tmp/pki"
    for u in "${users[@]}"; do
        make_psk "$tmp/keys.psk" "$u"
    done
    truncate -s "$1" "$tmp/disk.img"
}
