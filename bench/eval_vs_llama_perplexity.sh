#!/usr/bin/env bash
# quantize eval against llama-perplexity, whole commands (loading included), same threads, perplexity only:
# medians of alternating runs of wall time, user CPU time and peak RSS.
#   bench/eval_vs_llama_perplexity.sh MODEL TEXT [CTX (256)] [THREADS (2)] [RUNS (3)] [CHUNKS (all)]
# Environment: QUANTIZE (default build/quantize), LLAMA_PERPLEXITY (default
# ../peer/llama.cpp/build/bin/llama-perplexity). Run it on a quiet machine (uptime load < 1.5).
set -euo pipefail
model="$1"; text="$2"; ctx="${3:-256}"; threads="${4:-2}"; runs="${5:-3}"; chunks="${6:--1}"
quantize="${QUANTIZE:-build/quantize}"
llama="${LLAMA_PERPLEXITY:-../peer/llama.cpp/build/bin/llama-perplexity}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

measure() {  # label, command...: appends "seconds rss_kib cpu_seconds" to $work/label
  local label="$1"; shift
  /usr/bin/time -f "%e %M %U" -o "$work/t" "$@" > "$work/out-$label" 2>&1
  cat "$work/t" >> "$work/$label"
}
for ((i = 0; i < runs; i++)); do
  measure quantize "$quantize" eval "$model" --text "$text" --ctx "$ctx" -t "$threads" --chunks "$chunks"
  measure llama "$llama" -m "$model" -f "$text" -c "$ctx" -t "$threads" --chunks "$chunks"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for label in quantize llama; do
  secs=$(cut -d' ' -f1 "$work/$label" | median)
  rss=$(cut -d' ' -f2 "$work/$label" | median)
  cpu=$(cut -d' ' -f3 "$work/$label" | median)
  echo "$label: ${secs} s wall, ${cpu} s user CPU, peak RSS $((rss / 1024)) MiB (median of $runs)"
done
grep -E "perplexity  " "$work/out-quantize" | head -1
grep -E "Final estimate" "$work/out-llama" | head -1
echo "load: $(uptime | sed 's/.*load average: //')"
