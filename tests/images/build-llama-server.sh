#!/usr/bin/env bash
# Build a real, CPU-only LLM server image: llama-cpp-python's OpenAI-compatible server on the
# Debian base image. It needs neither a GPU nor public weights (tests write a tiny GGUF with
# tests/support/tiny_gguf.py) and runs offline, so operators in closed networks can use it too.
#
# llama-cpp-python is published as an sdist only; compiling it takes 5-15 minutes on 2 cores, so
# the wheel and its server extra's dependencies (all as wheels) are kept in
#   ${SPECTR_CACHE_DIR:-/var/cache/spectr}/wheels/<hash of version, build args, python>/
# and reruns, fresh clones and other worktrees on this machine skip the compile. The base image
# has no pip: the host's Python (same minor version as the image's, checked) installs the wheels
# into a --target folder that is copied into the image and put on PYTHONPATH. The image is
# tagged with a hash of the base image, this script and the wheel set, so an unchanged recipe
# returns at once. Prints the image reference (spectr-llama-server:<hash>) on stdout, progress
# and step timings on stderr.
#
# Runtime template for Spectr's catalog (the server answers GET /v1/models with 200 only once
# the model is loaded: it loads before uvicorn starts listening):
#   image:            spectr-llama-server:<hash>   (what this script prints)
#   command_template: ["python3", "-m", "llama_cpp.server", "--model", "{model_source}",
#                      "--model_alias", "{model_name}", "--n_ctx", "{context_length}",
#                      "--host", "0.0.0.0", "--port", "{port}"]
#   port:             8080          health path: /v1/models        openai_base_path: /v1
#   formats:          gguf
# {model_source} is the .gguf file inside the read-only model folder, e.g. /models/tiny.gguf.
#
# Environment: SPECTR_CACHE_DIR (wheel cache root), SPECTR_PYTHON (host Python 3.x with pip,
# default python3), PIP_INDEX_URL and friends as pip reads them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
llama_version=0.3.36
requirement="llama-cpp-python[server]==$llama_version"
# Portable CPU code (no -march=native: the image must run on other machines), no OpenMP (the
# base image has no libgomp; ggml falls back to its own thread pool), no multimodal library
# (mtmd is only loaded for image chat handlers; skipping it saves compile time and size).
cmake_args="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF"
python=${SPECTR_PYTHON:-python3}
cache_root=${SPECTR_CACHE_DIR:-/var/cache/spectr}

step_started=0
step() { # step NAME: print how long the previous step took, then start timing NAME
  local now
  now=$(date +%s.%N)
  if [[ -n ${step_name:-} ]]; then
    awk -v name="$step_name" -v a="$now" -v b="$step_started" \
      'BEGIN { printf "build-llama-server: %s took %.1f s\n", name, a - b }' >&2
  fi
  step_name=${1:-}
  step_started=$now
  [[ -z $step_name ]] || echo "build-llama-server: $step_name" >&2
}

base=$("$here/build-base.sh")
recipe_hash=$(printf '%s\n' "$base" "$(cat "$here/build-llama-server.sh")" | sha256sum | cut -c1-12)
image="spectr-llama-server:$recipe_hash"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
# One build at a time on a machine: CI prebuilds it while tests that need it may ask too; the
# later ones wait here and then find the image.
mkdir -p "$cache_root"
exec 9>"$cache_root/llama-server.lock"
flock 9
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

# The --target folder holds compiled extensions (numpy, pydantic-core, llama.cpp itself): the
# host's Python must have the image's minor version.
step "check Python versions"
image_python=$(docker run --rm "$base" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $image_python != "$host_python" ]]; then
  echo "build-llama-server: $python is $host_python but the image has Python $image_python;" \
    "set SPECTR_PYTHON to a Python $image_python with pip" >&2
  exit 1
fi
"$python" -m pip --version >/dev/null

wheel_hash=$(printf '%s\n' "$requirement" "$cmake_args" "$host_python" "$(uname -m)" | sha256sum | cut -c1-16)
wheels="$cache_root/wheels/$wheel_hash"

if [[ ! -f $wheels/COMPLETE ]]; then
  step "compile $requirement into $wheels (5-15 minutes on 2 cores)"
  command -v g++ >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  }
  mkdir -p "$cache_root/wheels"
  partial=$(mktemp -d "$cache_root/wheels/$wheel_hash.partial.XXXXXX")
  trap 'rm -rf "$partial"' EXIT
  # pip wheel builds the sdist (cmake and ninja come from PyPI through build isolation when the
  # host lacks them) and downloads every dependency of the server extra as a wheel.
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$partial" \
    "$requirement" >"$partial/build.log" 2>&1 || {
    tail -40 "$partial/build.log" >&2
    exit 1
  }
  printf '%s\n' "$requirement" "CMAKE_ARGS=$cmake_args" "python $host_python" >"$partial/COMPLETE"
  # Another build may have finished first; either copy is complete.
  mv -T "$partial" "$wheels" 2>/dev/null || rm -rf "$partial"
  trap - EXIT
fi

context=$(mktemp -d /tmp/spectr-llama-server.XXXXXX)
trap 'rm -rf "$context"' EXIT
step "install the wheels into the image's site folder"
"$python" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
  --root-user-action=ignore --no-index --find-links "$wheels" \
  --target "$context/site" "$requirement"
# The server never shells out to these scripts; they name the host's interpreter anyway.
rm -rf "$context/site/bin"

step "docker build $image"
cat >"$context/Dockerfile" <<DOCKERFILE
FROM $base
COPY site /opt/llama-server/site
ENV PYTHONPATH=/opt/llama-server/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
CMD ["python3", "-m", "llama_cpp.server", "--help"]
DOCKERFILE
docker build -q -t "$image" "$context" >/dev/null
step
echo "$image"
