#!/usr/bin/env bash
# How tests/data/split/references.tsv was made: llama.cpp's own tools (commit 34af94cd, CPU Release build) on the
# test models, writing into a scratch folder; the TSV keeps each file's sha256 and the command that wrote it, not
# the files. Run from anywhere:
#   tests/data/split/make_references.sh /path/to/llama.cpp/build/bin > tests/data/split/references.tsv
# Every command runs inside the scratch folder, so the file names in the TSV are the bare names below.
set -euo pipefail
bin="$(cd "${1:?usage: make_references.sh LLAMA_CPP_BIN_DIR}" && pwd)"
data="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/split-refs-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$data/models/tiny-llama-f16.gguf" "$data/gguf/stories260K.gguf" .
cp "$data/imatrix/tiny-llama.imatrix.gguf" .

run() {  # run COMMAND...: runs it quietly, remembers it for the files it makes
  last_command="$*"
  before="$(ls)"
  "$@" >/dev/null 2>&1
  for f in $(ls); do
    if ! grep -qx "$f" <<<"$before"; then
      printf '%s\t%s\t%s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)" "${last_command//$bin\//}"
    fi
  done
}

printf 'file\tsha256\tcommand (llama.cpp 34af94cd tools, run in a folder holding the inputs)\n'
# llama-gguf-split --split by tensor count and by size (decimal megabytes).
run "$bin/llama-gguf-split" --split --split-max-tensors 12 tiny-llama-f16.gguf tl-f16-t12
run "$bin/llama-gguf-split" --split --split-max-size 2M tiny-llama-f16.gguf tl-f16-s2M
run "$bin/llama-gguf-split" --split --split-max-tensors 20 stories260K.gguf st-t20
run "$bin/llama-gguf-split" --split --split-max-size 1M stories260K.gguf st-s1M
run "$bin/llama-gguf-split" --split stories260K.gguf st-default  # no limit: 128 tensors per shard
# llama-gguf-split --merge of its own shards.
run "$bin/llama-gguf-split" --merge tl-f16-s2M-00001-of-00004.gguf tl-f16-s2M-merged.gguf
run "$bin/llama-gguf-split" --merge st-t20-00001-of-00003.gguf st-t20-merged.gguf
# llama-quantize on split inputs: one shard per input shard (--keep-split), and one whole file.
run "$bin/llama-quantize" --keep-split tl-f16-t12-00001-of-00004.gguf tl-Q4_K_M-keep.gguf Q4_K_M
run "$bin/llama-quantize" --keep-split tl-f16-s2M-00001-of-00004.gguf tl-Q8_0-s2M-keep.gguf Q8_0
run "$bin/llama-quantize" --keep-split tl-f16-s2M-00001-of-00004.gguf tl-Q6_K-s2M-keep.gguf Q6_K
run "$bin/llama-quantize" --keep-split st-t20-00001-of-00003.gguf st-Q4_K_M-keep.gguf Q4_K_M
run "$bin/llama-quantize" --keep-split --imatrix tiny-llama.imatrix.gguf tl-f16-s2M-00001-of-00004.gguf tl-Q4_K_M-imat-s2M-keep.gguf Q4_K_M
run "$bin/llama-quantize" tl-f16-s2M-00001-of-00004.gguf tl-f16-s2M-Q8_0.gguf Q8_0
run "$bin/llama-quantize" st-t20-00001-of-00003.gguf st-t20-Q6_K.gguf Q6_K
# A quantized whole file, then llama-gguf-split of it: what --split-max-size / --split-max-tensors on a conversion
# must write.
run "$bin/llama-quantize" tiny-llama-f16.gguf tl-Q4_K_M.gguf Q4_K_M
run "$bin/llama-gguf-split" --split --split-max-size 1M tl-Q4_K_M.gguf tl-Q4_K_M-s1M
run "$bin/llama-quantize" tiny-llama-f16.gguf tl-Q6_K.gguf Q6_K
run "$bin/llama-gguf-split" --split --split-max-tensors 7 tl-Q6_K.gguf tl-Q6_K-t7
