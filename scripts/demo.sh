#!/usr/bin/env bash
# The main job on a small real model shipped in the repository: set up, build, quantize
# tests/data/models/tiny-llama-f16.gguf to Q4_K_M and show the report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p build/demo
./build/quantize tests/data/models/tiny-llama-f16.gguf --to Q4_K_M -o build/demo/tiny-llama-Q4_K_M.gguf --force "$@"
