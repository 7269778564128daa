#!/usr/bin/env bash
# Builds llama.cpp's llama-quantize for the tests that compare with it (tests/cli/automix_test.cpp), from the
# llama.cpp release the client test's pinned node-llama-cpp package carries: its source bundle
# (node-llama-cpp/llama/gitRelease.bundle) and its prebuilt libraries (@node-llama-cpp/linux-x64). Only the tool's
# own two files are compiled (seconds); the quantizing is the prebuilt libllama's. Nothing is downloaded: run it
# after the client test's `npm install` (scripts/test.sh does). Prints the binary's path.
#   $1  output directory (default: build/peer)
set -euo pipefail
cd "$(dirname "$0")/.."
modules=tests/client/node_modules
bundle="$modules/node-llama-cpp/llama/gitRelease.bundle"
libs="$(pwd)/$modules/@node-llama-cpp/linux-x64/bins/linux-x64"
out="${1:-build/peer}"
for needed in "$bundle" "$libs"; do
  [ -e "$needed" ] || { echo "peer_llama_quantize: $needed is missing (npm install in tests/client first)" >&2; exit 1; }
done
llama=( "$libs"/libllama.v*.so ) ggml=( "$libs"/libggml.v*.so )
[ -e "${llama[0]}" ] && [ -e "${ggml[0]}" ] || { echo "peer_llama_quantize: no libllama/libggml in $libs" >&2; exit 1; }

mkdir -p "$out"
src="$out/llama.cpp"
if [ ! -f "$src/tools/quantize/main.cpp" ]; then
  rm -rf "$src"
  git -c advice.detachedHead=false clone -q "$bundle" "$src"
fi
binary="$out/llama-quantize"
if [ ! -x "$binary" ] || [ "$binary" -ot "${llama[0]}" ]; then
  g++ -std=c++17 -O2 -I "$src/include" -I "$src/ggml/include" -I "$src/common" -I "$src/tools/quantize" \
    "$src/tools/quantize/main.cpp" "$src/tools/quantize/quantize.cpp" -o "$binary.tmp" \
    -L"$libs" -l:"$(basename "${llama[0]}")" -l:libllama-common.so -l:"$(basename "${ggml[0]}")" -l:libggml-base.so \
    -Wl,-rpath,"$libs" -lpthread
  mv "$binary.tmp" "$binary"
fi
echo "$(cd "$out" && pwd)/llama-quantize"
