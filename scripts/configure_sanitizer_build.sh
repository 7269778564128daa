#!/usr/bin/env bash
# Configures the one sanitizer build, build-san/ (or $BUILD_DIR), if it is not configured yet: clang 14 with
# AddressSanitizer + UndefinedBehaviorSanitizer, -O1 and line tables (CMakeLists.txt, QUANT_SANITIZE), the
# libFuzzer targets (QUANT_FUZZ: library objects with coverage instrumentation) and the tests, each executable one
# ctest test (QUANT_CTEST_PER_EXECUTABLE: the start-up is paid once per executable, not per case). scripts/test.sh
# runs the unit tests in it and scripts/fuzz.sh the fuzz targets: one compile of the library serves both, and a
# local fuzz run uses the very flags CI uses (coverage depends on them, so the fixed-seed runs do too).
# Prints the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build-san}"
if ! command -v clang++ >/dev/null 2>&1; then
  echo "configure_sanitizer_build.sh: clang++ is needed (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUANT_SANITIZE=ON \
    -DQUANT_FUZZ=ON -DQUANT_CTEST_PER_EXECUTABLE=ON -DQUANT_BUILD_BENCH=OFF >/dev/null
fi
echo "$build_dir"
