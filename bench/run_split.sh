#!/usr/bin/env bash
# Split, merge and sharded-run benchmark: our `quantize split` / `merge` against llama.cpp's `llama-gguf-split
# --split` / `--merge` on the synthetic llama model of bench/run_whole.sh, alternately, RUNS times each, under
# /usr/bin/time -v; then the Q4_K_M conversion as one run and as N `--shard I/N` jobs run one after another (what
# each of N machines would spend). Prints medians (wall, CPU, peak RSS) and whether the files are identical.
#
# Usage: bench/run_split.sh   (from the repository root, after building quantize and make_synthetic_model)
# Environment (all optional): BUILD=build-bench  WORK=/tmp/quant-bench  PARAMS=861M  THREADS=2  RUNS=3
#   SPLIT_SIZE=500M (the shard size for split)  SHARDS=4 (jobs of the sharded run)
#   LLAMA_GGUF_SPLIT=/path/to/llama-gguf-split   the peer; without it only our numbers are printed
set -euo pipefail

BUILD=${BUILD:-build-bench}
WORK=${WORK:-/tmp/quant-bench}
PARAMS=${PARAMS:-861M}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
SPLIT_SIZE=${SPLIT_SIZE:-500M}
SHARDS=${SHARDS:-4}
LLAMA_GGUF_SPLIT=${LLAMA_GGUF_SPLIT:-}
QUANTIZE=$BUILD/quantize
GENERATOR=$BUILD/bench/make_synthetic_model
for tool in "$QUANTIZE" "$GENERATOR"; do
  [[ -x $tool ]] || { echo "error: $tool not built (cmake --build $BUILD --target quantize make_synthetic_model)" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }

mkdir -p "$WORK/split" "$WORK/logs"
MODEL=$WORK/synthetic-$PARAMS-f16.gguf
[[ -f $MODEL ]] || "$GENERATOR" --params-size "$PARAMS" -o "$MODEL" --force
RESULTS=$WORK/logs/split-results.tsv
: > "$RESULTS"

# timed NAME RUN COMMAND...: runs COMMAND under /usr/bin/time -v, appends name, run, wall, cpu, rss to RESULTS.
timed() {
  local name=$1 run=$2; shift 2
  local file=$WORK/logs/${name//[^A-Za-z0-9_]/_}-$run
  sync
  /usr/bin/time -v -o "$file.time" "$@" > "$file.out" 2>&1 || { echo "error: $name failed, see $file.out" >&2; exit 1; }
  awk -v name="$name" -v run="$run" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + p[i] }
    /User time \(seconds\)/ { user = $2 }
    /System time \(seconds\)/ { sys = $2 }
    /Maximum resident set size/ { rss = $2 }
    END { printf "%s\t%s\t%.3f\t%.3f\t%d\n", name, run, wall, user + sys, rss }' "$file.time" >> "$RESULTS"
}

cat "$MODEL" > /dev/null
S=$WORK/split
for run in $(seq 1 "$RUNS"); do
  rm -f "$S"/ours-* "$S"/peer-*
  timed "split ours" "$run" "$QUANTIZE" split "$MODEL" "$S/ours" --split-max-size "$SPLIT_SIZE" -q
  [[ -z $LLAMA_GGUF_SPLIT ]] || timed "split peer" "$run" "$LLAMA_GGUF_SPLIT" --split --split-max-size "$SPLIT_SIZE" "$MODEL" "$S/peer"
  timed "merge ours" "$run" "$QUANTIZE" merge "$S/ours-00001-of-"*.gguf "$S/ours-merged.gguf" -q
  [[ -z $LLAMA_GGUF_SPLIT ]] || timed "merge peer" "$run" "$LLAMA_GGUF_SPLIT" --merge "$S/peer-00001-of-"*.gguf "$S/peer-merged.gguf"
  rm -f "$S"/q4-*
  timed "Q4_K_M one run" "$run" "$QUANTIZE" "$MODEL" --to Q4_K_M -o "$S/q4-single.gguf" -t "$THREADS" -q
  for i in $(seq 1 "$SHARDS"); do
    timed "Q4_K_M shard $i/$SHARDS" "$run" "$QUANTIZE" "$MODEL" --to Q4_K_M --shard "$i/$SHARDS" -o "$S/q4-sharded.gguf" -t "$THREADS" -q
  done
done

echo "model: $MODEL ($(stat -c %s "$MODEL") bytes), threads $THREADS, medians of $RUNS runs"
for f in "$S"/ours-0*.gguf; do
  peer=${f/ours-/peer-}
  [[ -f $peer ]] && { cmp -s "$f" "$peer" && echo "identical: $(basename "$f")" || echo "DIFFERENT: $(basename "$f")"; }
done
[[ -f $S/peer-merged.gguf ]] && { cmp -s "$S/ours-merged.gguf" "$S/peer-merged.gguf" && echo "identical: merged" || echo "DIFFERENT: merged"; }
python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    name, run, wall, cpu, rss = line.rstrip("\n").split("\t")
    if name not in rows: order.append(name)
    rows[name].append((float(wall), float(cpu), int(rss)))
print("| step | wall s | CPU s | peak RSS MiB |")
print("|---|---:|---:|---:|")
for name in order:
    r = rows[name]
    print(f"| {name} | {statistics.median(x[0] for x in r):.2f} | {statistics.median(x[1] for x in r):.2f} | "
          f"{statistics.median(x[2] for x in r) / 1024:.0f} |")
PY
