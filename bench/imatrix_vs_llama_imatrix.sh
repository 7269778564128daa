#!/usr/bin/env bash
# quantize imatrix --text against llama-imatrix: whole commands (loading and tokenizing included), same text,
# context and threads, the perplexity computed by both (their default); medians of alternating runs of wall time,
# user CPU time and peak RSS, and tokens evaluated per wall second.
#   bench/imatrix_vs_llama_imatrix.sh MODEL TEXT [CTX (512)] [THREADS (2)] [RUNS (3)] [CHUNKS (-1: all)]
# Environment: QUANTIZE (default build/quantize), LLAMA_IMATRIX (default ../peer/llama.cpp/build/bin/llama-imatrix).
# Run it on a quiet machine (uptime load < 1.5), or report the load it prints.
set -euo pipefail
model="$1"; text="$2"; ctx="${3:-512}"; threads="${4:-2}"; runs="${5:-3}"; chunks="${6:--1}"
quantize="${QUANTIZE:-build/quantize}"
llama="${LLAMA_IMATRIX:-../peer/llama.cpp/build/bin/llama-imatrix}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
echo "load before: $(uptime | sed 's/.*load average: //')"

measure() {  # label, command...: appends "seconds rss_kib user_cpu_seconds" to $work/label
  local label="$1"; shift
  /usr/bin/time -f "%e %M %U" -o "$work/t" "$@" > "$work/out-$label" 2>&1
  cat "$work/t" >> "$work/$label"
}
for ((i = 0; i < runs; i++)); do
  measure quantize "$quantize" imatrix "$model" --text "$text" --ctx "$ctx" -t "$threads" --chunks "$chunks" \
    -o "$work/quantize.imatrix.gguf" --force
  measure llama "$llama" -m "$model" -f "$text" -c "$ctx" -t "$threads" --chunks "$chunks" \
    -o "$work/llama.imatrix.gguf"
done
# Tokens evaluated: chunks x context, from the chunk count both files record (the largest count / context).
chunk_count=$("$quantize" info "$work/quantize.imatrix.gguf" | awk '$1 == "imatrix.chunk_count" { print $3 }')
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for label in quantize llama; do
  secs=$(cut -d' ' -f1 "$work/$label" | median)
  rss=$(cut -d' ' -f2 "$work/$label" | median)
  cpu=$(cut -d' ' -f3 "$work/$label" | median)
  rate=""
  [ -n "$chunk_count" ] && rate=$(awk -v c="$chunk_count" -v n="$ctx" -v s="$secs" 'BEGIN { printf ", %.0f tokens/s", c * n / s }')
  echo "$label: ${secs} s wall, ${cpu} s user CPU, peak RSS $((rss / 1024)) MiB${rate} (median of $runs)"
done
grep -E "Final estimate" "$work/out-quantize" | head -1
grep -E "Final estimate" "$work/out-llama" | head -1
echo "load after: $(uptime | sed 's/.*load average: //')"
