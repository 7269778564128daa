// The quantization plan: which type every tensor of a model gets, exactly as llama.cpp's llama-quantize chooses.
//
// A request names a file type (a "mix": Q4_K_M, IQ2_XS, Q8_0, COPY...). Each mix has a default ggml type; the
// plan then decides per tensor, in this order of precedence:
//   1. tensors that are never quantized (1-D, norms, router gates, positional embeddings...) keep their type;
//   2. --token-embedding-type and --output-tensor-type, taken as given (no shape fallback);
//   3. when the default type is quantized: the first --tensor-type regex that matches the tensor name, else
//      (unless --pure) the mix rules (output/embedding, attention, feed-forward, per-layer "more bits");
//      then the shape fallback when the row length is not a multiple of the chosen type's block.
// Tensors are returned in llama-quantize's output order: by block number (tensors outside blocks first), then
// by name. The mix rules keep running counters over that order, so the order is part of the contract.
// docs/plan.md describes every rule in words.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/error.h"
#include "quant/formats.h"

namespace quant {

// llama.cpp's llama_ftype: the value written to `general.file_type`. Gaps are removed or internal ids.
enum class FileType : uint32_t {
  all_f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 7, q5_0 = 8, q5_1 = 9, q2_K = 10,
  q3_K_S = 11, q3_K_M = 12, q3_K_L = 13, q4_K_S = 14, q4_K_M = 15, q5_K_S = 16, q5_K_M = 17, q6_K = 18,
  iq2_xxs = 19, iq2_xs = 20, q2_K_S = 21, iq3_xs = 22, iq3_xxs = 23, iq1_s = 24, iq4_nl = 25, iq3_s = 26,
  iq3_m = 27, iq2_s = 28, iq2_m = 29, iq4_xs = 30, iq1_m = 31, bf16 = 32, tq1_0 = 36, tq2_0 = 37,
  mxfp4_moe = 38, q1_0 = 40, q2_0 = 41,
};

// llama.cpp marks a file type it inferred from the tensor types (no `general.file_type` key) with this bit.
inline constexpr uint32_t kFileTypeGuessedFlag = 1024;

// One TYPE name accepted on the command line.
struct FileTypeInfo {
  std::string_view name;         // as llama-quantize spells it: "Q4_K_M", "Q4_K" (alias), "COPY"
  FileType id;
  TypeId default_type;           // the type most tensors get
  bool copy_only;                // COPY: every tensor is written unchanged
  std::string_view description;  // one line for --help
};

// Every TYPE name, in llama-quantize's --help order (aliases right before what they stand for, COPY last).
std::span<const FileTypeInfo> all_file_types();
// The entry for a TYPE argument: a name (case-insensitive) or a decimal file type id. A numeric id resolves to
// the first entry with that id, so 15 reads as "Q4_K" and 0 as "F32", as in llama-quantize. Usage error else.
Result<const FileTypeInfo*> parse_file_type(std::string_view text);
// The canonical (non-alias, non-COPY) entry of a file type id, or nullptr.
const FileTypeInfo* find_file_type(FileType id);

// One tensor of the input model, independent of the file reader.
struct PlanTensor {
  std::string name;
  std::vector<int64_t> shape;  // ne0 (the row length) first; 1 to 4 dimensions
  TypeId type;                 // its type in the input file
};

// What the rules need to know about the model (from the GGUF metadata).
struct ModelParams {
  std::string arch;       // general.architecture: "llama", "falcon", "qwen3"...
  int64_t n_layer = 0;    // {arch}.block_count
  int64_t n_head = 0;     // {arch}.attention.head_count (first layer's value when it is per layer)
  int64_t n_head_kv = 0;  // {arch}.attention.head_count_kv (likewise; 0 when absent)
  int64_t n_expert = 0;   // {arch}.expert_count (0 for dense models)
  // llama.cpp's "70B" size class, which gives attn_v more bits. Set it with infers_70b_class() from the file.
  bool is_70b_class = false;
};

// Whether llama.cpp would classify the model as its 70B size: llama with 80 blocks and grouped-query attention,
// deci or qwen2 with 80 blocks, jais2 with 68.
bool infers_70b_class(std::string_view arch, int64_t n_layer, int64_t n_head, int64_t n_head_kv);

// --tensor-type REGEX=TYPE: the first pattern found (std::regex_search, ECMAScript) in a tensor name wins.
struct TensorTypeOverride {
  std::string pattern;  // already lowercased by parse_tensor_type_override, as llama-quantize does
  TypeId type;
};

// What the user chose about tensor types, llama-quantize's options of the same names. A conversion takes this
// struct from its caller (ConvertRequest::types) and hands it to the plan of every target as it is.
struct TypeChoices {
  bool pure = false;                  // --pure: no mix rules
  bool leave_output_tensor = false;   // --leave-output-tensor
  bool allow_requantize = false;      // --allow-requantize
  std::optional<TypeId> output_tensor_type;    // --output-tensor-type
  std::optional<TypeId> token_embedding_type;  // --token-embedding-type
  std::vector<TensorTypeOverride> tensor_types;  // --tensor-type / --tensor-type-file, in command-line order
};

struct PlanOptions {
  FileType file_type = FileType::q8_0;
  bool copy_only = false;             // COPY
  bool has_imatrix = false;           // an importance matrix with at least one entry will be used
  bool dry_run = false;               // --dry-run: a missing imatrix or a disabled requantize is not an error
  TypeChoices types;
  // Walk the tensors in the order given rather than llama-quantize's name order: llama-quantize --keep-split sorts
  // them by input shard and offset first, and the mix rules' counters follow whichever order is walked.
  bool input_order = false;
  // For COPY: the input's `general.file_type`, written back unchanged; when absent the plan guesses it.
  std::optional<uint32_t> input_file_type;
};

// Which step of the precedence decided a tensor's type.
enum class PlanRule {
  not_quantized,         // never quantized (or COPY): keeps its input type
  token_embedding_type,  // --token-embedding-type
  output_tensor_type,    // --output-tensor-type
  tensor_type_override,  // a --tensor-type pattern
  pure_default,          // --pure, or a float file type: the default type
  mix_default,           // the mix rules ran and kept the default type
  mix_rule,              // a mix rule changed the type
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;
  TypeId source_type;
  TypeId target_type;
  PlanRule rule;
  std::string why;                     // one line for --dry-run and the report: the rule that fired
  std::optional<TypeId> fallback_from; // set when the shape forced a fallback away from this type
  bool requires_imatrix = false;       // llama-quantize refuses this tensor without importance data

  // True when the tensor's bytes are written unchanged.
  bool keeps_type() const { return target_type == source_type; }
};

struct Plan {
  uint32_t file_type = 0;          // the value for `general.file_type`
  std::vector<TensorPlan> tensors; // in output order
  int fallback_count = 0;          // tensors whose shape forced a fallback type
  bool imatrix_required = false;   // some tensor requires an imatrix (reported, not an error, under dry_run)
};

// Chooses every tensor's type. Errors: invalid_input for a malformed tensor list (empty or duplicate name, bad
// shape, a block tensor whose layer cannot be read in a mixture-of-experts model); usage for an invalid regex;
// impossible for a shape with no fallback, a type requiring an imatrix when none is given ("this quantization
// requires an importance matrix", naming the tensor), requantizing a quantized input without allow_requantize
// ("requantizing from type X is disabled"), or an input type that cannot be converted.
Result<Plan> make_plan(const ModelParams& model, std::span<const PlanTensor> tensors, const PlanOptions& options);

// llama.cpp's guess of a file's type from its most common tensor type (ties go to the type reached first in
// output order), marked with kFileTypeGuessedFlag. Used for COPY when the input has no `general.file_type`.
uint32_t guess_file_type(std::span<const PlanTensor> tensors);

// Parses one REGEX=TYPE (the regex lowercased, TYPE a ggml type name, case-insensitive). Usage error when the
// '=' , the name or the type is missing, or the type is unknown.
Result<TensorTypeOverride> parse_tensor_type_override(std::string_view text);
// Parses the contents of a --tensor-type-file: REGEX=TYPE entries separated by any whitespace.
Result<std::vector<TensorTypeOverride>> parse_tensor_type_list(std::string_view text);
// Reads and parses a --tensor-type-file (io error when it cannot be read).
Result<std::vector<TensorTypeOverride>> read_tensor_type_file(const std::string& path);
// Parses a type name for --output-tensor-type / --token-embedding-type (case-insensitive ggml name).
Result<TypeId> parse_ggml_type_name(std::string_view text);

// --override-kv KEY=TYPE:VALUE, parsed the way llama.cpp does.
struct KvOverride {
  enum class Kind { integer, floating, boolean, string };
  std::string key;
  Kind kind = Kind::integer;
  int64_t int_value = 0;      // integer: a whole decimal number whose magnitude fits u32
  double float_value = 0.0;   // floating: a finite number within float32's range
  bool bool_value = false;    // boolean: exactly "true" or "false"
  std::string string_value;   // string: at most 127 bytes

  // The u32 llama-quantize writes for an integer override: the absolute value, truncated to 32 bits.
  uint32_t written_u32() const;
  // The f32 llama-quantize writes for a float override.
  float written_f32() const { return static_cast<float>(float_value); }
};

// Usage error for a missing '=', a key of 128 bytes or more, an empty key, an unknown TYPE prefix, an int that is
// not a whole number or whose magnitude does not fit u32, a float that is not a finite number within float32's
// range, a bool that is not true/false, or a string over 127 bytes. (llama-quantize reads int and float with
// atol/atof and writes "abc" as 0 and 99999999999 as 1215752191; we refuse instead, docs/compatibility.md.)
Result<KvOverride> parse_kv_override(std::string_view text);

}  // namespace quant
