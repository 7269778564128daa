// GgufWriter: lossless round trips of the real files, streaming order and size checks, atomic output, the
// cleanup of stale temporary files, and the digest of the bytes written.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "quant/gguf.h"
#include "quant/kernel_level.h"
#include "quant/sha256.h"
#include "test_data.h"
#include "test_files.h"

namespace quant {
namespace {

namespace fs = std::filesystem;
using testing::data_path;
using testing::read_bytes;
using testing::TempDir;

// Tests that write one path again and again replace it.
OutputPolicy replacing() {
  OutputPolicy policy;
  policy.overwrite = true;
  return policy;
}

// Copies `input` through the writer unchanged, streaming each tensor in chunks of `chunk` bytes; the writer's
// digest of what it wrote goes to *digest when given.
Status copy_gguf(const GgufFile& input, const std::string& output, size_t chunk, std::string* digest = nullptr) {
  WriterOptions options;
  options.alignment = input.alignment();
  QUANT_ASSIGN_OR_RETURN(GgufWriter writer, GgufWriter::create(output, options));
  for (const KeyValue& kv : input.metadata()) QUANT_TRY(writer.add_metadata(kv.key, kv.value));
  for (const TensorInfo& tensor : input.tensors()) QUANT_TRY(writer.add_tensor(tensor.name, tensor.type, tensor.shape));
  QUANT_TRY(writer.begin());
  std::vector<uint8_t> buffer(chunk);
  for (const TensorInfo& tensor : input.tensors()) {
    QUANT_TRY(writer.begin_tensor(tensor.name));
    for (uint64_t done = 0; done < tensor.size_bytes;) {
      const size_t n = size_t(std::min<uint64_t>(chunk, tensor.size_bytes - done));
      QUANT_TRY(input.read_tensor(tensor, done, std::span<uint8_t>(buffer.data(), n)));
      QUANT_TRY(writer.write_tensor_data(std::span<const uint8_t>(buffer.data(), n)));
      done += n;
    }
  }
  QUANT_TRY(writer.commit(replacing()));
  if (digest != nullptr) *digest = writer.sha256_hex();
  return Status::success();
}

// The digest of the file as it is on disk, with the portable kernel (independent of the writer's choice).
std::string digest_of_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  Sha256 hasher(Sha256Kernel::portable);
  hasher.update(bytes.data(), bytes.size());
  return hasher.finish_hex();
}

TEST(GgufWriter, RoundTripOfEveryVersion3FileIsByteIdentical) {
  TempDir dir;
  for (const char* path : {"gguf/stories260K.gguf", "gguf/stories260K-rows256-F32.gguf", "gguf/mnist-fc-f32.gguf",
                           "gguf/vocab/ggml-vocab-llama-spm.gguf", "gguf/vocab/ggml-vocab-bert-bge.gguf"}) {
    SCOPED_TRACE(path);
    Result<GgufFile> input = GgufFile::open(data_path(path));
    ASSERT_TRUE(input) << input.error().message();
    const std::string output = dir.file("copy.gguf");
    Status status = copy_gguf(*input, output, 1000);  // an odd chunk size: tensors arrive in pieces
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_TRUE(read_bytes(output) == read_bytes(data_path(path)));
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"copy.gguf"});  // no temporary file left behind
}

TEST(GgufWriter, VersionOneFilesAreWrittenAsVersion3WithTheSameContent) {
  TempDir dir;
  for (const char* path : {"gguf/stories260K-v1.gguf", "gguf/historic/ggml-vocab-llama-v1-FUGG.gguf"}) {
    SCOPED_TRACE(path);
    Result<GgufFile> input = GgufFile::open(data_path(path));
    ASSERT_TRUE(input);
    const std::string output = dir.file("v3.gguf");
    ASSERT_TRUE(copy_gguf(*input, output, 1 << 16));
    Result<GgufFile> copy = GgufFile::open(output);
    ASSERT_TRUE(copy) << copy.error().message();
    EXPECT_EQ(copy->version(), 3u);
    EXPECT_FALSE(copy->byte_swapped_magic());
    ASSERT_EQ(copy->metadata().size(), input->metadata().size());
    for (size_t i = 0; i < input->metadata().size(); ++i) {
      EXPECT_EQ(copy->metadata()[i].key, input->metadata()[i].key);
      EXPECT_TRUE(copy->metadata()[i].value == input->metadata()[i].value) << input->metadata()[i].key;
    }
    ASSERT_EQ(copy->tensors().size(), input->tensors().size());
    for (size_t i = 0; i < input->tensors().size(); ++i) {
      const TensorInfo& a = input->tensors()[i];
      const TensorInfo& b = copy->tensors()[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.shape, b.shape);
      EXPECT_EQ(a.offset, b.offset);
      EXPECT_TRUE(*input->read_tensor_data(a) == *copy->read_tensor_data(b));
    }
  }
}

TEST(GgufWriter, NestedArraysAndEveryValueTypeRoundTrip) {
  TempDir dir;
  const std::string output = dir.file("values.gguf");
  const std::vector<std::string> words = {"alpha", "", "gamma"};
  std::vector<KeyValue> values = {
      {"u8", Value::u8(200)},        {"i8", Value::i8(-100)},          {"u16", Value::u16(60000)},
      {"i16", Value::i16(-30000)},   {"u32", Value::u32(4000000000u)}, {"i32", Value::i32(-2000000000)},
      {"f32", Value::f32(1.5f)},     {"bool", Value::boolean(true)},   {"string", Value::string("héllo")},
      {"u64", Value::u64(1ull << 63)}, {"i64", Value::i64(-(1ll << 62))}, {"f64", Value::f64(-2.25)},
      {"words", Value::array_of_strings(words)},
      {"floats", Value::array_of<float>(std::vector<float>{1.0f, -2.0f})},
      {"nested", Value::array_of_arrays({Value::array_of<int32_t>(std::vector<int32_t>{1, 2, 3}),
                                         Value::array_of_strings(words),
                                         Value::array_of_arrays({Value::array_of<uint8_t>(std::vector<uint8_t>{})})})},
  };
  {
    Result<GgufWriter> writer = GgufWriter::create(output);
    ASSERT_TRUE(writer);
    for (const KeyValue& kv : values) ASSERT_TRUE(writer->add_metadata(kv.key, kv.value));
    ASSERT_TRUE(writer->begin());
    ASSERT_TRUE(writer->commit());
  }
  Result<GgufFile> file = GgufFile::open(output);
  ASSERT_TRUE(file) << file.error().message();
  ASSERT_EQ(file->metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(file->metadata()[i].key, values[i].key);
    EXPECT_TRUE(file->metadata()[i].value == values[i].value) << values[i].key;
  }
  EXPECT_EQ(*file->get<int16_t>("i16"), -30000);
  EXPECT_EQ(*file->get<uint64_t>("u64"), 1ull << 63);
  EXPECT_EQ(*file->get<bool>("bool"), true);
  const Value& nested = *file->find("nested");
  EXPECT_EQ(nested.element_type(), ValueType::array);
  EXPECT_EQ(nested.array_at(0).scalar_at<int32_t>(2), 3);
  EXPECT_EQ(nested.array_at(1).string_at(2), "gamma");
  EXPECT_EQ(nested.array_at(2).array_at(0).size(), 0u);
  EXPECT_EQ(nested.element(1).string_at(0), "alpha");
  EXPECT_EQ(file->find("words")->element(0).as_string(), "alpha");
}

TEST(GgufWriter, NonDefaultAlignmentIsRecordedAndUsed) {
  TempDir dir;
  const std::string output = dir.file("aligned.gguf");
  WriterOptions options;
  options.alignment = 64;
  Result<GgufWriter> writer = GgufWriter::create(output, options);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->add_tensor("a", TypeId::f32, {3}));
  ASSERT_TRUE(writer->add_tensor("b", TypeId::q8_0, {32, 2}));
  ASSERT_TRUE(writer->begin());
  EXPECT_EQ(writer->tensors()[1].offset, 64u);
  const std::vector<uint8_t> a(12, 1), b(68, 2);
  ASSERT_TRUE(writer->write_tensor("a", a));
  ASSERT_TRUE(writer->write_tensor("b", b));
  ASSERT_TRUE(writer->commit());
  Result<GgufFile> file = GgufFile::open(output);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(*file->get<uint32_t>("general.alignment"), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  EXPECT_EQ(file->file_size(), file->data_offset() + 64 + 128);  // a: 12 bytes padded to 64; b: 2 x 34 to 128
  EXPECT_TRUE(*file->read_tensor_data(file->tensors()[1]) == b);
}

// Declares two f32 tensors "a" (4 values) and "b" (2 values) and begins.
GgufWriter begun_writer(const std::string& output) {
  Result<GgufWriter> writer = GgufWriter::create(output);
  if (!writer) throw std::runtime_error(writer.error().message());
  if (!writer->add_metadata("general.architecture", Value::string("test")) ||
      !writer->add_tensor("a", TypeId::f32, {4}) || !writer->add_tensor("b", TypeId::f32, {2}) || !writer->begin()) {
    throw std::runtime_error("setup failed");
  }
  return std::move(writer).value();
}

TEST(GgufWriter, StreamingChecksOrderAndSizes) {
  TempDir dir;
  const std::string output = dir.file("out.gguf");
  const std::vector<uint8_t> eight(8), sixteen(16), twenty(20);
  struct Case {
    const char* name;
    std::function<Status(GgufWriter&)> steps;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"out of order", [&](GgufWriter& w) { return w.begin_tensor("b"); },
       "tensor 'b' comes out of order: the next declared tensor is 'a'"},
      {"too many bytes", [&](GgufWriter& w) { return w.write_tensor("a", twenty); },
       "20 more bytes would exceed its 16 bytes (0 written)"},
      {"too few bytes", [&](GgufWriter& w) { return w.write_tensor("a", eight); }, "got 8 of its 16 bytes"},
      {"short then next", [&](GgufWriter& w) -> Status {
         QUANT_TRY(w.begin_tensor("a"));
         QUANT_TRY(w.write_tensor_data(eight));
         return w.begin_tensor("b");
       }, "got 8 of its 16 bytes"},
      {"data before begin_tensor", [&](GgufWriter& w) { return w.write_tensor_data(eight); },
       "tensor data written before begin_tensor()"},
      {"undeclared tensor", [&](GgufWriter& w) -> Status {
         QUANT_TRY(w.write_tensor("a", sixteen));
         QUANT_TRY(w.write_tensor("b", eight));
         return w.begin_tensor("c");
       }, "tensor 'c' was not declared, or all declared tensors are written"},
      {"missing tensor at commit", [&](GgufWriter& w) -> Status {
         QUANT_TRY(w.write_tensor("a", sixteen));
         return w.commit();
       }, "only 1 of 2 tensors were written (next: 'b')"},
      {"metadata after begin", [&](GgufWriter& w) { return w.add_metadata("x", Value::u8(1)); },
       "add_metadata: begin() was already called"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    GgufWriter writer = begun_writer(output);
    const std::string temp = writer.temp_path();
    EXPECT_TRUE(fs::exists(temp));
    Status status = c.steps(writer);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().reason(), c.reason);
    EXPECT_EQ(status.error().kind(), ErrorKind::usage);
    // Any error abandons the output: the temporary file is gone and nothing appeared.
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_FALSE(fs::exists(output));
    EXPECT_FALSE(writer.commit());
    EXPECT_FALSE(fs::exists(output));
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(GgufWriter, DeclarationErrors) {
  TempDir dir;
  Result<GgufWriter> writer = GgufWriter::create(dir.file("out.gguf"));
  ASSERT_TRUE(writer);
  EXPECT_EQ(writer->add_tensor("w", TypeId::q4_0, {48, 2}).error().reason(),
            "row length 48 is not a multiple of q4_0's block size 32");
  writer = GgufWriter::create(dir.file("out.gguf"));
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->add_metadata("k", Value::u8(1)));
  EXPECT_EQ(writer->add_metadata("k", Value::u8(2)).error().reason(), "duplicate metadata key 'k'");
  writer = GgufWriter::create(dir.file("out.gguf"));
  EXPECT_EQ(writer->add_metadata("general.alignment", Value::u32(48)).error().reason(),
            "general.alignment must be a u32 power of two");
  writer = GgufWriter::create(dir.file("out.gguf"));
  EXPECT_EQ(writer->add_tensor(std::string(64, 'n'), TypeId::f32, {1}).error().reason(),
            "name of 64 bytes is too long (at most 63)");
  writer = GgufWriter::create(dir.file("out.gguf"));
  EXPECT_EQ(writer->add_tensor("t", TypeId::f32, {1, 1, 1, 1, 1}).error().reason(), "5 dimensions (at most 4)");
  Result<GgufWriter> bad = GgufWriter::create(dir.file("out.gguf"), WriterOptions{24, false});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().reason(), "alignment 24 is not a power of two");
  Result<GgufWriter> no_dir = GgufWriter::create(dir.file("missing/out.gguf"));
  ASSERT_FALSE(no_dir);
  EXPECT_EQ(no_dir.error().kind(), ErrorKind::io);
}

TEST(GgufWriter, DestructionWithoutCommitLeavesNothingAndCommitReplacesAtomically) {
  TempDir dir;
  const std::string output = dir.file("out.gguf");
  {
    std::ofstream(output) << "previous contents";
  }
  std::string temp;
  {
    GgufWriter writer = begun_writer(output);
    temp = writer.temp_path();
    EXPECT_EQ(temp, dir.file(".out.gguf.tmp-" + std::to_string(::getpid())));
    ASSERT_TRUE(writer.write_tensor("a", std::vector<uint8_t>(16)));
    // Until commit the old output is untouched.
    EXPECT_EQ(read_bytes(output).size(), std::string("previous contents").size());
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(read_bytes(output).size(), std::string("previous contents").size());

  GgufWriter writer = begun_writer(output);
  ASSERT_TRUE(writer.write_tensor("a", std::vector<uint8_t>(16, 7)));
  ASSERT_TRUE(writer.write_tensor("b", std::vector<uint8_t>(8, 9)));
  GgufWriter moved = std::move(writer);  // moving keeps the one temporary file
  ASSERT_TRUE(moved.finish());
  // Without overwrite an existing output is never replaced.
  AtomicFile* files[] = {&moved.file()};
  ASSERT_FALSE(commit_files(files, {}));
  EXPECT_EQ(read_bytes(output).size(), std::string("previous contents").size());
  EXPECT_TRUE(moved.sha256_hex().empty());
  ASSERT_TRUE(commit_files(files, replacing()));
  EXPECT_EQ(moved.sha256_hex(), digest_of_file(output));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.gguf"});
  Result<GgufFile> file = GgufFile::open(output);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_EQ(*file->read_tensor_data(*file->find_tensor("b")), std::vector<uint8_t>(8, 9));
}

TEST(GgufWriter, FsyncOptionCommits) {
  TempDir dir;
  Result<GgufWriter> writer = GgufWriter::create(dir.file("synced.gguf"), WriterOptions{32, true});
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->add_metadata("k", Value::u8(1)));
  ASSERT_TRUE(writer->begin());
  ASSERT_TRUE(writer->commit());
  EXPECT_TRUE(GgufFile::open(dir.file("synced.gguf")));
}

TEST(GgufWriter, KilledWriterLeavesOnlyATemporaryFileThatCleanupRemoves) {
  TempDir dir;
  const std::string output = dir.file("model.gguf");
  // A child starts a writer and is SIGKILLed mid-stream: only its temporary file may remain.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<GgufWriter> writer = GgufWriter::create(output);
    if (!writer || !writer->add_tensor("a", TypeId::f32, {4}) || !writer->begin()) _exit(1);
    ::kill(::getpid(), SIGKILL);
    _exit(2);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus));
  const std::string stale = ".model.gguf.tmp-" + std::to_string(child);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{stale});

  // The next writer of that output removes it; a live writer's file (ours), an unrelated file and a
  // look-alike without a pid are left alone.
  { std::ofstream(dir.file(".model.gguf.tmp-abc")) << "x"; }
  { std::ofstream(dir.file(".other.gguf.tmp-" + std::to_string(child))) << "x"; }
  GgufWriter live = begun_writer(output);
  EXPECT_FALSE(fs::exists(dir.file(stale)));
  { std::ofstream(dir.file(stale)) << "x"; }
  Result<int> removed = remove_stale_temp_files(output);
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(fs::exists(dir.file(stale)));
  EXPECT_TRUE(fs::exists(live.temp_path()));
  EXPECT_TRUE(fs::exists(dir.file(".model.gguf.tmp-abc")));
  EXPECT_TRUE(fs::exists(dir.file(".other.gguf.tmp-" + std::to_string(child))));
  EXPECT_FALSE(fs::exists(output));
}

TEST(GgufWriterDigest, EqualsTheDigestOfTheFileOnDiskAtEveryKernelLevel) {
  TempDir dir;
  const KernelLevel active = active_kernel_level();
  for (KernelLevel level : supported_kernel_levels()) {
    ASSERT_TRUE(set_kernel_level(level));
    SCOPED_TRACE(std::string(kernel_level_name(level)));
    // Real files: many tensors, padding between them, data arriving in odd-sized pieces.
    for (const char* path : {"gguf/stories260K.gguf", "gguf/mnist-fc-f32.gguf"}) {
      SCOPED_TRACE(path);
      Result<GgufFile> input = GgufFile::open(data_path(path));
      ASSERT_TRUE(input) << input.error().message();
      const std::string output = dir.file("copy.gguf");
      std::string digest;
      ASSERT_TRUE(copy_gguf(*input, output, 1000, &digest));
      EXPECT_EQ(digest.size(), 64u);
      EXPECT_EQ(digest, digest_of_file(output));
    }
    // No tensors: the file ends with the metadata (no padding, no data section).
    {
      const std::string output = dir.file("metadata-only.gguf");
      Result<GgufWriter> writer = GgufWriter::create(output);
      ASSERT_TRUE(writer);
      ASSERT_TRUE(writer->add_metadata("general.name", Value::string("no tensors")));
      ASSERT_TRUE(writer->begin());
      ASSERT_TRUE(writer->commit(replacing()));
      EXPECT_EQ(writer->sha256_hex(), digest_of_file(output));
      EXPECT_EQ(writer->bytes_written(), fs::file_size(output));
    }
    // A 64-byte alignment with tensors of 12 and 68 bytes: more padding than data.
    {
      const std::string output = dir.file("padded.gguf");
      WriterOptions options;
      options.alignment = 64;
      Result<GgufWriter> writer = GgufWriter::create(output, options);
      ASSERT_TRUE(writer);
      ASSERT_TRUE(writer->add_tensor("a", TypeId::f32, {3}));
      ASSERT_TRUE(writer->add_tensor("b", TypeId::q8_0, {32, 2}));
      ASSERT_TRUE(writer->begin());
      ASSERT_TRUE(writer->write_tensor("a", std::vector<uint8_t>(12, 1)));
      ASSERT_TRUE(writer->write_tensor("b", std::vector<uint8_t>(68, 2)));
      EXPECT_EQ(writer->sha256_hex(), "");  // not before commit
      GgufWriter moved = std::move(*writer);  // the digest so far moves with the writer
      ASSERT_TRUE(moved.commit(replacing()));
      EXPECT_EQ(moved.sha256_hex(), digest_of_file(output));
      EXPECT_EQ(moved.bytes_written(), fs::file_size(output));
    }
  }
  ASSERT_TRUE(set_kernel_level(active));
}

// gguf_file_size() predicts the size of what the writer writes (a dry run's output size): real files with many
// tensors and long vocabularies, a file without tensors, a non-default alignment, and one set in the metadata.
TEST(GgufFileSize, EqualsTheSizeOfEveryWrittenFile) {
  TempDir dir;
  for (const char* path : {"gguf/stories260K.gguf", "gguf/mnist-fc-f32.gguf", "gguf/vocab/ggml-vocab-llama-spm.gguf",
                           "gguf/stories260K-v1.gguf"}) {
    SCOPED_TRACE(path);
    Result<GgufFile> input = GgufFile::open(data_path(path));
    ASSERT_TRUE(input) << input.error().message();
    const std::string output = dir.file("copy.gguf");
    ASSERT_TRUE(copy_gguf(*input, output, 1 << 16));
    Result<uint64_t> predicted = gguf_file_size(input->metadata(), input->tensors(), input->alignment());
    ASSERT_TRUE(predicted) << predicted.error().message();
    EXPECT_EQ(*predicted, fs::file_size(output));
  }
  for (const uint64_t alignment : {uint64_t(32), uint64_t(64), uint64_t(4096)}) {
    for (const bool in_metadata : {false, true}) {
      SCOPED_TRACE(std::to_string(alignment) + (in_metadata ? " in metadata" : ""));
      const std::string output = dir.file("aligned.gguf");
      WriterOptions options;
      options.alignment = in_metadata ? 32 : alignment;
      Result<GgufWriter> writer = GgufWriter::create(output, options);
      ASSERT_TRUE(writer);
      std::vector<KeyValue> metadata = {{"general.name", Value::string("sizes")}};
      if (in_metadata) metadata.push_back({"general.alignment", Value::u32(uint32_t(alignment))});
      for (const KeyValue& kv : metadata) ASSERT_TRUE(writer->add_metadata(kv.key, kv.value));
      std::vector<TensorInfo> tensors(2);
      tensors[0].name = "a";
      tensors[0].type = TypeId::f32;
      tensors[0].shape = {3};
      tensors[1].name = "b";
      tensors[1].type = TypeId::q8_0;
      tensors[1].shape = {32, 2};
      for (const TensorInfo& t : tensors) ASSERT_TRUE(writer->add_tensor(t.name, t.type, t.shape));
      ASSERT_TRUE(writer->begin());
      ASSERT_TRUE(writer->write_tensor("a", std::vector<uint8_t>(12, 1)));
      ASSERT_TRUE(writer->write_tensor("b", std::vector<uint8_t>(68, 2)));
      ASSERT_TRUE(writer->commit(replacing()));
      Result<uint64_t> predicted = gguf_file_size(metadata, tensors, options.alignment);
      ASSERT_TRUE(predicted) << predicted.error().message();
      EXPECT_EQ(*predicted, fs::file_size(output));
      EXPECT_EQ(*predicted, writer->bytes_written());
    }
  }
  std::vector<TensorInfo> misfit(1);
  misfit[0].name = "w";
  misfit[0].type = TypeId::q4_0;
  misfit[0].shape = {31, 2};
  EXPECT_FALSE(gguf_file_size({}, misfit, 32));
}

TEST(GgufWriterDigest, NotOfferedBeforeCommitAfterAFailureOrWhenOff) {
  TempDir dir;
  const std::string output = dir.file("out.gguf");
  GgufWriter failing = begun_writer(output);
  EXPECT_GT(failing.bytes_written(), 0u);
  EXPECT_EQ(failing.sha256_hex(), "");
  EXPECT_FALSE(failing.write_tensor("a", std::vector<uint8_t>(8)));  // too short
  EXPECT_FALSE(failing.commit());
  EXPECT_EQ(failing.sha256_hex(), "");

  // A failed rename at commit (the target is a non-empty directory) offers no digest either.
  fs::create_directories(dir.file("taken.gguf/inside"));
  Result<GgufWriter> blocked = GgufWriter::create(dir.file("taken.gguf"));
  ASSERT_TRUE(blocked);
  ASSERT_TRUE(blocked->begin());
  EXPECT_FALSE(blocked->commit());
  EXPECT_EQ(blocked->sha256_hex(), "");

  WriterOptions options;
  options.sha256 = false;
  Result<GgufWriter> unhashed = GgufWriter::create(output, options);
  ASSERT_TRUE(unhashed);
  ASSERT_TRUE(unhashed->add_metadata("k", Value::u8(1)));
  ASSERT_TRUE(unhashed->begin());
  ASSERT_TRUE(unhashed->commit());
  EXPECT_EQ(unhashed->sha256_hex(), "");
  EXPECT_EQ(unhashed->bytes_written(), fs::file_size(output));
}

// The fault hook (QUANT_FAULT_STOP_AFTER_BYTES) splits a write at its point and stops the process there. The
// hook reads its variable once per process, so the writing happens in a fresh copy of this test binary that
// runs only the test below, with the variable set; it records the writer's digest beside the file.
constexpr const char* kChildOutputVariable = "QUANT_WRITER_TEST_CHILD_OUTPUT";

TEST(GgufWriterDigest, CoversBothSidesOfTheFaultHookStop) {
  TempDir dir;
  const std::string output = dir.file("stopped.gguf");
  constexpr uint64_t kStopAfter = 1000;  // inside the first tensor's data
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int log = ::open(dir.file("child.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::setenv("QUANT_FAULT_STOP_AFTER_BYTES", std::to_string(kStopAfter).c_str(), 1);
    ::setenv(kChildOutputVariable, output.c_str(), 1);
    ::execl("/proc/self/exe", "writer_test", "--gtest_filter=GgufWriterFaultChild.WritesThroughTheStop",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(wstatus)) << "the fault hook did not stop the writer";
  struct stat temp_stat {};
  ASSERT_EQ(::stat(writer_temp_path(output, child).c_str(), &temp_stat), 0);
  EXPECT_EQ(uint64_t(temp_stat.st_size), kStopAfter);  // stopped after exactly that many bytes
  ::kill(child, SIGCONT);
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0) << std::string(read_bytes(dir.file("child.log")).begin(),
                                                    read_bytes(dir.file("child.log")).end());
  const std::vector<uint8_t> recorded = read_bytes(output + ".sha256");
  EXPECT_EQ(std::string(recorded.begin(), recorded.end()), digest_of_file(output));
  EXPECT_GT(fs::file_size(output), kStopAfter);
}

// Runs only in the child of the test above (skipped otherwise): writes a file across the stop point.
TEST(GgufWriterFaultChild, WritesThroughTheStop) {
  const char* output = std::getenv(kChildOutputVariable);
  if (output == nullptr) GTEST_SKIP() << "only run by GgufWriterDigest.CoversBothSidesOfTheFaultHookStop";
  Result<GgufWriter> writer = GgufWriter::create(output);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->add_metadata("general.name", Value::string("fault hook")));
  ASSERT_TRUE(writer->add_tensor("a", TypeId::f32, {1000}));
  ASSERT_TRUE(writer->add_tensor("b", TypeId::f32, {7}));
  ASSERT_TRUE(writer->begin());
  std::vector<uint8_t> a(4000);
  for (size_t i = 0; i < a.size(); ++i) a[i] = uint8_t(i * 31 + 5);
  ASSERT_TRUE(writer->write_tensor("a", a));  // one write that the stop point splits
  ASSERT_TRUE(writer->write_tensor("b", std::vector<uint8_t>(28, 3)));
  ASSERT_TRUE(writer->commit());
  std::ofstream(std::string(output) + ".sha256") << writer->sha256_hex();
}

}  // namespace
}  // namespace quant
