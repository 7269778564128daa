// The main job: convert a GGUF model to one or more quantized GGUF files, as llama-quantize would.
//
//   open input -> plan each target (which tensor gets which type) -> create one streaming, atomic writer per
//   target -> for each tensor in output order, for each chunk of rows: read once, widen to float32 once,
//   quantize for every target, measure the error, append -> commit every output together -> report.
// Memory stays bounded by one chunk of rows (a few MiB), not by the model or its largest tensor. The output is
// byte-identical to llama-quantize's for the same input, type and options (docs/compatibility.md says where we
// differ on purpose), and does not depend on the thread count.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quant/atomic_file.h"
#include "quant/error.h"
#include "quant/formats.h"
#include "quant/imatrix.h"
#include "quant/plan.h"
#include "quant/report.h"
#include "quant/split.h"

namespace quant {

// How every output is cut into shards (docs/cli.md, "Split outputs"): at most one of the three. Shards are named
// PREFIX-0000i-of-0000n.gguf, PREFIX being the output path without ".gguf".
struct OutputSplit {
  bool keep_split = false;              // one output shard per input shard, as llama-quantize --keep-split writes
  ShardLimits limits;                   // the whole output cut as llama-gguf-split --split-max-size / -tensors would
  std::optional<ShardSelection> shard;  // --shard I/N: write only shard I of N shards balanced by bytes
};

struct ConvertTarget {
  std::string type_name;  // a llama-quantize TYPE: "Q4_K_M", "q8_0", "COPY", "15"...
  std::string output;     // empty: "<input stem>-<TYPE>.gguf" beside the input
};

// Called after every chunk: bytes of input tensor data consumed so far, and the total to consume.
using ProgressCallback = std::function<void(uint64_t done_bytes, uint64_t total_bytes, const std::string& tensor)>;

// The importance matrix a conversion uses (llama-quantize's --imatrix, --include-weights, --exclude-weights).
struct ImatrixOptions {
  std::string path;  // recorded in `quantize.imatrix.file` exactly as given here; empty: none
  std::vector<std::string> include_weights;  // keep only entries whose name contains one of these
  std::vector<std::string> exclude_weights;  // drop entries whose name contains one of these
  // Or one computed in this run from a calibration text (`--calibration-text`): imatrix_from_text over the input
  // with these options (text_path set), after the plans and before the conversion reads the input. Used as a
  // file's would be and recorded as llama-quantize records one, without quantize.imatrix.file (there is no
  // file). A dry run plans as if it were there and does not compute it. Not together with `path`.
  std::optional<TextImatrixOptions> calibration_text;
  // Or one computed from a text already (imatrix_from_text; the automatic mix computes it to measure with, then
  // writes with it): used and recorded exactly as calibration_text's would be, in a dry run too (so a dry run's
  // size counts its quantize.imatrix.* keys). Not together with `path` or calibration_text.
  std::shared_ptr<const ImatrixCollection> computed;
};

// How tensors stream from the input to the outputs.
struct StreamOptions {
  // Accept NaN/Inf in input tensors that are copied unchanged (llama.cpp refuses to load such files). A tensor
  // that is converted never takes one, with or without this.
  bool allow_non_finite = false;
  uint64_t chunk_bytes = uint64_t(8) << 20;  // float32 bytes of rows processed at once (memory bound)
  ProgressCallback progress;                 // may be empty
  const std::atomic<bool>* cancel = nullptr; // when set and true, stop with an `interrupted` error
};

struct ConvertRequest {
  std::string input;
  std::vector<ConvertTarget> targets;  // one or more outputs from one read of the input

  TypeChoices types;        // per-tensor type choices, given to every target's plan as they are
  ImatrixOptions imatrix;
  std::vector<KvOverride> kv_overrides;  // --override-kv, applied after the standard keys

  OutputSplit split;  // one file per output unless set

  // A calibration table (`quantize calibrate -o`, JSON) to embed as quantize.calibration.* keys after every
  // other key (docs/calibration.md); empty: none.
  std::string calibration_table;

  bool dry_run = false;     // plan and size only; nothing is written
  // How the outputs are committed (quant/atomic_file.h): overwrite (--force), fsync, and whether replaced files
  // are freed in the background. Every file the conversion reads is added to `inputs`.
  OutputPolicy output;
  StreamOptions stream;
  int threads = 0;          // 0: all cores; more than the machine can run is capped (the report says how many)
};

// The default output path for a target: "<dir of input>/<input stem>-<TYPE>.gguf".
std::string default_output_path(const std::string& input, const std::string& type_name);

// Converts `request.input` to every target. The outputs are committed together, all or nothing: on any error no
// output file is created or changed and the input is untouched; the error names the file, tensor or option at
// fault. Warnings (things a caller may want to tell the user) come back in each report.
Result<std::vector<ConversionReport>> convert(const ConvertRequest& request);

}  // namespace quant
