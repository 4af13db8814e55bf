#!/bin/sh
# spectr-entrypoint: read secrets from files into the variables Spectr reads, then run the command.
#
# Docker and Compose hand secrets over as files (/run/secrets/NAME); Spectr reads SPECTR_*
# variables. For each variable below, VARIABLE_FILE=<path> sets VARIABLE to the file's content
# (without its trailing newline). PGPASSWORD is libpq's own: the Postgres password, so that
# SPECTR_DATABASE_URL need not carry it.
set -eu

for name in SPECTR_SECRET_KEY SPECTR_ENCRYPTION_KEYS SPECTR_ADMIN_PASSWORD \
    SPECTR_DATABASE_URL SPECTR_REDIS_URL PGPASSWORD; do
  eval "path=\${${name}_FILE:-}"
  [ -n "$path" ] || continue
  if [ ! -r "$path" ]; then
    echo "spectr-entrypoint: ${name}_FILE=$path cannot be read by uid $(id -u);" \
      "give the file mode 0444 and keep it in a folder of mode 0700" >&2
    exit 2
  fi
  value=$(cat "$path")
  export "$name=$value"
  unset "${name}_FILE"
done

exec "$@"
