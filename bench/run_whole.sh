#!/usr/bin/env bash
# Whole-conversion benchmark: our `quantize` against llama.cpp's `llama-quantize` on a synthetic llama model.
#
# Generates the model (and its importance matrix) with make_synthetic_model if missing, then runs, for each case
# (by default q8_0, q4_0, Q4_K_M and Q4_K_M with the imatrix), our quantize and (when LLAMA_QUANTIZE is set)
# llama-quantize, alternately, RUNS times each, under /usr/bin/time -v, with the same threads and default
# options. Prints a markdown table of medians (wall, CPU, peak RSS, ratios) and whether our output's sha256
# equals the peer's. Also times `cat model > /dev/null` and `cp model copy` as the floor any conversion is
# measured against.
#
# Usage: bench/run_whole.sh            (from the repository root, after building quantize and make_synthetic_model)
# Environment (all optional):
#   BUILD=build-bench          build directory holding quantize and bench/make_synthetic_model
#   WORK=/tmp/quant-bench      where the model, imatrix and outputs go (needs ~2x the model size free)
#   PARAMS=861M                synthetic model size in parameters (the issue's 1.7 GB f16 model)
#   SHAPE="--n-embd 2048 ..."  other make_synthetic_model options (widths, vocabulary, seed)
#   THREADS=2                  threads for both tools
#   RUNS=3                     runs per tool and case; medians are quoted
#   CASES="q8_0 q4_0 Q4_K_M Q4_K_M+imatrix"   a case is a llama-quantize type name, +imatrix to pass the imatrix;
#                              CASES=lowbit is the i-quant and Q2_K/Q3_K mixes with the imatrix (docs/performance.md)
#   LLAMA_QUANTIZE=/path/to/llama-quantize   the peer; without it only our numbers are printed
set -euo pipefail

BUILD=${BUILD:-build-bench}
WORK=${WORK:-/tmp/quant-bench}
PARAMS=${PARAMS:-861M}
SHAPE=${SHAPE:-}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
CASES=${CASES:-"q8_0 q4_0 Q4_K_M Q4_K_M+imatrix"}
if [[ $CASES == lowbit ]]; then
  CASES=""
  for type in IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_XS IQ4_NL Q2_K Q3_K_M; do CASES+=" $type+imatrix"; done
fi
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-}

QUANTIZE=$BUILD/quantize
GENERATOR=$BUILD/bench/make_synthetic_model
for tool in "$QUANTIZE" "$GENERATOR"; do
  [[ -x $tool ]] || { echo "error: $tool not built (cmake --build $BUILD --target quantize make_synthetic_model)" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
[[ -z $LLAMA_QUANTIZE || -x $LLAMA_QUANTIZE ]] || { echo "error: LLAMA_QUANTIZE=$LLAMA_QUANTIZE is not executable" >&2; exit 2; }

mkdir -p "$WORK/out" "$WORK/logs"
NAME=synthetic-$PARAMS$(echo "$SHAPE" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_')
MODEL=$WORK/$NAME-f16.gguf
IMATRIX=$WORK/$NAME.imatrix.gguf
if [[ ! -f $MODEL || ! -f $IMATRIX ]]; then
  echo "generating $MODEL and $IMATRIX" >&2
  # shellcheck disable=SC2086  # SHAPE is a list of options
  "$GENERATOR" --params-size "$PARAMS" $SHAPE -o "$MODEL" --imatrix "$IMATRIX" --force
fi
RESULTS=$WORK/logs/results.tsv
: > "$RESULTS"

# timed NAME CASE RUN COMMAND...: runs COMMAND under /usr/bin/time -v and appends wall, cpu, rss to RESULTS.
timed() {
  local name=$1 case=$2 run=$3; shift 3
  local log=$WORK/logs/$name-${case//+/_}-$run.time
  sync  # start every run with no dirty pages from the previous one
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)  # how busy the (shared) machine was as the run started
  if ! /usr/bin/time -v -o "$log" "$@" > "$WORK/logs/$name-${case//+/_}-$run.out" 2>&1; then
    echo "error: $name $case failed; see $WORK/logs/$name-${case//+/_}-$run.out" >&2
    exit 1
  fi
  awk -v name="$name" -v case="$case" -v run="$run" -v load="$load" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + p[i] }
    /User time \(seconds\)/ { user = $2 }
    /System time \(seconds\)/ { sys = $2 }
    /Maximum resident set size/ { rss = $2 }
    END { printf "%s\t%s\t%s\t%.3f\t%.3f\t%d\t%s\n", name, case, run, wall, user + sys, rss, load }' "$log" >> "$RESULTS"
}

type_of() { echo "${1%+imatrix}"; }

cat "$MODEL" > /dev/null  # the model is read from the page cache by every run, as the issue measures
for run in $(seq 1 "$RUNS"); do
  timed cat model "$run" sh -c "cat '$MODEL' > /dev/null"
  rm -f "$WORK/out/copy.gguf"
  timed cp model "$run" cp "$MODEL" "$WORK/out/copy.gguf"
  rm -f "$WORK/out/copy.gguf"
  for case in $CASES; do
    type=$(type_of "$case")
    ours=$WORK/out/ours-${case//+/_}.gguf
    peer=$WORK/out/peer-${case//+/_}.gguf
    imatrix_ours=() imatrix_peer=()
    if [[ $case == *+imatrix ]]; then
      imatrix_ours=(--imatrix "$IMATRIX") imatrix_peer=(--imatrix "$IMATRIX")  # same path: it is recorded in the output
    fi
    rm -f "$ours"
    timed quantize "$case" "$run" "$QUANTIZE" "$MODEL" --to "$type" -o "$ours" -t "$THREADS" "${imatrix_ours[@]}"
    if [[ -n $LLAMA_QUANTIZE ]]; then
      rm -f "$peer"
      timed llama-quantize "$case" "$run" "$LLAMA_QUANTIZE" "${imatrix_peer[@]}" "$MODEL" "$peer" "$type" "$THREADS"
    fi
  done
done

# Identical output: our file against the peer's, per case (the last run's files).
SHAS=$WORK/logs/sha256.tsv
: > "$SHAS"
for case in $CASES; do
  ours=$WORK/out/ours-${case//+/_}.gguf
  peer=$WORK/out/peer-${case//+/_}.gguf
  ours_sha=$(sha256sum "$ours" | cut -c1-64)
  peer_sha=-
  [[ -f $peer && -n $LLAMA_QUANTIZE ]] && peer_sha=$(sha256sum "$peer" | cut -c1-64)
  printf '%s\t%s\t%s\n' "$case" "$ours_sha" "$peer_sha" >> "$SHAS"
done

python3 - "$RESULTS" "$SHAS" "$MODEL" "$THREADS" "$RUNS" <<'EOF'
import collections, os, statistics, sys
results, shas, model, threads, runs = sys.argv[1:6]
rows = collections.defaultdict(list)
loads = []
for line in open(results):
    name, case, run, wall, cpu, rss, load = line.rstrip("\n").split("\t")
    rows[(name, case)].append((float(wall), float(cpu), int(rss)))
    loads.append(float(load))
def median(name, case):
    r = rows.get((name, case))
    if not r: return None
    return tuple(statistics.median(x[i] for x in r) for i in range(3))
size = os.path.getsize(model)
print(f"model: {model} ({size / 1e9:.2f} GB), threads {threads}, medians of {runs} runs")
print(f"1-minute load average as the runs started: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
      f"max {max(loads):.2f}\n")
cat, cp = median("cat", "model"), median("cp", "model")
print(f"baseline: cat model > /dev/null {cat[0]:.2f} s; cp model {cp[0]:.2f} s\n")
print("| case | ours wall s | ours CPU s | ours peak RSS MiB | peer wall s | peer CPU s | peer peak RSS MiB "
      "| speed-up (wall) | speed-up (CPU) | RSS ratio | ours / cp | identical |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
sha = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(shas)}
for case in [l.split("\t")[0] for l in open(shas)]:
    ours, peer = median("quantize", case), median("llama-quantize", case)
    o = f"{ours[0]:.2f} | {ours[1]:.2f} | {ours[2] / 1024:.0f}"
    if peer:
        p = f"{peer[0]:.2f} | {peer[1]:.2f} | {peer[2] / 1024:.0f}"
        ratios = f"{peer[0] / ours[0]:.1f}x | {peer[1] / ours[1]:.1f}x | {ours[2] / peer[2]:.2f}"
        same = "yes" if sha[case][0] == sha[case][1] else "**NO**"
    else:
        p, ratios, same = "- | - | -", "- | - | -", "-"
    print(f"| {case} | {o} | {p} | {ratios} | {ours[0] / cp[0]:.1f}x | {same} |")
print("\nsha256 (ours, peer):")
for case, (a, b) in sha.items():
    print(f"  {case}: {a} {b}")
EOF
