#!/usr/bin/env bash
# Build Spectr's images (portal, proxy, agent) from deploy/docker/Dockerfile.
#
# The wheelhouse is built here, on this machine, with `pip wheel` (PyPI, or whatever index pip is
# configured with); `docker build` then needs no network at all. Three distributions are built:
# spectr (the portal), spectr-agent (agent/) and spectr-proxy (proxy/); each image holds its own
# distribution and exactly the dependencies it resolves to (the portal also holds spectr-agent,
# whose model cache its local engine uses). Everything is cached by content:
# the three wheels by a hash of the sources, the dependencies by a hash of the pyproject.toml
# files and the constraints, the images by a hash of all of that, the Dockerfile and the base image's id. A
# rerun with nothing changed prints the same references within a second or two.
#
# Settings (environment):
#   SPECTR_BASE_IMAGE       base image (default python:3.11-slim-bookworm); its python3 must have
#                           the same minor version as PYTHON below, the wheels are built for it
#   SPECTR_IMAGE_PREFIX     prefix of the image names (default "spectr-": spectr-portal, ...);
#                           e.g. registry.example.com/spectr/
#   PYTHON                  Python that builds the wheels (default: the repository's .venv, else
#                           python3). When it has Spectr installed, its versions of every
#                           dependency are the constraints, so the images run what was tested.
#   SPECTR_CONSTRAINTS      a pip constraints file to use instead
#   SPECTR_DEPLOY_BUILD_DIR cache folder (default build/deploy in the repository)
#
# Prints, on stdout, lines ready for compose's .env file:
#   SPECTR_PORTAL_IMAGE=spectr-portal:<hash>
#   SPECTR_PROXY_IMAGE=spectr-proxy:<hash>
#   SPECTR_AGENT_IMAGE=spectr-agent:<hash>
#
# `build-images.sh --wheelhouse-only` builds no image and prints SPECTR_WHEELHOUSE=<folder>: one
# folder with pip, Spectr and every dependency, checked complete for SPECTR_BASE_IMAGE's Python,
# for deploy/install-spectr.yml (bare hosts: use a base image with the hosts' Python).
set -euo pipefail

wheelhouse_only=0
case "${1:-}" in
  --wheelhouse-only) wheelhouse_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--wheelhouse-only]" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${SPECTR_BASE_IMAGE:-python:3.11-slim-bookworm}
prefix=${SPECTR_IMAGE_PREFIX:-spectr-}
cache=${SPECTR_DEPLOY_BUILD_DIR:-$repo/build/deploy}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi
targets=(portal proxy agent)
say() { echo "build-images: $*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
# Move a finished folder into the cache; when a parallel run got there first, keep its copy.
publish() { mv -T "$1" "$2" 2>/dev/null || [ -d "$2" ]; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- what goes in: the sources of the spectr wheel, and the constraints ----------------------
cd "$repo"
source_paths=(pyproject.toml README.md portal agent proxy)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z -co --exclude-standard -- "${source_paths[@]}" >"$work/files"
else
  find "${source_paths[@]}" -type f ! -path '*/__pycache__/*' -print0 >"$work/files"
fi
# Deleted-but-tracked files are listed by git; keep only those present.
tr '\0' '\n' <"$work/files" | sort | while IFS= read -r path; do
  [ -f "$path" ] && printf '%s\0' "$path"
done >"$work/sources"
source_hash=$( (tr '\0' '\n' <"$work/sources"; xargs -0 cat <"$work/sources") | hash_of)

if [ -n "${SPECTR_CONSTRAINTS:-}" ]; then
  cp "$SPECTR_CONSTRAINTS" "$work/constraints.txt"
elif "$PYTHON" -c 'import importlib.metadata as m; m.version("spectr")' >/dev/null 2>&1; then
  "$PYTHON" -m pip freeze --exclude-editable --disable-pip-version-check >"$work/constraints.txt"
else
  : >"$work/constraints.txt"
fi
python_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pip_version=$("$PYTHON" -m pip --version | cut -d' ' -f2)
deps_hash=$(cat pyproject.toml agent/pyproject.toml proxy/pyproject.toml "$work/constraints.txt" \
  <(echo "$python_version $pip_version") | hash_of)

# --- the three wheels (spectr-*, spectr_agent-*, spectr_proxy-*), by source hash ---------------
spectr_dir=$cache/spectr-$source_hash
if [ ! -d "$spectr_dir" ]; then
  say "building the spectr, spectr-agent and spectr-proxy wheels"
  mkdir -p "$work/src"
  xargs -0 tar -cf - <"$work/sources" | tar -C "$work/src" -xf -
  "$PYTHON" -m pip wheel -q --no-deps --disable-pip-version-check -w "$work/spectr" "$work/src" \
    "$work/src/agent" "$work/src/proxy" >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log" >&2; exit 1; }
  publish "$work/spectr" "$spectr_dir"
  # Keep the newest few spectr wheels; each source change makes one.
  ls -dt "$cache"/spectr-* | tail -n +6 | xargs -r rm -rf
fi

# --- the image references, by a hash of everything that goes in -------------------------------
if ! docker image inspect "$base" >/dev/null 2>&1; then
  say "pulling $base"
  docker pull -q "$base" >&2
fi
base_id=$(docker image inspect -f '{{.Id}}' "$base")
image_hash=$( (cat deploy/docker/*; echo "$base_id $source_hash $deps_hash") | hash_of)
refs=()
missing=0
for target in "${targets[@]}"; do
  ref="${prefix}${target}:$image_hash"
  refs+=("$ref")
  docker image inspect "$ref" >/dev/null 2>&1 || missing=1
done

# --- every dependency (and pip itself) for the base image's Python ------------------------------
# pip resolves environment markers for the Python running it, and they can differ even between
# patch versions (redis wants async-timeout below Python 3.11.3), so the base image's own Python
# checks the wheelhouse offline and names what is missing; pip here fetches it, until complete.
wheelhouse_for_base() {
  local base_python deps_dir missing_req attempt
  base_python=$(docker run --rm --network none --entrypoint python3 "$base" \
    -c 'import platform; print(platform.python_version())')
  if [ "${base_python%.*}" != "$python_version" ]; then
    say "$base has Python $base_python but PYTHON ($PYTHON) is $python_version;" \
      "set PYTHON to a Python ${base_python%.*} or SPECTR_BASE_IMAGE to a Python $python_version image"
    return 1
  fi
  deps_dir=$cache/deps-$deps_hash-py$base_python
  if [ -d "$deps_dir" ]; then echo "$deps_dir"; return; fi
  say "building the dependency wheelhouse for Python $base_python"
  "$PYTHON" -m pip wheel -q --disable-pip-version-check -c "$work/constraints.txt" \
    --find-links "$spectr_dir" -w "$work/deps/deps" "$spectr_dir"/spectr-*.whl \
    "$spectr_dir"/spectr_proxy-*.whl >"$work/deps.log" 2>&1 ||
    { grep -v '^WARNING: Location' "$work/deps.log" >&2; return 1; }
  rm -f "$work/deps/deps"/spectr-*.whl "$work/deps/deps"/spectr_*.whl
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps -d "$work/deps/tools" \
    "pip==$pip_version" >"$work/pip.log" 2>&1 ||
    { grep -v '^WARNING: Location' "$work/pip.log" >&2; return 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    # Each image's own set (wheels/req/TARGET.txt, pinned) comes from the same dry runs.
    mkdir -p "$work/deps/req"
    if docker run --rm --network none --entrypoint sh \
      -v "$work/deps:/wheels" -v "$spectr_dir:/spectr:ro" "$base" -c \
      'set -e; set -- /wheels/tools/pip-*.whl && python3 -m venv --without-pip /tmp/check
       for target in portal:spectr-0 proxy:spectr_proxy agent:spectr_agent; do
         /tmp/check/bin/python "$1/pip" install --dry-run --quiet --no-index \
           --disable-pip-version-check --find-links /wheels/deps --find-links /spectr \
           --report /tmp/report.json /spectr/${target#*:}*.whl
         python3 -c "import json, sys
for item in json.load(open(\"/tmp/report.json\"))[\"install\"]:
    name = item[\"metadata\"][\"name\"]
    if not name.startswith(\"spectr\"):
        print(name + \"==\" + item[\"metadata\"][\"version\"])" >/wheels/req/${target%%:*}.txt
       done' >"$work/check.log" 2>&1; then
      publish "$work/deps" "$deps_dir"
      ls -dt "$cache"/deps-*/ | tail -n +3 | xargs -r rm -rf
      echo "$deps_dir"
      return
    fi
    missing_req=$(sed -n 's/^ERROR: No matching distribution found for \([^ ]*\).*$/\1/p' "$work/check.log" | head -1)
    if [ -z "$missing_req" ]; then cat "$work/check.log" >&2; return 1; fi
    say "adding $missing_req, which Python $base_python needs"
    "$PYTHON" -m pip wheel -q --disable-pip-version-check -c "$work/constraints.txt" \
      -w "$work/deps/deps" "$missing_req" >"$work/deps.log" 2>&1 ||
      { grep -v '^WARNING: Location' "$work/deps.log" >&2; return 1; }
  done
  say "the wheelhouse is still incomplete after $attempt rounds"
  return 1
}

if [ "$wheelhouse_only" = 1 ]; then
  deps_dir=$(wheelhouse_for_base)
  flat=$cache/wheelhouse-$image_hash
  if [ ! -d "$flat" ]; then
    mkdir "$work/flat"
    cp -l "$deps_dir"/deps/*.whl "$deps_dir"/tools/*.whl "$spectr_dir"/*.whl "$work/flat/" 2>/dev/null ||
      cp "$deps_dir"/deps/*.whl "$deps_dir"/tools/*.whl "$spectr_dir"/*.whl "$work/flat/"
    publish "$work/flat" "$flat"
    # Keep the newest three (and the tars install-spectr.yml packs beside them).
    ls -dt "$cache"/wheelhouse-*/ | tail -n +4 | while IFS= read -r old; do
      rm -rf "$old" "${old%/}.tar"
    done
  fi
  echo "SPECTR_WHEELHOUSE=$flat"
  exit 0
fi

if [ "$missing" = 1 ]; then
  deps_dir=$(wheelhouse_for_base)
  context=$work/context
  mkdir -p "$context/wheels/spectr" "$context/wheels/tools"
  cp -rl "$deps_dir/deps" "$context/wheels/deps" 2>/dev/null || cp -r "$deps_dir/deps" "$context/wheels/deps"
  cp "$deps_dir"/tools/pip-*.whl "$context/wheels/tools/"
  cp -r "$deps_dir/req" "$context/wheels/req"
  cp "$spectr_dir"/*.whl "$context/wheels/spectr/"
  cp -r deploy/docker "$context/docker"
  for i in "${!targets[@]}"; do
    say "docker build --target ${targets[$i]} -> ${refs[$i]}"
    docker build -q -f deploy/docker/Dockerfile --target "${targets[$i]}" \
      --build-arg BASE_IMAGE="$base" -t "${refs[$i]}" "$context" >"$work/build.log" 2>&1 ||
      { cat "$work/build.log" >&2; exit 1; }
  done
fi

for i in "${!targets[@]}"; do
  docker tag "${refs[$i]}" "${prefix}${targets[$i]}:latest"
  echo "SPECTR_${targets[$i]^^}_IMAGE=${refs[$i]}"
done
