#!/bin/sh
# Entry point of Spectr's Debian-built redis image; the official image's contract (see the
# Dockerfile): redis-server as user redis, in /data, without protected mode.
set -eu

# `docker run IMAGE --appendonly yes` means redis-server with those options.
case "${1:-}" in
  -*) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
  # Debian's redis-server starts in protected mode when no configuration file is given, and then
  # refuses every client from another container. The official image builds its binary with
  # protected mode off; do the same here unless a configuration file or the options choose.
  case "${2:-}" in
    "" | -*)
      case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
      esac
      ;;
  esac
  # Files Redis writes (the append-only file) are for its own user alone.
  umask 0077
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis:redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi

exec "$@"
