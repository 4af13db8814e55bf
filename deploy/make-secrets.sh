#!/usr/bin/env bash
# Create the secrets deploy/compose.yaml reads, once: each missing file gets a random value.
#
#   spectr_secret_key       session signing key (SPECTR_SECRET_KEY)
#   spectr_encryption_keys  Fernet key for secrets at rest (SPECTR_ENCRYPTION_KEYS); to rotate,
#                           put a new key first, comma, the old ones after
#   spectr_admin_password   password of the first admin, used by `spectr init` only
#   postgres_password       password of the `spectr` role in the bundled Postgres
#
# The folder (SPECTR_SECRETS_DIR, default deploy/secrets) is 0700, so only its owner reaches the
# files on this host; the files themselves are 0444 because Compose bind-mounts them into the
# containers, where Spectr runs as uid 10001 and Postgres as uid 999. Existing files are left
# alone. Nothing is printed but the file names: read the admin password from its file.
set -euo pipefail

dir=${SPECTR_SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_text() { head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
fernet_key() { head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_'; }

for name in spectr_secret_key spectr_encryption_keys spectr_admin_password postgres_password; do
  file=$dir/$name
  if [ -s "$file" ]; then
    echo "kept    $file"
    continue
  fi
  case $name in
    spectr_secret_key) random_text 48 >"$file" ;;
    spectr_encryption_keys) fernet_key >"$file" ;;
    *) random_text 18 >"$file" ;;
  esac
  chmod 0444 "$file"
  echo "created $file"
done
