#!/bin/sh
# Write Redis's ACL file for promptloop from users.acl.template and passwords in the environment:
#   REDIS_ADMIN_PASSWORD, REDIS_WORKER_PASSWORD, REDIS_PRODUCER_PASSWORD
# usage: render-acl.sh OUT [TEMPLATE]
#
# Refuses (exit 2, OUT untouched) a password that is missing, a placeholder, shorter than 16
# characters, not URL-safe (it goes unencoded into redis://USER:PASSWORD@host URLs) or shared by two
# users (a producer must not be able to log in as a worker). `openssl rand -hex 32` makes a good one.
# POSIX sh, because it runs inside the stock redis image (docker-compose.yml) as well as on hosts.
set -eu

out=${1:?usage: render-acl.sh OUT [TEMPLATE]}
template=${2:-$(dirname "$0")/users.acl.template}

fail() {
    echo "render-acl.sh: $*; Redis not configured" >&2
    exit 2
}

# The password in variable $1, refused unless it is safe to ship.
checked_password() {
    eval "value=\${$1:-}"
    [ -n "$value" ] || fail "$1 is not set"
    lower=$(printf %s "$value" | tr 'A-Z' 'a-z')
    case "$lower" in
        *change*me*|*changeme*|*placeholder*|*example*|*password*|*secret*|xxx*|todo*)
            fail "$1 looks like a placeholder" ;;
    esac
    [ "${#value}" -ge 16 ] || fail "$1 must be at least 16 characters"
    case "$value" in
        *[!A-Za-z0-9._~-]*) fail "$1 may only hold the characters A-Z a-z 0-9 . _ ~ -" ;;
    esac
    printf %s "$value"
}

sha256() {
    printf %s "$1" | sha256sum | cut -d' ' -f1
}

# Whether the local redis-server (if any) knows CLIENT SETINFO (Redis >= 7.2); unknown means yes.
has_client_setinfo() {
    version=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')
    [ -n "$version" ] || return 0
    set -- $version
    [ "$1" -gt 7 ] || { [ "$1" -eq 7 ] && [ "$2" -ge 2 ]; }
}

command -v sha256sum >/dev/null || fail "sha256sum is missing"
[ -r "$template" ] || fail "template $template not readable"
admin=$(checked_password REDIS_ADMIN_PASSWORD)
worker=$(checked_password REDIS_WORKER_PASSWORD)
producer=$(checked_password REDIS_PRODUCER_PASSWORD)
[ "$admin" != "$worker" ] && [ "$admin" != "$producer" ] && [ "$worker" != "$producer" ] \
    || fail "REDIS_ADMIN_PASSWORD, REDIS_WORKER_PASSWORD and REDIS_PRODUCER_PASSWORD must differ"

setinfo='+client|setinfo'
has_client_setinfo || setinfo=''

# Written beside OUT and renamed, so a server never reads half a file; 0600: hashes are still secrets.
umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' \
    -e "s/@ADMIN_SHA256@/$(sha256 "$admin")/" \
    -e "s/@WORKER_SHA256@/$(sha256 "$worker")/" \
    -e "s/@PRODUCER_SHA256@/$(sha256 "$producer")/" \
    -e "s/ +client|setinfo/${setinfo:+ $setinfo}/" \
    "$template" > "$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    fail "template $template has a placeholder this script does not fill"
fi
mv "$tmp" "$out"
trap - EXIT
