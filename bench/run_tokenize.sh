#!/usr/bin/env bash
# Whole-command tokenizer benchmark: `quantize tokenize MODEL -f TEXT --ids` against llama.cpp's
# `llama-tokenize -m MODEL -f TEXT --ids --no-escape --log-disable`, alternately, RUNS times each, under
# /usr/bin/time. Prints a markdown table of medians (wall and CPU seconds, peak RSS) per vocabulary, and whether the
# two printed the same ids.
#
# Usage: bench/run_tokenize.sh          (from the repository root, after building quantize)
# Environment (all optional):
#   BUILD=build                           build directory holding quantize
#   LLAMA_TOKENIZE=/path/to/llama-tokenize  the peer (default: ../peer/llama.cpp/build/bin/llama-tokenize)
#   TEXT=../shared/text/code-eval.txt     the text (default: that file, else tests/data/tokenizer/texts/code-calib.txt)
#   VOCABS="..."                          vocabulary files (default: the five in tests/data)
#   RUNS=5                                runs per tool and vocabulary; medians are quoted
set -euo pipefail

BUILD=${BUILD:-build}
LLAMA_TOKENIZE=${LLAMA_TOKENIZE:-../peer/llama.cpp/build/bin/llama-tokenize}
TEXT=${TEXT:-../shared/text/code-eval.txt}
[ -f "$TEXT" ] || TEXT=tests/data/tokenizer/texts/code-calib.txt
VOCABS=${VOCABS:-"tests/data/tokenizer/ggml-vocab-gpt-2.gguf tests/data/tokenizer/ggml-vocab-gpt-neox.gguf
  tests/data/gguf/vocab/ggml-vocab-llama-spm.gguf tests/data/tokenizer/ggml-vocab-phi-3.gguf
  tests/data/gguf/vocab/ggml-vocab-bert-bge.gguf"}
RUNS=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# run NAME OUT COMMAND...: one timed run; appends "wall cpu rss_kib" to $work/NAME.times
run() {
  local name="$1" out="$2"; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$out"
  awk '{print $1, $2 + $3, $4}' "$work/time" >> "$work/$name.times"
}

echo "text: $TEXT ($(wc -c < "$TEXT") bytes), $RUNS alternating runs each, medians; machine load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| vocabulary | tokens | quantize wall s | llama-tokenize wall s | quantize CPU s | llama-tokenize CPU s | quantize RSS MiB | llama-tokenize RSS MiB | same ids |"
echo "|---|---|---|---|---|---|---|---|---|"
for vocab in $VOCABS; do
  name=$(basename "$vocab" .gguf)
  rm -f "$work"/*.times
  for ((i = 0; i < RUNS; i++)); do
    run ours "$work/ours.ids" "$BUILD/quantize" tokenize "$vocab" -f "$TEXT" --ids
    run peer "$work/peer.ids" "$LLAMA_TOKENIZE" -m "$vocab" -f "$TEXT" --ids --no-escape --log-disable
  done
  same=no
  cmp -s "$work/ours.ids" "$work/peer.ids" && same=yes
  tokens=$(tr ',' '\n' < "$work/ours.ids" | wc -l)
  col() { awk -v c="$2" '{print $c}' "$work/$1.times" | median; }
  printf "| %s | %s | %.3f | %.3f | %.3f | %.3f | %.0f | %.0f | %s |\n" "$name" "$tokens" \
    "$(col ours 1)" "$(col peer 1)" "$(col ours 2)" "$(col peer 2)" \
    "$(awk -v k="$(col ours 3)" 'BEGIN {print k / 1024}')" "$(awk -v k="$(col peer 3)" 'BEGIN {print k / 1024}')" "$same"
done
