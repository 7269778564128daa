#!/usr/bin/env bash
# The automatic mix's search cost: one whole measurement and choice (`quantize MODEL --target-bpw B --dry-run`,
# no sensitivity cache) under /usr/bin/time -v, RUNS times. Prints, per run, the wall and CPU seconds, the peak
# RSS, the seconds the report gives for the measurement (and the imatrix computed from the text, if any), and the
# load average before the run: numbers taken on a shared machine are only as good as that load.
#
# Usage: bench/automix_search.sh MODEL TEXT [more quantize options, e.g. --imatrix F --calibration-ctx 256]
# Environment (all optional):
#   BUILD=build        build directory holding quantize
#   THREADS=2          -t
#   BPW=4.5            the budget (any reachable one: the measurement does not depend on it)
#   RUNS=1             runs; each is reported
#   OUT=/tmp/automix-search   where the JSON reports and time logs go
set -euo pipefail

MODEL=${1:?usage: automix_search.sh MODEL TEXT [quantize options]}
TEXT=${2:?usage: automix_search.sh MODEL TEXT [quantize options]}
shift 2
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
BPW=${BPW:-4.5}
RUNS=${RUNS:-1}
OUT=${OUT:-/tmp/automix-search}
QUANTIZE=$BUILD/quantize
[[ -x $QUANTIZE ]] || { echo "error: $QUANTIZE not built (cmake --build $BUILD --target quantize)" >&2; exit 2; }
mkdir -p "$OUT"

echo "| run | load before (1/5/15 min) | wall s | CPU s | peak RSS MiB | imatrix s | measure s | solve s | check s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for run in $(seq 1 "$RUNS"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  report=$OUT/report-$run.json
  timing=$OUT/time-$run.txt
  /usr/bin/time -v "$QUANTIZE" --json "$MODEL" --target-bpw "$BPW" --calibration-text "$TEXT" -t "$THREADS" \
    --dry-run "$@" >"$report" 2>"$timing"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$timing")
  cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.1f", u + s}' "$timing")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$timing")
  imatrix=$(jq -r 'if .imatrix_from_text then (.imatrix_from_text.seconds * 10 | round / 10) else "-" end' "$report")
  measure=$(jq -r '.measure_seconds * 10 | round / 10' "$report")
  solve=$(jq -r '.solve_seconds * 1000 | round / 1000' "$report")
  check=$(jq -r '.check_seconds * 10 | round / 10' "$report")
  echo "| $run | $load | $wall | $cpu | $rss | $imatrix | $measure | $solve | $check |"
done
