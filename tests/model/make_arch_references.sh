#!/usr/bin/env bash
# Regenerates tests/data/model/arch-references.json: writes the random-weight architecture models with our
# GgufWriter (the model_architecture_test binary, QUANT_WRITE_ARCH_MODELS=DIR) and records llama.cpp's logits for
# them with node-llama-cpp (tests/client/arch_references.mjs; tests/client/node_modules must be installed).
#   tests/model/make_arch_references.sh BUILD_DIR
set -euo pipefail
build="${1:-build}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
QUANT_WRITE_ARCH_MODELS="$work" "$build/tests/model_architecture_test" --gtest_filter='*WriteModels*' >/dev/null
mkdir -p "$root/tests/data/model"
node "$root/tests/client/arch_references.mjs" "$work" "$root/tests/data/eval/tiny-llama-f16.code-calib.ids" \
  "$root/tests/data/model/arch-references.json"
