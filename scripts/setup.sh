#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages), configures and builds quantize in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   BUILD_DIR   build directory (default: build)
#   BUILD_TYPE  CMake build type (default: Release)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ccache pkg-config libcli11-dev libspdlog-dev libfmt-dev libeigen3-dev
          nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
          libpcre2-dev libicu-dev libprotobuf-dev protobuf-compiler libsentencepiece-dev libyaml-dev
          clang libclang-rt-14-dev python3 git)  # clang + libFuzzer runtime, python3 for the hf seeds: scripts/fuzz.sh;
                                                 # git unpacks llama.cpp's source: scripts/peer_llama_quantize.sh
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-Release}"
jobs="$(nproc)"
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" ${CMAKE_EXTRA_ARGS:-} >/dev/null
fi
cmake --build "$build_dir" -j "$jobs"
