#!/usr/bin/env bash
# Set up, build and run the whole test suite:
#   1. every test (unit, whole-program, llama.cpp client) on the release build;
#   2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer, in the clang sanitizer build
#      (build-san/, scripts/configure_sanitizer_build.sh);
#   3. in that same build, the fuzz regression corpora and a fixed-seed, fixed-length fuzzing run per target
#      (docs/reliability.md).
# Set QUANT_SKIP_ASAN=1 / QUANT_SKIP_FUZZ=1 to skip step 2 / 3 on a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

scripts/setup.sh

# The llama.cpp client test needs Node.js and the pinned node-llama-cpp packages (prebuilt llama.cpp).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test: Node.js and npm are needed for the llama.cpp client test" >&2
  exit 1
fi
# `npm install` with the committed package-lock.json installs exactly the pinned versions. (`npm ci` refuses this
# lock file: node-llama-cpp's optional binaries for other platforms cannot be resolved here, so they are not in it.)
if [ ! -d tests/client/node_modules/@node-llama-cpp/linux-x64 ]; then
  (cd tests/client && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --loglevel=error)
fi
export QUANT_REQUIRE_CLIENT=1
# llama-quantize of the same llama.cpp release, for the tests that run it on our plans (seconds to build).
LLAMA_QUANTIZE="$(scripts/peer_llama_quantize.sh)"
export LLAMA_QUANTIZE QUANT_REQUIRE_PEER=1

(cd build && ctest --output-on-failure -j "$jobs")

if [ "${QUANT_SKIP_ASAN:-0}" != "1" ]; then
  san="$(scripts/configure_sanitizer_build.sh)"
  cmake --build "$san" -j "$jobs" --target unit_tests
  (cd "$san" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs" -L unit)
fi

if [ "${QUANT_SKIP_FUZZ:-0}" != "1" ]; then
  scripts/fuzz.sh --regressions
fi
