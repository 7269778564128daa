// The one step that places a command's files (split_internal::commit_together): all of them, or none, with the
// files they replace kept until every new one is in place.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quant/gguf.h"
#include "split/output_files.h"
#include "split/scratch_folder.h"

namespace quant {
namespace {

namespace fs = std::filesystem;

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

OutputPolicy replacing() {
  OutputPolicy policy;
  policy.overwrite = true;
  return policy;
}

// A finished writer for `path`: one tensor, ready to commit.
GgufWriter finished_writer(const std::string& path) {
  auto writer = GgufWriter::create(path);
  if (!writer) throw std::runtime_error(writer.error().message());
  const std::vector<uint8_t> bytes(32, 7);
  if (!writer->add_tensor("t", TypeId::f32, {8}) || !writer->begin() || !writer->write_tensor("t", bytes)) {
    throw std::runtime_error("writer failed");
  }
  return std::move(writer).value();
}

TEST(CommitTogether, PlacesEveryFile) {
  testing::ScratchFolder dir;
  std::ofstream(dir / "b.gguf") << "old b";
  GgufWriter a = finished_writer(dir / "a.gguf");
  GgufWriter b = finished_writer(dir / "b.gguf");
  std::vector<GgufWriter*> writers = {&a, &b};
  ASSERT_TRUE(split_internal::commit_together(writers, replacing(), nullptr));
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a.gguf", "b.gguf"}));  // no backup, no temporary file
  EXPECT_EQ(fs::file_size(dir / "b.gguf"), b.bytes_written());
}

TEST(CommitTogether, AFailedPlacementPutsEverythingBack) {
  testing::ScratchFolder dir;
  std::ofstream(dir / "a.gguf") << "old a";  // replaced first, then given back
  {
    GgufWriter a = finished_writer(dir / "a.gguf");
    GgufWriter b = finished_writer(dir / "b.gguf");
    GgufWriter c = finished_writer(dir / "c.gguf");
    // c's place is taken by a folder after its writer was made: it is not replaced.
    fs::create_directories(dir / "c.gguf/inside");
    std::vector<GgufWriter*> writers = {&a, &b, &c};
    const auto status = split_internal::commit_together(writers, replacing(), nullptr);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().kind(), ErrorKind::io);
    EXPECT_NE(status.error().message().find(dir / "c.gguf"), std::string::npos) << status.error().message();
  }  // the writers go, and c's temporary file with them
  EXPECT_EQ(text_of(dir / "a.gguf"), "old a");
  EXPECT_FALSE(fs::exists(dir / "b.gguf"));
  EXPECT_TRUE(fs::is_directory(dir / "c.gguf/inside"));
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a.gguf", "c.gguf"}));  // no backup, no temporary file
}

TEST(CommitTogether, ASignalBeforePlacingMeansNoOutput) {
  testing::ScratchFolder dir;
  std::ofstream(dir / "a.gguf") << "old a";
  {
    GgufWriter a = finished_writer(dir / "a.gguf");
    GgufWriter b = finished_writer(dir / "b.gguf");
    std::vector<GgufWriter*> writers = {&a, &b};
    const std::atomic<bool> cancelled{true};
    const auto status = split_internal::commit_together(writers, replacing(), &cancelled);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().kind(), ErrorKind::interrupted);
  }
  EXPECT_EQ(text_of(dir / "a.gguf"), "old a");
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a.gguf"}));
}

TEST(CommitTogether, WithoutOverwriteAnExistingFileStaysAndNothingIsPlaced) {
  testing::ScratchFolder dir;
  std::ofstream(dir / "b.gguf") << "old b";
  {
    GgufWriter a = finished_writer(dir / "a.gguf");
    GgufWriter b = finished_writer(dir / "b.gguf");
    std::vector<GgufWriter*> writers = {&a, &b};
    const auto status = split_internal::commit_together(writers, OutputPolicy{}, nullptr);
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message().find(dir / "b.gguf"), std::string::npos) << status.error().message();
  }
  EXPECT_EQ(text_of(dir / "b.gguf"), "old b");
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"b.gguf"}));
}

}  // namespace
}  // namespace quant
