// The conversion pipeline under stress (src/convert/tensor_stream.cpp): tiny chunks make every tensor many
// chunks and every tensor boundary a pipeline hand-over, so buffer slots are reused thousands of times while
// reads run ahead into the next tensor and writes drain behind. The outputs must still be byte-identical to
// llama-quantize's (the sha256 of its reference files, tests/data/llama-quantize-outputs.tsv) at any thread
// count, several targets at once; a write that fails must be reported naming the tensor it was writing, and an
// interrupted conversion must leave nothing behind. An ASan build (QUANT_SANITIZE=ON) turns a buffer reused
// before its write finished into a failure here.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/gguf.h"
#include "quant/sha256.h"
#include "test_data.h"
#include "test_files.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using ScratchDir = quant::testing::TempDir;

std::string file_sha256(const std::string& path) {
  const std::vector<uint8_t> bytes = quant::testing::read_bytes(path);
  return quant::sha256_hex(bytes.data(), bytes.size());
}

// The sha256 llama-quantize's output has, by reference name ("tiny-llama/tiny-llama-Q8_0.gguf").
std::string reference_sha256(const std::string& reference) {
  const auto rows = quant::testing::read_tsv(data_path("llama-quantize-outputs.tsv"));
  for (const auto& row : rows) {
    if (row.size() == 5 && row[0] == reference) return row[4];
  }
  throw std::runtime_error("no row for " + reference + " in llama-quantize-outputs.tsv");
}

// One conversion of `input` (under tests/data) to several llama-quantize TYPEs at once, each with the reference
// file it must equal.
struct Batch {
  std::string name;
  std::string input;
  bool pure;
  std::vector<std::pair<std::string, std::string>> type_and_reference;
};

const std::vector<Batch>& batches() {
  static const std::vector<Batch> all = {
      {"tiny_llama", "models/tiny-llama-f16.gguf", false,
       {{"Q8_0", "tiny-llama/tiny-llama-Q8_0.gguf"},
        {"Q4_K_M", "tiny-llama/tiny-llama-Q4_K_M.gguf"},
        {"Q6_K", "tiny-llama/tiny-llama-Q6_K.gguf"}}},
      {"stories260K", "gguf/stories260K.gguf", false,
       {{"F16", "stories260K/stories260K-F16.gguf"},
        {"Q4_K_M", "stories260K/stories260K-Q4_K_M.gguf"},
        {"Q6_K", "stories260K/stories260K-Q6_K.gguf"}}},
      {"rows256", "gguf/stories260K-rows256-F32.gguf", true,
       {{"BF16", "rows256/stories260K-rows256-BF16.gguf"},
        {"Q4_0", "rows256/stories260K-rows256-Q4_0.gguf"},
        {"Q8_0", "rows256/stories260K-rows256-Q8_0.gguf"},
        {"TQ1_0", "rows256/stories260K-rows256-TQ1_0.gguf"}}},
  };
  return all;
}

quant::ConvertRequest request_for(const Batch& batch, const ScratchDir& dir, int threads, uint64_t chunk_bytes) {
  quant::ConvertRequest request;
  request.input = data_path(batch.input);
  request.types.pure = batch.pure;
  request.threads = threads;
  request.stream.chunk_bytes = chunk_bytes;
  for (const auto& [type, reference] : batch.type_and_reference) request.targets.push_back({type, dir / (type + ".gguf")});
  return request;
}

struct StreamCase {
  size_t batch;
  int threads;
  uint64_t chunk_bytes;
};

class TinyChunkTest : public ::testing::TestWithParam<StreamCase> {};

TEST_P(TinyChunkTest, EveryTargetByteIdenticalToLlamaQuantize) {
  const Batch& batch = batches()[GetParam().batch];
  ScratchDir dir;
  const auto reports = quant::convert(request_for(batch, dir, GetParam().threads, GetParam().chunk_bytes));
  ASSERT_TRUE(reports.ok()) << reports.error().message();
  for (const auto& [type, reference] : batch.type_and_reference) {
    EXPECT_EQ(file_sha256(dir / (type + ".gguf")), reference_sha256(reference)) << type << " vs " << reference;
  }
}

std::vector<StreamCase> stream_cases() {
  std::vector<StreamCase> cases;
  for (size_t batch = 0; batch < batches().size(); ++batch) {
    // 1 byte: one row per chunk. 5000 bytes: a few rows, chunk edges falling anywhere in the tensors.
    for (uint64_t chunk_bytes : {uint64_t(1), uint64_t(5000)}) {
      for (int threads : {1, 2, 3}) cases.push_back({batch, threads, chunk_bytes});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Batches, TinyChunkTest, ::testing::ValuesIn(stream_cases()),
                         [](const ::testing::TestParamInfo<StreamCase>& case_info) {
                           return batches()[case_info.param.batch].name + "_threads" + std::to_string(case_info.param.threads) +
                                  "_chunk" + std::to_string(case_info.param.chunk_bytes);
                         });

// Limits the size of files this process may write, for the lifetime of the object (writes past it fail with
// EFBIG instead of raising SIGXFSZ).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    if (::getrlimit(RLIMIT_FSIZE, &saved_) != 0) throw std::runtime_error("getrlimit failed");
    saved_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    if (::setrlimit(RLIMIT_FSIZE, &limited) != 0) throw std::runtime_error("setrlimit failed");
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t saved_handler_ = SIG_DFL;
};

// The writes of a tensor land after stream() moved on to later tensors; the error must still name the tensor
// whose bytes could not be written, and no output may be left.
TEST(StreamErrors, FailedWriteNamesTheTensorItWasWriting) {
  const Batch& batch = batches()[0];
  ScratchDir good_dir;
  auto request = request_for(batch, good_dir, 2, 5000);
  request.targets.resize(1);  // Q8_0
  ASSERT_TRUE(quant::convert(request).ok());
  // Where each tensor of the finished output lies; the limit falls in the middle of a tensor in the second
  // half of the file, so many tensors were streamed before it.
  auto written = quant::GgufFile::open(request.targets[0].output);
  ASSERT_TRUE(written.ok()) << written.error().message();
  const auto& tensors = written->tensors();
  const quant::TensorInfo* victim = nullptr;
  for (const quant::TensorInfo& t : tensors) {
    if (written->data_offset() + t.offset >= written->file_size() / 2 && t.size_bytes > 4096) {
      victim = &t;
      break;
    }
  }
  ASSERT_NE(victim, nullptr);
  const uint64_t limit = written->data_offset() + victim->offset + victim->size_bytes / 2;

  ScratchDir failing_dir;
  request.targets[0].output = failing_dir / "Q8_0.gguf";
  quant::Result<std::vector<quant::ConversionReport>> failed = quant::usage_error("not run");
  {
    FileSizeLimit limited(limit);
    failed = quant::convert(request);
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().kind(), quant::ErrorKind::io) << failed.error().message();
  EXPECT_EQ(failed.error().tensor(), victim->name) << failed.error().message();
  EXPECT_TRUE(failing_dir.entries().empty()) << "left behind: " << failing_dir.entries().front();
}

// An interrupt between chunks, with reads ahead and writes behind still queued: an `interrupted` error, and
// neither output nor temporary file remains.
TEST(StreamErrors, InterruptWithQueuedWorkLeavesNothing) {
  for (int stop_after_chunks : {1, 7, 300}) {
    ScratchDir dir;
    auto request = request_for(batches()[0], dir, 2, 1);
    std::atomic<bool> cancel{false};
    int chunks = 0;
    request.stream.progress = [&](uint64_t, uint64_t, const std::string&) {
      if (++chunks == stop_after_chunks) cancel = true;
    };
    request.stream.cancel = &cancel;
    const auto result = quant::convert(request);
    ASSERT_FALSE(result.ok()) << "not interrupted after " << stop_after_chunks << " chunks";
    EXPECT_EQ(result.error().kind(), quant::ErrorKind::interrupted) << result.error().message();
    EXPECT_TRUE(dir.entries().empty()) << "left behind: " << dir.entries().front();
  }
}

}  // namespace
