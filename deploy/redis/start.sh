#!/bin/sh
# The redis service's entrypoint in docker-compose.yml: render the ACL file from the environment, then
# start Redis with it through the image's own entrypoint (which drops root for the redis user).
# A missing or placeholder password stops the container here, so the services that wait for a
# healthy Redis never start. The file is rendered afresh at every start: the environment is the truth.
set -eu
acl=${PROMPTLOOP_REDIS_ACL_FILE:-/tmp/promptloop-users.acl}
sh "$(dirname "$0")/render-acl.sh" "$acl"
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
    chown redis:redis "$acl"   # readable by the redis user the image's entrypoint switches to
fi
exec docker-entrypoint.sh redis-server --aclfile "$acl" "$@"
