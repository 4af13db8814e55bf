#!/bin/bash
# Entry point of Spectr's Debian-built postgres image; the official image's contract (see the
# Dockerfile): make the cluster in PGDATA on first start, then run postgres as user postgres.
set -Eeuo pipefail

# `docker run IMAGE -c max_connections=200` means postgres with those options.
if [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  # A new named volume belongs to root; Postgres wants its data folder as its own, mode 0700.
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

say() { echo "postgres-entrypoint: $*" >&2; }

init_cluster() {
  local user=${POSTGRES_USER:-postgres}
  local database=${POSTGRES_DB:-$user}
  local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  local password=${POSTGRES_PASSWORD:-}
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    password=$(<"$POSTGRES_PASSWORD_FILE")
  fi
  if [ -z "$password" ] && [ "$auth" != trust ]; then
    say "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)"
    exit 1
  fi

  say "initialising the cluster in $PGDATA for user $user, database $database"
  # The password goes to initdb in a file only this user reads, in the container's own /tmp.
  local pwfile pwoption=()
  pwfile=$(umask 077 && mktemp /tmp/postgres-password.XXXXXX)
  if [ -n "$password" ]; then
    printf '%s\n' "$password" >"$pwfile"
    pwoption=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, split on purpose
  initdb --username="$user" "${pwoption[@]}" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  {
    echo
    echo "# docker-entrypoint: clients on the container network, with a password"
    echo "host all all all $auth"
  } >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  if [ "$database" != postgres ]; then
    # A server of the entry point's own on a private socket: pg_isready (the health check)
    # must not report ready before the real server listens.
    local socket_dir
    socket_dir=$(mktemp -d /tmp/postgres-init.XXXXXX)
    pg_ctl -D "$PGDATA" -w -s \
      -o "-c listen_addresses='' -c unix_socket_directories='$socket_dir'" start
    psql -X -q -v ON_ERROR_STOP=1 -h "$socket_dir" -U "$user" -d postgres \
      --set=db="$database" <<<'CREATE DATABASE :"db";'
    pg_ctl -D "$PGDATA" -w -s -m fast stop
    rmdir "$socket_dir"
  fi
  say "cluster ready"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  init_cluster
fi
exec "$@"
