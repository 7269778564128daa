#!/usr/bin/env bash
# Checks that AVX/AVX-512 code in a linked binary lives only in the SIMD kernel files.
#
# The kernels for each instruction set are compiled in their own file (src/formats/simd_avx2.cpp,
# simd_avx512.cpp) inside a target region, and chosen at run time. If an inline function of a shared header were
# compiled inside such a region, its AVX copy could be the one the linker keeps for every caller, and the scalar
# path would die with SIGILL on a CPU without AVX. So: every function of BINARY holding a VEX/EVEX instruction
# (a v-prefixed mnemonic, a ymm/zmm register or a mask register) must be a local (internal-linkage) function
# defined in one of the given SIMD object files.
#
# Usage: scripts/check_simd_isolation.sh BINARY OBJECT...   (objects not named simd_avx* are ignored)
# Exit status: 0 clean, 1 AVX code found outside the SIMD files, 2 usage or missing tool.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BINARY OBJECT..." >&2
  exit 2
fi
for tool in nm objdump c++filt awk; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed (binutils)" >&2; exit 2; }
done
binary="$1"; shift

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Local text symbols of the SIMD objects: the only places AVX code may live.
: > "$work/allowed"
simd_objects=0
for object in "$@"; do
  case "$(basename "$object")" in
    simd_avx*) simd_objects=$((simd_objects + 1))
               nm --defined-only "$object" | awk '$2 == "t" { print $3 }' >> "$work/allowed" ;;
  esac
done
if [ "$simd_objects" -eq 0 ]; then
  echo "$0: no simd_avx* object among the arguments" >&2
  exit 2
fi
sort -u -o "$work/allowed" "$work/allowed"

# Symbols the binary exports or shares (anything but a local text symbol): an AVX function must not be one.
nm --defined-only "$binary" | awk '$2 != "t" { print $3 }' | sort -u > "$work/shared"

# Every function with a VEX/EVEX instruction. VMX instructions (vmcall, vmxon...) and verr/verw start with v
# but are not VEX-encoded.
objdump -d --no-show-raw-insn "$binary" | awk '
  /^[0-9a-f]+ <.+>:$/ { name = $2; sub(/^</, "", name); sub(/>:$/, "", name); functions++; next }
  /^ +[0-9a-f]+:\t/ {
    split($0, parts, "\t"); instruction = parts[2]; mnemonic = instruction; sub(/ .*/, "", mnemonic)
    vex = mnemonic ~ /^v/ && mnemonic !~ /^(vm|verr|verw)/
    if (vex || instruction ~ /%[yz]mm[0-9]|%k[0-7]([^0-9]|$)/) avx[name] = 1
  }
  END { for (f in avx) print f > "/dev/stderr"; print functions }
' 2> "$work/avx_unsorted" > "$work/function_count"
sed 's/@.*//' "$work/avx_unsorted" | sort -u > "$work/avx"

# Eigen's templates in the forward pass's GEMM files (src/model/simd_avx*_gemm.cpp) are compiled inside the
# target region under a namespace of their own (QuantSimdEigenAvx2 / QuantSimdEigenAvx512): weak symbols, but
# no code outside those files can name them, so no plain-path caller can end up in them.
grep -v 'QuantSimdEigenAvx' "$work/avx" > "$work/avx_checked" || true
outside=$(comm -23 "$work/avx_checked" "$work/allowed"; comm -12 "$work/avx_checked" "$work/shared")
total=$(wc -l < "$work/avx")
echo "$binary: $(cat "$work/function_count") functions, $total with AVX/AVX-512 instructions"
if [ -n "$outside" ]; then
  echo "AVX code outside the SIMD files' local functions:"
  echo "$outside" | sort -u | c++filt | sed 's/^/  /'
  exit 1
fi
if [ "$total" -eq 0 ]; then
  # The kernels exist on x86-64; finding none means this check is looking at the wrong thing.
  echo "$0: no AVX code found at all: is $binary built with the SIMD kernels?" >&2
  exit 1
fi
echo "all of them are local functions of the SIMD objects (or Eigen templates under the GEMM files' own namespaces)"
