#!/bin/sh
# spectr-setup: the one-shot step before the portal and workers start (compose's `migrate`).
#
# 1. `spectr db upgrade`: the database schema, every time (a no-op when current);
# 2. `spectr init`: the first admin, when SPECTR_ADMIN_PASSWORD (or its _FILE) is set;
# 3. when SPECTR_PROXY_TOKEN_PATH is set and that file is empty or missing: an `operator` user
#    named `proxy` and an API token for it, written there (0600) for spectr-proxy to read.
set -eu

spectr db upgrade

if [ -n "${SPECTR_ADMIN_PASSWORD:-}" ]; then
  spectr init --admin "${SPECTR_ADMIN_USER:-admin}"
else
  echo "spectr-setup: SPECTR_ADMIN_PASSWORD is not set; no admin created" \
    "(later: docker compose run --rm migrate spectr init)" >&2
fi

token_path=${SPECTR_PROXY_TOKEN_PATH:-}
if [ -n "$token_path" ] && [ ! -s "$token_path" ]; then
  proxy_user=${SPECTR_PROXY_USER:-proxy}
  if ! spectr user list | awk '{print $2}' | grep -qx "$proxy_user"; then
    # Nobody logs in as this user: its password is random and forgotten at once.
    SPECTR_NEW_USER_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') \
      spectr user create "$proxy_user" --role operator
  fi
  umask 077
  spectr token create "$proxy_user" --name spectr-proxy --days 3650 >"$token_path.new"
  mv "$token_path.new" "$token_path"
  echo "spectr-setup: wrote a token for '$proxy_user' to $token_path" >&2
fi
