// The one step that places a command's files (split_internal::commit_together): all of them, or none, with the
// files they replace kept until every new one is in place.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quant/gguf.h"
#include "split/output_files.h"

namespace quant {
namespace {

namespace fs = std::filesystem;

class Folder {
 public:
  Folder() {
    std::string pattern = (fs::temp_directory_path() / "quant-output-files-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~Folder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Every name in the folder.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(path_)) out.push_back(entry.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
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
  Folder dir;
  std::ofstream(dir / "b.gguf") << "old b";
  GgufWriter a = finished_writer(dir / "a.gguf");
  GgufWriter b = finished_writer(dir / "b.gguf");
  std::vector<GgufWriter*> writers = {&a, &b};
  ASSERT_TRUE(split_internal::commit_together(writers));
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a.gguf", "b.gguf"}));  // no backup, no temporary file
  EXPECT_EQ(fs::file_size(dir / "b.gguf"), b.bytes_written());
}

TEST(CommitTogether, AFailedPlacementPutsEverythingBack) {
  Folder dir;
  std::ofstream(dir / "a.gguf") << "old a";  // replaced first, then given back
  {
    GgufWriter a = finished_writer(dir / "a.gguf");
    GgufWriter b = finished_writer(dir / "b.gguf");
    GgufWriter c = finished_writer(dir / "c.gguf");
    // c's place is taken by a folder after its writer was made: it is not replaced.
    fs::create_directories(dir / "c.gguf/inside");
    std::vector<GgufWriter*> writers = {&a, &b, &c};
    const Status status = split_internal::commit_together(writers);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().kind(), ErrorKind::io);
    EXPECT_EQ(status.error().file(), dir / "c.gguf");
  }  // the writers go, and c's temporary file with them
  EXPECT_EQ(text_of(dir / "a.gguf"), "old a");
  EXPECT_FALSE(fs::exists(dir / "b.gguf"));
  EXPECT_TRUE(fs::is_directory(dir / "c.gguf/inside"));
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a.gguf", "c.gguf"}));  // no backup, no temporary file
}

}  // namespace
}  // namespace quant
