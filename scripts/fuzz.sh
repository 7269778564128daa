#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with ASan + UBSan and runs them; the one command behind
# docs/reliability.md.
#   scripts/fuzz.sh --regressions [--runs N | --seconds N]
#                                                 replay every regression input (tests/data/fuzz-regressions/),
#                                                 then fuzz each target from its seeds for a fixed number of
#                                                 executions with a fixed seed (default: per-target counts below,
#                                                 seed 1), so a run gives the same verdict on every machine that
#                                                 has the same clang; --seconds N fuzzes by time instead
#   scripts/fuzz.sh --long [--runs N] [--seconds N]
#                                                 the long campaign: the GGUF target for N executions (default
#                                                 10,000,000), every other target for --seconds (default 1800)
# Options: --targets "gguf dequantize"  only these targets;  --no-build  use the binaries already built;
#          --jobs N  parallel libFuzzer jobs per target (default 1: the machine is shared);
#          --seed N  libFuzzer's random seed for the --regressions runs (default 1).
# Environment: BUILD_DIR (default build-san, the sanitizer build scripts/test.sh also runs the unit tests in;
# scripts/configure_sanitizer_build.sh configures it). Seed corpora are made at run time from tests/data (nothing is
# committed twice); new corpus inputs and crash files go to $BUILD_DIR/fuzz-work/<target>/.
# Exit status: 0 when every replay and run finished with no crash, leak, timeout, sanitizer report or
# over-limit allocation; 1 otherwise (the offending inputs are listed).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

mode=""
seconds=""
runs=""
seed=1
targets="gguf dequantize dataset imatrix hf split kl_base jsonl tokenizer sensitivity_cache hf_tokenizer"
build=1
jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --regressions) mode=regressions ;;
    --long) mode=long ;;
    --seconds) seconds="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --targets) targets="$2"; shift ;;
    --no-build) build=0 ;;
    --jobs) jobs="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$mode" ]; then
  echo "fuzz.sh: give --regressions or --long (see --help)" >&2
  exit 2
fi
if [ "$mode" = long ]; then
  [ -n "$seconds" ] || seconds=1800
  [ -n "$runs" ] || runs=10000000
fi

build_dir="${BUILD_DIR:-build-san}"
case "$build_dir" in /*) build_abs="$build_dir" ;; *) build_abs="$root/$build_dir" ;; esac
work="$build_abs/fuzz-work"
regressions="tests/data/fuzz-regressions"

# Resource limits every run is held to (docs/reliability.md): any single allocation above the malloc limit,
# or a process above the RSS limit, is a finding; so is one input taking more than the timeout.
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=20)
# Longest input libFuzzer builds, per target: GGUF headers and dataset files need room; blocks do not.
declare -A max_len=([gguf]=16384 [dequantize]=4096 [dataset]=65536 [imatrix]=65536 [hf]=16384 [split]=32768 [kl_base]=16384 [jsonl]=8192 [tokenizer]=65536
                   [sensitivity_cache]=8192 [hf_tokenizer]=131072)
# Executions per target in the CI (--regressions) runs: about 30-60 s each on a loaded 2-core machine. A fixed
# count and seed make the run reproducible: a clean local run means a clean CI run. Finding new bugs is the long
# campaign's job; CI guards against regressions and shallow bugs on changed code.
declare -A ci_runs=([gguf]=300000 [dequantize]=60000 [dataset]=100000 [imatrix]=100000 [hf]=10000 [split]=30000 [kl_base]=100000 [jsonl]=40000 [tokenizer]=20000
                   [sensitivity_cache]=100000 [hf_tokenizer]=6000)

if [ "$build" = 1 ]; then
  BUILD_DIR="$build_dir" scripts/configure_sanitizer_build.sh >/dev/null
  build_targets=(make_gguf_seeds make_tokenizer_seeds)
  for t in $targets; do build_targets+=("${t}_fuzzer"); done
  cmake --build "$build_dir" -j "$(nproc)" --target "${build_targets[@]}"
fi

# Copies the first max_len bytes of each file into the seed directory (libFuzzer would cut them anyway).
add_seeds() {
  local target="$1"; shift
  local dir="$work/$target/seeds"
  for file in "$@"; do
    [ -f "$file" ] || continue
    head -c "${max_len[$target]}" "$file" > "$dir/$(echo "$file" | tr '/' '_')"
  done
}

# Seed corpora from the real files in tests/data, plus the regression inputs.
make_seeds() {
  local target="$1"
  rm -rf "$work/$target/seeds" "$work/$target/crashes"
  # The CI run starts from the seeds alone, as on a clean clone; the long campaign keeps growing its corpus.
  [ "$mode" = regressions ] && rm -rf "$work/$target/corpus"
  mkdir -p "$work/$target/seeds" "$work/$target/corpus" "$work/$target/crashes"
  case "$target" in
    gguf)
      mapfile -t files < <(find tests/data -name '*.gguf' | sort)
      add_seeds gguf "${files[@]}"
      "$build_dir/fuzz/make_gguf_seeds" "$work/gguf/seeds" "${files[@]}" 2>/dev/null || true
      ;;
    dequantize)
      # For every selector byte (covering every format): all-zero blocks, and blocks cut from the reference
      # input floats (arbitrary bit patterns to the block layouts).
      local floats=tests/data/ggml-vectors/inputs/gauss.f32
      for ((b = 0; b < 64; b++)); do
        { printf "\\x$(printf %02x "$b")"; head -c 1024 /dev/zero; } > "$work/dequantize/seeds/zeros-$b"
        { printf "\\x$(printf %02x "$b")"
          dd if="$floats" bs=4096 iflag=skip_bytes,count_bytes skip=$((b * 64)) count=2048 status=none
        } > "$work/dequantize/seeds/floats-$b"
      done
      ;;
    dataset)
      mapfile -t files < <(find tests/data/safetensors tests/data/npy -type f \( -name '*.safetensors' -o -name '*.npy' -o -name '*.npz' \) | sort)
      add_seeds dataset "${files[@]}"
      ;;
    imatrix)
      mapfile -t files < <(find tests/data/imatrix -type f \( -name '*.gguf' -o -name '*.dat' \) | sort)
      add_seeds imatrix "${files[@]}"
      ;;
    hf)
      # Each checkpoint config of tests/data/hf, shrunk, with a consistent safetensors file (stdlib Python).
      python3 fuzz/make_hf_seeds.py tests/data/hf "$work/hf/seeds"
      ;;
    split)
      # Small copies of the real models, each cut into shards and packed as one input (fuzz/split_input.h).
      "$build_dir/fuzz/make_gguf_seeds" --split "$work/split/seeds" tests/data/gguf/stories260K.gguf \
        tests/data/models/tiny-llama-f16.gguf tests/data/gguf/mnist-fc-f32.gguf 2>/dev/null || true
      ;;
    jsonl)
      # Calibration text as JSON Lines: documents, OpenAI-style chats (string and list-of-parts contents) and
      # ShareGPT-style chats, with lines of the real calibration text; and the plain text itself.
      {
        head -n 3 tests/data/text/calib.txt | sed 's/\\/\\\\/g; s/"/\\"/g; s/.*/{"text": "&", "id": 1}/'
        printf '%s\n' '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "caf\u00e9 \ud83d\ude00"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}'
        printf '%s\r\n' '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}'
        printf '\n{"text": ""}\n'
      } > "$work/jsonl/seeds/documents-and-chats.jsonl"
      head -c 4096 tests/data/text/code-calib.txt > "$work/jsonl/seeds/plain.txt"
      ;;
    kl_base)
      # llama-perplexity's file cut after its header and first tokens, and a whole small file in its layout:
      # "_logits_", n_ctx 4, n_vocab 3, 1 chunk, 4 tokens, 1 row of 8 u16 (scale, minimum, 3 values, padding).
      head -c 2048 tests/data/eval/f16-code-calib-c256-16chunks.kld > "$work/kl_base/seeds/llama-perplexity-head"
      printf '_logits_\x04\0\0\0\x03\0\0\0\x01\0\0\0\x01\0\0\0\x02\0\0\0\0\0\0\0\x01\0\0\0''\x00\x01\x80\x37\x00\x00\x80\xc0\xff\xff\x00\x80\x00\x00\x00\x00' \
        > "$work/kl_base/seeds/small-valid"
      ;;
    sensitivity_cache)
      # A cache with the fuzzer's expected fingerprint, and one from another model (refused).
      local head='{"format": "quantize.sensitivity", "version": 1, "unit": "KLD (nats)", "seconds": 1.5, "fingerprint": '
      local tensors='"tensors": [{"name": "blk.0.attn_q.weight", "costs": {"f16": 0, "q4_K": 0.0012, "iq2_xs": 0.5}}, {"name": "output.weight", "costs": {"q8_0": 3.5e-05}}]}'
      echo "$head"'{"model": "aa11", "imatrix": "bb22", "text": "none", "measurer": "weighted-error/1 values=131072"}, '"$tensors" \
        > "$work/sensitivity_cache/seeds/valid"
      echo "$head"'{"model": "cc33", "imatrix": "none", "text": "none", "measurer": "kld/1"}, '"$tensors" \
        > "$work/sensitivity_cache/seeds/other-model"
      ;;
    hf_tokenizer)
      # The BPE checkpoints' tokenizer.json with their tokenizer_config.json, and the pre-tokenizer variants.
      local tj
      for tj in tests/data/hf/bpe-*/tokenizer.json tests/data/hf/bpe-variants/*.tokenizer.json; do
        local tc="${tj%tokenizer.json}tokenizer_config.json"
        python3 -c 'import struct, sys; a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read(); sys.stdout.buffer.write(struct.pack("<I", len(a)) + a + b)' \
          "$tj" "$tc" > "$work/hf_tokenizer/seeds/$(echo "$tj" | tr '/' '_')"
      done
      ;;
    tokenizer)
      # Vocabulary files are megabytes: seeds are cut-down vocabularies (every model, many pre-tokenizers).
      mapfile -t files < <(find tests/data/gguf/vocab tests/data/tokenizer tests/data/models -name '*.gguf' | sort)
      "$build_dir/fuzz/make_tokenizer_seeds" "$work/tokenizer/seeds" "${files[@]}"
      ;;
  esac
  if [ -d "$regressions/$target" ]; then
    find "$regressions/$target" -type f ! -name 'README.md' ! -name '.gitkeep' -exec cp {} "$work/$target/seeds/" \;
  fi
}

failed=0

# Runs each regression input once; any crash, leak or sanitizer report fails.
replay() {
  local target="$1"
  local dir="$regressions/$target"
  mapfile -t inputs < <(find "$dir" -type f ! -name 'README.md' ! -name '.gitkeep' 2>/dev/null | sort)
  if [ ${#inputs[@]} -eq 0 ]; then
    echo "fuzz.sh: $target: no regression inputs"
    return
  fi
  if "$build_dir/fuzz/${target}_fuzzer" "${limits[@]}" "${inputs[@]}" > "$work/$target/replay.log" 2>&1; then
    echo "fuzz.sh: $target: ${#inputs[@]} regression inputs replayed, no findings"
  else
    echo "fuzz.sh: $target: FAILED replaying regression inputs (see $work/$target/replay.log)" >&2
    failed=1
  fi
}

# Fuzzes one target from its seeds and corpus; `$@` says how long (-max_total_time or -runs).
fuzz() {
  local target="$1"; shift
  local log="$work/$target/$mode.log"
  local fuzzer="$build_abs/fuzz/${target}_fuzzer"
  echo "fuzz.sh: $target: fuzzing ($*), log $log"
  local status=0
  local parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # Run inside the target's work directory: with -jobs, libFuzzer writes fuzz-<n>.log files to the current one.
  (cd "$work/$target" && ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$fuzzer" "${limits[@]}" -max_len="${max_len[$target]}" -print_final_stats=1 "${parallel[@]}" \
      -artifact_prefix=crashes/ "$@" corpus seeds) > "$log" 2>&1 || status=$?
  # With -jobs, libFuzzer writes each job's output to fuzz-<n>.log in the working directory.
  local execs corpus
  execs=$(cat "$log" "$work/$target"/fuzz-*.log 2>/dev/null | grep 'stat::number_of_executed_units' |
          awk '{s += $2} END {print s + 0}' || true)
  corpus=$(find "$work/$target/corpus" -type f | wc -l || true)
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/$target/crashes")" ]; then
    echo "fuzz.sh: $target: FINDING after $execs executions (exit $status); inputs:" >&2
    ls "$work/$target/crashes" >&2 || true
    failed=1
  else
    echo "fuzz.sh: $target: $execs executions, corpus $corpus inputs, no findings"
  fi
}

for target in $targets; do
  make_seeds "$target"
  if [ "$mode" = regressions ]; then
    replay "$target"
    if [ -n "$seconds" ]; then
      fuzz "$target" -max_total_time="$seconds"
    else
      fuzz "$target" -seed="$seed" -runs="${runs:-${ci_runs[$target]}}"
    fi
  elif [ "$target" = gguf ]; then
    fuzz "$target" -runs="$runs"
  else
    fuzz "$target" -max_total_time="$seconds"
  fi
done
exit "$failed"
