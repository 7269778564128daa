// NumPy .npy: "\x93NUMPY" | u8 major | u8 minor | header length (u16 for version 1, u32 for 2 and 3) | header |
// data. The header is a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded
// with spaces and a newline; data is the array in C order. We parse the literal ourselves: quoted keys,
// strings, True/False, and tuples of integers, nothing else.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cstring>
#include <filesystem>

#include "core/checked_math.h"
#include "dataset/array_source.h"

namespace quant::dataset {
namespace {

constexpr uint8_t kNpyMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

// A cursor over the header dictionary text; every error says what was expected and where.
class DictParser {
 public:
  explicit DictParser(std::string_view text) : text_(text) {}

  size_t position() const { return pos_; }
  void skip_spaces() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool consume(char c) {
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_spaces();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  // A single- or double-quoted string without escapes.
  bool string(std::string* out) {
    skip_spaces();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return false;
    const char quote = text_[pos_];
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return false;
    const std::string_view body = text_.substr(pos_ + 1, end - pos_ - 1);
    if (body.find('\\') != std::string_view::npos) return false;
    *out = std::string(body);
    pos_ = end + 1;
    return true;
  }
  bool word(std::string_view w) {
    skip_spaces();
    if (text_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  // A non-negative decimal integer (Python 2 files may add an 'L'), at most 2^62.
  bool integer(uint64_t* out) {
    skip_spaces();
    const size_t start = pos_;
    uint64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      value = value * 10 + uint64_t(text_[pos_] - '0');
      if (value > (uint64_t(1) << 62)) return false;
      ++pos_;
    }
    if (pos_ == start) return false;
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
    *out = value;
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

Result<NpyHeader> parse_header_dict(std::string_view text, uint64_t text_offset, const std::string& file) {
  DictParser p(text);
  auto fail = [&](std::string what) {
    return invalid_input(fmt::format(".npy header: {}", what)).in_file(file).at_offset(text_offset + p.position());
  };
  NpyHeader header;
  bool have_descr = false, have_order = false, have_shape = false;
  if (!p.consume('{')) return fail("expected '{' opening the header dictionary");
  while (!p.consume('}')) {
    std::string key;
    if (!p.string(&key)) return fail("expected a quoted key");
    if (!p.consume(':')) return fail("expected ':' after key '" + key + "'");
    if (key == "descr") {
      if (have_descr) return fail("duplicate key 'descr'");
      if (!p.string(&header.descr)) return fail("'descr' must be a string (structured dtypes are not supported)");
      have_descr = true;
    } else if (key == "fortran_order") {
      if (have_order) return fail("duplicate key 'fortran_order'");
      if (p.word("True")) header.fortran_order = true;
      else if (p.word("False")) header.fortran_order = false;
      else return fail("'fortran_order' must be True or False");
      have_order = true;
    } else if (key == "shape") {
      if (have_shape) return fail("duplicate key 'shape'");
      if (!p.consume('(')) return fail("'shape' must be a tuple");
      while (!p.consume(')')) {
        uint64_t dim = 0;
        if (!p.integer(&dim)) return fail("shape dimensions must be non-negative integers up to 2^62");
        header.shape.push_back(dim);
        if (header.shape.size() > 32) return fail("more than 32 dimensions");
        if (!p.consume(',') && !p.peek(')')) return fail("expected ',' or ')' in shape");
      }
      have_shape = true;
    } else {
      return fail("unexpected key '" + key + "'");
    }
    if (!p.consume(',') && !p.peek('}')) return fail("expected ',' or '}'");
  }
  p.skip_spaces();
  if (p.position() != text.size()) return fail("unexpected text after the header dictionary");
  if (!have_descr || !have_order || !have_shape) return fail("must have the keys 'descr', 'fortran_order' and 'shape'");
  return header;
}

}  // namespace

Result<ElementType> npy_element_type(const std::string& descr) {
  // numpy writes '<' for little-endian multi-byte types ('=' is native, little-endian here).
  if (descr == "<f4" || descr == "=f4") return ElementType::f32;
  if (descr == "<f2" || descr == "=f2") return ElementType::f16;
  if (descr == "<f8" || descr == "=f8") return ElementType::f64;
  return invalid_input(fmt::format("unsupported dtype '{}' (activations must be little-endian float32, float16 or "
                                   "float64: '<f4', '<f2', '<f8')", descr));
}

Result<NpyHeader> read_npy_header(ByteStream& stream, const std::string& file, const DatasetLimits& limits) {
  const uint64_t start = stream.file_offset();
  uint8_t preamble[12];
  QUANT_TRY(stream.read(std::span<uint8_t>(preamble, 8)));
  if (std::memcmp(preamble, kNpyMagic, sizeof(kNpyMagic)) != 0) {
    return invalid_input("not a .npy array (bad magic)").in_file(file).at_offset(start);
  }
  const uint8_t major = preamble[6];
  uint64_t preamble_bytes = 0, dict_bytes = 0;
  if (major == 1) {
    QUANT_TRY(stream.read(std::span<uint8_t>(preamble + 8, 2)));
    preamble_bytes = 10;
    dict_bytes = load_u16(preamble + 8);
  } else if (major == 2 || major == 3) {
    QUANT_TRY(stream.read(std::span<uint8_t>(preamble + 8, 4)));
    preamble_bytes = 12;
    dict_bytes = load_u32(preamble + 8);
  } else {
    return invalid_input(fmt::format("unsupported .npy format version {}.{}", major, preamble[7]))
        .in_file(file)
        .at_offset(start + 6);
  }
  if (dict_bytes > limits.max_npy_header_bytes) {
    return invalid_input(fmt::format(".npy header length {} exceeds the cap of {} bytes", dict_bytes,
                                     limits.max_npy_header_bytes)).in_file(file).at_offset(start + 8);
  }
  std::string text(static_cast<size_t>(dict_bytes), '\0');
  QUANT_TRY(stream.read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(text.data()), text.size())));
  auto header = parse_header_dict(text, start + preamble_bytes, file);
  if (!header) return std::move(header).error();
  header->header_bytes = preamble_bytes + dict_bytes;
  return header;
}

Result<std::vector<ArraySource>> read_npy_arrays(const InputFile& file, const DatasetLimits& limits) {
  auto stream = open_range(file, 0, file.size());
  QUANT_ASSIGN_OR_RETURN(NpyHeader header, read_npy_header(*stream, file.path(), limits));
  ArraySource source;
  source.info.file = file.path();
  // A lone .npy array feeds the weight its file is named after: blk.0.attn_q.weight.npy.
  std::string name = std::filesystem::path(file.path()).filename().string();
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
  source.info.tensor = name;
  source.info.dtype = header.descr;
  auto fail = [&](std::string reason) { return invalid_input(std::move(reason)).in_file(file.path()).in_tensor(name); };
  if (header.fortran_order) return fail("Fortran-order (column-major) arrays are not supported; save in C order");
  auto element = npy_element_type(header.descr);
  if (!element) return std::move(element).error().in_file(file.path()).in_tensor(name);
  source.element = *element;
  QUANT_TRY(set_shape(source, header.shape, limits));
  source.data_offset = header.header_bytes;
  const uint64_t left = file.size() - header.header_bytes;
  if (source.value_bytes != left) {
    return invalid_input(fmt::format("shape {} needs {} bytes of data but the file holds {}",
                                     fmt::join(header.shape, "x"), source.value_bytes, left))
        .in_file(file.path())
        .in_tensor(name)
        .at_offset(header.header_bytes);
  }
  return std::vector<ArraySource>{std::move(source)};
}

}  // namespace quant::dataset
