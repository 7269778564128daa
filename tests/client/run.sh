#!/usr/bin/env bash
# The llama.cpp client test: quantize tests/data/models/tiny-llama-f16.gguf with our binary to a spread of
# types, then load every output in llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU build, llama.cpp release
# v0.5.0) and generate 16 tokens greedily. Every file must load and generate, and Q8_0's continuation must
# equal the f16 input's token for token. Split models too: Q4_K_M written by three --shard jobs and cut by
# --split-max-size, each loaded from its first shard, must score a text exactly as the one-file Q4_K_M does.
# Conversions of the small random Hugging Face checkpoints in tests/data/hf (every supported architecture, and the
# tokenizer.json-only ones) must load and run a completion (random weights may stop at once).
# Automatic mixes (--target-size) are among the files.
#
# usage: tests/client/run.sh QUANTIZE_BINARY
# Exit codes: 0 passed, 1 failed, 77 skipped (Node.js or tests/client/node_modules missing; ctest reports it
# as skipped). With QUANT_REQUIRE_CLIENT=1 (scripts/test.sh sets it) a missing client is a failure instead.
set -euo pipefail

client_dir="$(cd "$(dirname "$0")" && pwd)"
data_dir="$(cd "$client_dir/../data" && pwd)"
quantize="${1:?usage: run.sh QUANTIZE_BINARY}"
quantize="$(cd "$(dirname "$quantize")" && pwd)/$(basename "$quantize")"
model="$data_dir/models/tiny-llama-f16.gguf"
imatrix="$data_dir/imatrix/tiny-llama.imatrix.gguf"

missing=""
command -v node >/dev/null 2>&1 || missing="Node.js (node) is not installed"
[ -n "$missing" ] || [ -d "$client_dir/node_modules/@node-llama-cpp/linux-x64" ] ||
  missing="tests/client/node_modules is missing (cd tests/client && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci)"
if [ -n "$missing" ]; then
  if [ "${QUANT_REQUIRE_CLIENT:-0}" = "1" ]; then
    echo "client test: $missing, and QUANT_REQUIRE_CLIENT=1" >&2
    exit 1
  fi
  echo "client test: skipped: $missing" >&2
  exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/quantize-client-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# One read of the input for the plain mixes, each to <TYPE>.gguf.
mixes=(Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0 Q3_K_M Q2_K IQ4_NL IQ4_XS TQ2_0 Q1_0)
outputs=()
for type in "${mixes[@]}"; do outputs+=(-o "$work/$type.gguf"); done
"$quantize" "$model" --to "$(IFS=,; echo "${mixes[*]}")" "${outputs[@]}" -q

# Types that only some tensors get under a mix, forced onto every weight with --pure: MXFP4_MOE gives
# dense tensors q8_0, and NVFP4 has no mix name (llama-quantize's --tensor-type spelling).
"$quantize" "$model" --pure --to MXFP4_MOE -o "$work/MXFP4-pure.gguf" -q
"$quantize" "$model" --pure --tensor-type '.*=nvfp4' --to Q8_0 -o "$work/NVFP4-pure.gguf" -q

# A type that needs an importance matrix, from inside the imatrix's folder as llama-quantize users do.
(cd "$(dirname "$imatrix")" &&
  "$quantize" "$model" --imatrix "$(basename "$imatrix")" --to IQ2_XS -o "$work/IQ2_XS-imat.gguf" -q)

# Automatic mixes at the sizes of llama-quantize's Q2_K, Q3_K_M and Q5_K_M of this model with this imatrix, measured
# once by KL divergence on the calibration text (the cache serves the other budgets).
for budget in 1486720 1877888 2652544; do
  (cd "$(dirname "$imatrix")" &&
    "$quantize" "$model" --imatrix "$(basename "$imatrix")" --target-size "$budget" \
      --calibration-text "$data_dir/automix/code-calib-head.txt" --calibration-ctx 256 \
      --sensitivity-cache "$work/sensitivity.json" -o "$work/auto-$budget.gguf" -q)
done
# And one whose importance matrix is computed from the calibration text (no --imatrix), measured on 4 chunks.
"$quantize" "$model" --target-size 1713024 --calibration-text "$data_dir/automix/code-calib-head.txt" \
  --calibration-ctx 256 --calibration-tokens 1024 -o "$work/auto-text-1713024.gguf" -q
# Split models: three sharded jobs, and one run cut by size; llama.cpp loads each from its first shard.
mkdir -p "$work/split"
for i in 1 2 3; do "$quantize" "$model" --to Q4_K_M --shard "$i/3" -o "$work/split/sharded.gguf" -q; done
"$quantize" "$model" --to Q4_K_M --split-max-size 1M -o "$work/split/by-size.gguf" -q

# Hugging Face checkpoints of every supported architecture (tests/data/hf, random weights): our conversion at
# the converter's own type (F16, BF16 for bf16 checkpoints) and a llama-quantize mix must load and run.
hf_outputs=()
for folder in "$data_dir"/hf/*/; do
  [ -f "$folder/config.json" ] && [ -f "$folder/tokenizer.model" ] && ls "$folder"/model*.safetensors >/dev/null 2>&1 || continue
  name="$(basename "$folder")"
  float=F16
  grep -q '"bfloat16"' "$folder/config.json" && float=BF16
  "$quantize" "$folder" --to "$float" -o "$work/hf-$name-$float.gguf" -q
  "$quantize" "$folder" --to Q4_K_M -o "$work/hf-$name-Q4_K_M.gguf" -q
  hf_outputs+=(--runs "$work/hf-$name-$float.gguf" --runs "$work/hf-$name-Q4_K_M.gguf")
done
# The tokenizer.json-only checkpoints (tests/data/hf/bpe-*, weights stored gzip-compressed) at their float type
# (their vocabularies are the point; rows of 16 values fit no quantized block).
for folder in "$data_dir"/hf/bpe-*/; do
  [ -f "$folder/model.safetensors.gz" ] || continue
  name="$(basename "$folder")"
  mkdir -p "$work/$name"
  cp "$folder"/*.json "$work/$name/"
  gunzip -c "$folder/model.safetensors.gz" > "$work/$name/model.safetensors"
  float=F16
  grep -q '"bfloat16"' "$folder/config.json" && float=BF16
  "$quantize" "$work/$name" --to "$float" -o "$work/hf-$name-$float.gguf" -q
  hf_outputs+=(--runs "$work/hf-$name-$float.gguf")
done

others=()
for file in "$work"/*.gguf; do
  [ "$file" = "$work/Q8_0.gguf" ] || [[ "$(basename "$file")" == hf-* ]] || others+=("$file")
done
cd "$client_dir"
node generate.mjs --reference "$model" --same-as-reference "$work/Q8_0.gguf" \
  --same-score "$work/Q4_K_M.gguf" "$work/split/sharded-00001-of-00003.gguf" \
  --same-score "$work/Q4_K_M.gguf" "$work/split/by-size-00001-of-00003.gguf" "${others[@]}" "${hf_outputs[@]}"
