#!/bin/sh
# Start Flower only behind basic auth: check FLOWER_BASIC_AUTH, then run the given command.
#   usage: flower.sh COMMAND [ARGS...]     e.g. flower.sh celery -A workers.app flower --port=5555
#
# Every shipped way to run Flower goes through here: docker-compose.yml (service flower),
# deploy/promptloop-flower.service and deploy/k8s/flower.yaml. Flower itself starts happily without
# credentials and then shows every task's arguments and can shut workers down, so this refuses (exit 2,
# one sentence on stderr, nothing started) unless FLOWER_BASIC_AUTH holds user:password pairs
# (comma-separated, as Flower reads them) where every user is named and every password has 12+
# characters and is not a placeholder. The credentials come from the environment only (an env file,
# a Secret), never the command line, where `ps` would show them.
# POSIX sh: it runs on hosts and inside the python:3.11-slim image (dash).
set -eu

fail() {
    echo "flower.sh: $*; Flower not started" >&2
    exit 2
}

[ "$#" -gt 0 ] || fail "usage: flower.sh COMMAND [ARGS...] (e.g. flower.sh celery -A workers.app flower --port=5555)"

auth=${FLOWER_BASIC_AUTH:-}
[ -n "$auth" ] || fail "FLOWER_BASIC_AUTH is not set: set it to user:password in the environment (e.g. ops:\$(openssl rand -hex 16))"

set -f          # a password may hold * or ?: no globbing while splitting on commas
old_ifs=$IFS
IFS=,
for pair in $auth; do
    IFS=$old_ifs
    case "$pair" in
        *:*) ;;
        *) fail "FLOWER_BASIC_AUTH must be user:password (several: user:password,user2:password2)" ;;
    esac
    user=${pair%%:*}
    password=${pair#*:}
    [ -n "$user" ] || fail "FLOWER_BASIC_AUTH has a password without a user name"
    lower=$(printf %s "$password" | tr 'A-Z' 'a-z')
    case "$lower" in
        *change*me*|*changeme*|*placeholder*|*example*|*password*|*secret*|xxx*|todo*)
            fail "FLOWER_BASIC_AUTH: the password of '$user' looks like a placeholder" ;;
    esac
    [ "${#password}" -ge 12 ] || fail "FLOWER_BASIC_AUTH: the password of '$user' must have at least 12 characters"
done
IFS=$old_ifs
set +f

exec "$@"
