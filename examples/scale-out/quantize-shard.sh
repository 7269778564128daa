#!/usr/bin/env bash
# One job of a sharded conversion: writes shard I of N of MODEL converted to TYPE, as OUTPUT-0000I-of-0000N.gguf.
# N such jobs, on any machines that see MODEL and OUTPUT's folder, make one split model llama.cpp loads from its
# first shard; no job waits for or talks to another (docs/scale-out.md).
#
#   quantize-shard.sh MODEL TYPE OUTPUT [more quantize options, e.g. --imatrix FILE --threads 16]
#
# Which shard this job writes comes from the batch engine's environment, the first of:
#   SHARD_INDEX (1..N) and SHARD_COUNT       set them yourself, e.g. a GitHub Actions matrix
#   SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT   a Slurm job array (any --array=A-B range)
#   JOB_COMPLETION_INDEX (0..N-1) and SHARD_COUNT    a Kubernetes Indexed Job
# QUANTIZE names the binary (default: quantize on PATH). The job first prints its plan (what it will write),
# then converts; its exit status is quantize's (docs/cli.md): 0 done, 1 I/O, 2 usage, 3 bad input, 4 impossible.
# Running a job again writes the same bytes; an existing shard is replaced only with --force among the options.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
model="$1" type="$2" output="$3"
shift 3
quantize="${QUANTIZE:-quantize}"

if [ -n "${SHARD_INDEX:-}" ]; then
  index="$SHARD_INDEX"
  count="${SHARD_COUNT:?SHARD_INDEX is set: set SHARD_COUNT too}"
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  # Slurm numbers array tasks as the --array range says (1-8 or 0-7): count from the range's start.
  index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-1} + 1))
  count="${SLURM_ARRAY_TASK_COUNT:?SLURM_ARRAY_TASK_COUNT is not set}"
elif [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
  index=$((JOB_COMPLETION_INDEX + 1))
  count="${SHARD_COUNT:?set SHARD_COUNT to the Job spec completions}"
else
  echo "quantize-shard.sh: no shard index: set SHARD_INDEX and SHARD_COUNT, or run as a Slurm array task or a" \
       "Kubernetes Indexed Job" >&2
  exit 2
fi

echo "quantize-shard.sh: shard $index of $count of $model -> $output ($type)" >&2
mkdir -p "$(dirname "$output")"
"$quantize" "$model" --to "$type" --shard "$index/$count" -o "$output" --dry-run "$@" >&2
exec "$quantize" "$model" --to "$type" --shard "$index/$count" -o "$output" "$@"
