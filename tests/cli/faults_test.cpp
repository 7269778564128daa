// Whole-program fault tests: the built `quantize` is killed, interrupted, paused while its input is truncated,
// pointed at full, read-only, missing or aliased outputs, and fed NaN/Inf. After each, no output may exist (or
// the previous one is untouched), no temporary file is left except by SIGKILL (which the next run removes), and
// the input's bytes and mtime are unchanged. Kill and pause points come from the writer's fault hook
// (QUANT_FAULT_KILL_AFTER_BYTES / QUANT_FAULT_STOP_AFTER_BYTES, src/gguf/writer.cpp), so each is reproducible.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "test_data.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::read_bytes;
using quant::testing::read_text;
using quant::testing::spawn_quantize;

// How a child process ended.
struct Outcome {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;    // the terminating signal when !exited
  std::string err;   // its stderr
};

Outcome wait_for(pid_t pid, const std::string& stderr_path) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  Outcome outcome;
  outcome.exited = WIFEXITED(status);
  outcome.exit_code = outcome.exited ? WEXITSTATUS(status) : -1;
  outcome.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  outcome.err = read_text(stderr_path);
  return outcome;
}

// Waits until the child stopped itself (the STOP fault hook); false if it ended instead.
bool wait_until_stopped(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
  return WIFSTOPPED(status);
}

// The writer's temporary files for `output` (".<name>.tmp-*" beside it).
std::vector<std::string> temp_files_for(const std::string& output) {
  const fs::path path(output);
  const std::string prefix = fmt::format(".{}.tmp-", path.filename().string());
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) found.push_back(entry.path().string());
  }
  return found;
}

// Bytes and modification time of a file, to show it was not touched.
struct FileState {
  std::vector<uint8_t> bytes;
  struct timespec mtime {};
  static FileState of(const std::string& path) {
    FileState state;
    state.bytes = read_bytes(path);
    struct stat info {};
    ::stat(path.c_str(), &info);
    state.mtime = info.st_mtim;
    return state;
  }
  bool operator==(const FileState& other) const {
    return bytes == other.bytes && mtime.tv_sec == other.mtime.tv_sec && mtime.tv_nsec == other.mtime.tv_nsec;
  }
};

// Mounting needs root (CAP_SYS_ADMIN); CI runs as root, a developer's shell usually does not.
bool can_mount(const std::string& dir, const std::string& options) {
  if (::geteuid() != 0) return false;
  return ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_.path().string();
    input_ = dir_ + "/model.gguf";
    output_ = dir_ + "/out.gguf";
    fs::copy_file(data_path("gguf/stories260K-rows256-F32.gguf"), input_);
    input_state_ = FileState::of(input_);
  }

  void TearDown() override {
    if (check_input_) {
      EXPECT_TRUE(FileState::of(input_) == input_state_) << "the input file changed";
    }
    // The scratch folder goes with the fixture, after these are unmounted.
    for (const std::string& mount_point : mounts_) ::umount2(mount_point.c_str(), MNT_DETACH);
  }

  // The conversion every test runs: Q8_0 of a small real model, one thread, quiet.
  std::vector<std::string> convert_args(const std::string& output, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {input_, "--to", "Q8_0", "-o", output, "-q", "-t", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  Outcome run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    const std::string err = dir_ + "/stderr.txt";
    return wait_for(spawn_quantize(args, env, "/dev/null", err), err);
  }

  std::string mount_tmpfs(const std::string& name, const std::string& options) {
    const std::string point = dir_ + "/" + name;
    fs::create_directory(point);
    if (!can_mount(point, options)) return "";
    mounts_.push_back(point);
    return point;
  }

  quant::testing::TempDir scratch_{"quant-faults"};
  std::string dir_, input_, output_;
  FileState input_state_;
  bool check_input_ = true;
  std::vector<std::string> mounts_;
};

TEST_F(Faults, SigkillAtSeededPointsLeavesNoOutputAndTheNextRunSucceeds) {
  const Outcome clean = run(convert_args(output_));
  ASSERT_TRUE(clean.exited && clean.exit_code == 0) << clean.err;
  const std::vector<uint8_t> reference = read_bytes(output_);
  fs::remove(output_);

  std::vector<uint64_t> kill_points = {0, reference.size() - 1};
  for (uint64_t seed = 1; seed <= 6; ++seed) kill_points.push_back(std::mt19937_64(seed)() % reference.size());
  for (uint64_t kill_after : kill_points) {
    SCOPED_TRACE("killed after " + std::to_string(kill_after) + " bytes");
    const Outcome killed = run(convert_args(output_), {"QUANT_FAULT_KILL_AFTER_BYTES=" + std::to_string(kill_after)});
    ASSERT_FALSE(killed.exited);
    EXPECT_EQ(killed.signal, SIGKILL);
    EXPECT_FALSE(fs::exists(output_));
    // SIGKILL cannot be cleaned up after: its temporary file stays, holding exactly the bytes written.
    const std::vector<std::string> leftovers = temp_files_for(output_);
    ASSERT_EQ(leftovers.size(), 1u);
    EXPECT_EQ(fs::file_size(leftovers[0]), kill_after);
    EXPECT_TRUE(FileState::of(input_) == input_state_);

    const Outcome next = run(convert_args(output_));
    ASSERT_TRUE(next.exited && next.exit_code == 0) << next.err;
    EXPECT_EQ(read_bytes(output_), reference);
    EXPECT_TRUE(temp_files_for(output_).empty()) << "the next run removes the stale temporary file";
    fs::remove(output_);
  }
}

TEST_F(Faults, SigkillDuringForcedReplaceLeavesThePreviousOutputUntouched) {
  std::ofstream(output_) << "previous output";
  const FileState previous = FileState::of(output_);
  const Outcome killed = run(convert_args(output_, {"--force"}), {"QUANT_FAULT_KILL_AFTER_BYTES=100000"});
  ASSERT_FALSE(killed.exited);
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_TRUE(FileState::of(output_) == previous);
}

// SIGINT or SIGTERM delivered mid-conversion (the process is paused by the hook, signalled, then continued).
void expect_interrupt_cleans_up(Faults* test, const std::string& dir, const std::vector<std::string>& args,
                                const std::string& output, int signal) {
  const std::string err = dir + "/stderr.txt";
  const pid_t pid = spawn_quantize(args, {"QUANT_FAULT_STOP_AFTER_BYTES=50000"}, "/dev/null", err);
  ASSERT_TRUE(wait_until_stopped(pid));
  EXPECT_EQ(temp_files_for(output).size(), 1u) << "paused mid-write";
  ::kill(pid, signal);
  ::kill(pid, SIGCONT);
  const Outcome outcome = wait_for(pid, err);
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 130) << outcome.err;
  EXPECT_NE(outcome.err.find("interrupted"), std::string::npos) << outcome.err;
  EXPECT_FALSE(fs::exists(output));
  EXPECT_TRUE(temp_files_for(output).empty());
  (void)test;
}

TEST_F(Faults, SigintCleansUpAndExits130) { expect_interrupt_cleans_up(this, dir_, convert_args(output_), output_, SIGINT); }

TEST_F(Faults, SigtermCleansUpAndExits130) { expect_interrupt_cleans_up(this, dir_, convert_args(output_), output_, SIGTERM); }

TEST_F(Faults, StaleTemporaryFilesOfDeadProcessesAreRemoved) {
  // A pid that certainly ended: a child we started and reaped.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = quant::writer_temp_path(output_, dead);
  const std::string not_ours = dir_ + "/.out.gguf.tmp-notapid";
  std::ofstream(stale) << "half a model";
  std::ofstream(not_ours) << "someone else's";
  const Outcome outcome = run(convert_args(output_));
  ASSERT_TRUE(outcome.exited && outcome.exit_code == 0) << outcome.err;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(not_ours)) << "only names of the documented pattern are removed";
}

TEST_F(Faults, DiskFullIsAClearErrorWithNoPartialOutput) {
  const std::string full = mount_tmpfs("full", "size=256k");
  if (full.empty()) GTEST_SKIP() << "needs root to mount a 256 KiB tmpfs (CI runs as root)";
  const std::string output = full + "/out.gguf";  // the Q8_0 output is ~330 KB
  const Outcome outcome = run(convert_args(output));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  EXPECT_NE(outcome.err.find("No space left on device"), std::string::npos) << outcome.err;
  EXPECT_TRUE(fs::is_empty(full)) << "neither the output nor a temporary file remains";
}

TEST_F(Faults, UnwritableDirectoryIsAClearError) {
  std::string locked;
  if (::geteuid() == 0) {
    // Root ignores permission bits: a read-only mount is the only directory root cannot write.
    locked = mount_tmpfs("locked", "size=64k");
    if (locked.empty() || ::mount("tmpfs", locked.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=64k") != 0) {
      GTEST_SKIP() << "running as root without permission to mount a read-only tmpfs";
    }
  } else {
    locked = dir_ + "/locked";
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  }
  const Outcome outcome = run(convert_args(locked + "/out.gguf"));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  EXPECT_TRUE(outcome.err.find("Read-only file system") != std::string::npos ||
              outcome.err.find("Permission denied") != std::string::npos)
      << outcome.err;
  EXPECT_TRUE(fs::is_empty(locked));
  if (::geteuid() != 0) fs::permissions(locked, fs::perms::owner_all);
}

TEST_F(Faults, MissingDirectoryIsAClearError) {
  const std::string output = dir_ + "/no/such/dir/out.gguf";
  const Outcome outcome = run(convert_args(output));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  EXPECT_NE(outcome.err.find("No such file or directory"), std::string::npos) << outcome.err;
  EXPECT_NE(outcome.err.find(dir_ + "/no/such/dir"), std::string::npos) << "names the path: " << outcome.err;
  EXPECT_FALSE(fs::exists(dir_ + "/no"));
}

TEST_F(Faults, OutputThatIsADirectoryIsAClearError) {
  const std::string output = dir_ + "/a-directory";
  fs::create_directory(output);
  const Outcome outcome = run(convert_args(output, {"--force"}));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  EXPECT_NE(outcome.err.find("is a directory"), std::string::npos) << outcome.err;
  EXPECT_TRUE(fs::is_directory(output) && fs::is_empty(output));
}

TEST_F(Faults, OutputThatIsTheInputThroughALinkIsRefused) {
  const std::string symlink = dir_ + "/symlink.gguf";
  const std::string hardlink = dir_ + "/hardlink.gguf";
  fs::create_symlink(input_, symlink);
  fs::create_hard_link(input_, hardlink);
  for (const std::string& alias : {symlink, hardlink, input_}) {
    for (bool force : {false, true}) {
      SCOPED_TRACE(alias + (force ? " --force" : ""));
      const Outcome outcome = run(convert_args(alias, force ? std::vector<std::string>{"--force"} : std::vector<std::string>{}));
      EXPECT_TRUE(outcome.exited);
      EXPECT_EQ(outcome.exit_code, 2) << outcome.err;
      EXPECT_NE(outcome.err.find("is the input file"), std::string::npos) << outcome.err;
      EXPECT_TRUE(FileState::of(input_) == input_state_);
    }
  }
}

TEST_F(Faults, InputIsNeverOpenedForWriting) {
  const int watch_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(watch_fd, 0);
  ASSERT_GE(::inotify_add_watch(watch_fd, input_.c_str(), IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE),
            0);
  const Outcome outcome = run(convert_args(output_));
  ASSERT_TRUE(outcome.exited && outcome.exit_code == 0) << outcome.err;
  uint32_t seen = 0;
  alignas(struct inotify_event) char buffer[4096];
  for (ssize_t n; (n = ::read(watch_fd, buffer, sizeof(buffer))) > 0;) {
    for (char* p = buffer; p < buffer + n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(p);
      seen |= event->mask;
      p += sizeof(struct inotify_event) + event->len;
    }
  }
  ::close(watch_fd);
  EXPECT_TRUE(seen & IN_CLOSE_NOWRITE) << "the watch saw the read-only open";
  EXPECT_FALSE(seen & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) << "events: " << std::hex << seen;
}

TEST_F(Faults, InputTruncatedWhileBeingReadIsAnErrorNotSigbus) {
  check_input_ = false;  // the test truncates it on purpose
  const std::string err = dir_ + "/stderr.txt";
  // Paused once the header and the first tensor are out; most tensor data is still to be read.
  const pid_t pid = spawn_quantize(convert_args(output_), {"QUANT_FAULT_STOP_AFTER_BYTES=40000"}, "/dev/null", err);
  ASSERT_TRUE(wait_until_stopped(pid));
  ASSERT_EQ(::truncate(input_.c_str(), 300000), 0);
  ::kill(pid, SIGCONT);
  const Outcome outcome = wait_for(pid, err);
  EXPECT_TRUE(outcome.exited) << "ended by signal " << outcome.signal;
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  EXPECT_NE(outcome.err.find("truncated"), std::string::npos) << outcome.err;
  EXPECT_FALSE(fs::exists(output_));
  EXPECT_TRUE(temp_files_for(output_).empty());
}

// Overwrites float `index` of tensor `name` in the GGUF file at `path`.
void poke_float(const std::string& path, const std::string& name, uint64_t index, float value) {
  uint64_t at = 0;
  {
    auto file = quant::GgufFile::open(path);
    ASSERT_TRUE(file) << file.error().message();
    const quant::TensorInfo* tensor = file->find_tensor(name);
    ASSERT_NE(tensor, nullptr);
    at = file->data_offset() + tensor->offset + index * sizeof(float);
  }
  std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
  out.seekp(std::streamoff(at));
  out.write(reinterpret_cast<const char*>(&value), sizeof(value));
}

TEST_F(Faults, NanInAnInputTensorIsRefusedNamingTensorAndIndex) {
  poke_float(input_, "blk.0.ffn_up.weight", 256 + 44, std::numeric_limits<float>::quiet_NaN());
  input_state_ = FileState::of(input_);
  const Outcome outcome = run(convert_args(output_));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 3) << outcome.err;
  EXPECT_NE(outcome.err.find("blk.0.ffn_up.weight"), std::string::npos) << outcome.err;
  EXPECT_NE(outcome.err.find("row 1, column 44"), std::string::npos) << outcome.err;
  EXPECT_NE(outcome.err.find("--allow-non-finite"), std::string::npos) << outcome.err;
  EXPECT_FALSE(fs::exists(output_));
  EXPECT_TRUE(temp_files_for(output_).empty());
}

TEST_F(Faults, InfInAKeptFloatTensorIsAcceptedWithAllowNonFinite) {
  // Norm weights stay f32 in every mix, so an Inf there reaches the output unchanged when allowed.
  poke_float(input_, "blk.0.attn_norm.weight", 5, std::numeric_limits<float>::infinity());
  input_state_ = FileState::of(input_);
  const Outcome refused = run(convert_args(output_));
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_NE(refused.err.find("blk.0.attn_norm.weight"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("column 5"), std::string::npos) << refused.err;

  const Outcome allowed = run(convert_args(output_, {"--allow-non-finite"}));
  ASSERT_TRUE(allowed.exited && allowed.exit_code == 0) << allowed.err;
  auto out = quant::GgufFile::open(output_);
  ASSERT_TRUE(out) << out.error().message();
  const quant::TensorInfo* norm = out->find_tensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  float value = 0;
  ASSERT_TRUE(out->read_tensor(*norm, 5 * sizeof(float), std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), 4)));
  EXPECT_EQ(value, std::numeric_limits<float>::infinity());
}

// --allow-non-finite keeps NaN/Inf only in tensors copied unchanged: a value that would go into a converted
// tensor (quantized, or changed to another float type) is refused with exit 3 naming the tensor, row and column,
// whatever the target type and wherever the value is. (Before, a NaN in the last of a q8_0 block's 32 values
// became a NaN scale, and elsewhere a NaN went into the output and the report said RMSE nan.)
TEST_F(Faults, NonFiniteValuesNeverReachAConvertedTensorEvenWhenAllowed) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const struct {
    const char* tensor;
    uint64_t index;  // row * 256 + column: every tensor of this model has rows of 256
    float value;
    const char* type;
    const char* where;
  } cases[] = {
      {"blk.0.ffn_up.weight", 31, nan, "Q8_0", "row 0, column 31"},
      {"blk.0.ffn_up.weight", 3 * 256 + 7, nan, "Q8_0", "row 3, column 7"},
      {"blk.0.attn_q.weight", 2 * 256 + 200, inf, "Q4_K_M", "row 2, column 200"},
      {"blk.0.ffn_down.weight", 255, -inf, "Q6_K", "row 0, column 255"},
      {"token_embd.weight", 5 * 256 + 1, nan, "F16", "row 5, column 1"},
      {"blk.0.attn_v.weight", 0, inf, "Q8_0,F16", "row 0, column 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.tensor) + " " + c.where + " " + c.type);
    fs::remove(input_);
    fs::copy_file(data_path("gguf/stories260K-rows256-F32.gguf"), input_);
    poke_float(input_, c.tensor, c.index, c.value);
    input_state_ = FileState::of(input_);
    std::vector<std::string> args = {input_, "--to", c.type, "-q", "--allow-non-finite"};
    const bool two = std::string(c.type).find(',') != std::string::npos;
    for (const std::string& out : two ? std::vector<std::string>{output_, output_ + ".2"} : std::vector{output_}) {
      args.push_back("-o");
      args.push_back(out);
    }
    const Outcome outcome = run(args);
    EXPECT_TRUE(outcome.exited);
    EXPECT_EQ(outcome.exit_code, 3) << outcome.err;
    EXPECT_NE(outcome.err.find(std::string("tensor '") + c.tensor + "'"), std::string::npos) << outcome.err;
    EXPECT_NE(outcome.err.find(c.where), std::string::npos) << outcome.err;
    EXPECT_NE(outcome.err.find("converted tensor"), std::string::npos) << outcome.err;
    EXPECT_FALSE(fs::exists(output_));
    EXPECT_FALSE(fs::exists(output_ + ".2"));
    EXPECT_TRUE(temp_files_for(output_).empty());
  }
}

TEST_F(Faults, InfInAnImportanceMatrixIsRefusedNamingEntryAndIndex) {
  // Legacy .dat layout: i32 entries, then per entry i32 name length, name, i32 ncall, i32 nval, f32 values.
  const std::string imatrix = dir_ + "/bad.imatrix.dat";
  std::vector<uint8_t> bytes = read_bytes(data_path("imatrix/stories260K.imatrix.dat"));
  int32_t name_length = 0;
  std::memcpy(&name_length, bytes.data() + 4, 4);
  const std::string entry(reinterpret_cast<const char*>(bytes.data() + 8), size_t(name_length));
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(bytes.data() + 8 + name_length + 8 + 3 * 4, &inf, 4);  // value 3 of the first entry
  std::ofstream(imatrix, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));

  const Outcome outcome = run(convert_args(output_, {"--imatrix", imatrix}));
  EXPECT_TRUE(outcome.exited);
  EXPECT_EQ(outcome.exit_code, 3) << outcome.err;
  EXPECT_NE(outcome.err.find("'" + entry + "'"), std::string::npos) << outcome.err;
  EXPECT_NE(outcome.err.find("value 3 is not finite (inf)"), std::string::npos) << outcome.err;
  EXPECT_FALSE(fs::exists(output_));
}

}  // namespace
