// Whole-program tests of the output and input promises (docs/cli.md "Output safety", docs/reliability.md), for
// every command that writes (the main job, `imatrix -o`, `calibrate -o`):
//   - without --force nothing is replaced, not even by the later of two runs racing for one path: exactly one
//     wins and its report's sha256 is the file's;
//   - only regular files are replaced: a device node, FIFO, socket, directory or symbolic link never, --force or not;
//   - several outputs are all or nothing: one that cannot be replaced (chattr +i) leaves every other as it was;
//   - an input that is not a regular file (a FIFO that would block open() forever, a device) is refused at once;
//   - a signal that comes after the last chunk still leaves no output; `-t 100000` runs and leaves nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_harness.h"
#include "test_data.h"
#include "test_files.h"

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::file_sha256;
using quant::testing::read_text;
using quant::testing::spawn_quantize;
using quant::testing::Immutable;
using quant::testing::TempDir;

const std::string kModel = "gguf/stories260K-rows256-F32.gguf";

// The activation batches of tests/data (four files; `imatrix` needs them all for batches of 16 tokens or more).
std::vector<std::string> imatrix_command(std::vector<std::string> before_output) {
  std::vector<std::string> args = {"imatrix"};
  args.insert(args.end(), before_output.begin(), before_output.end());
  args.push_back("--data");
  for (int i = 0; i < 4; ++i) args.push_back(data_path("safetensors/imatrix-batch" + std::to_string(i) + ".safetensors"));
  args.push_back("-o");
  return args;
}

struct Ended {
  int exit_code = -1;  // -1: killed by a signal, or killed by us after the deadline
  bool timed_out = false;
  std::string out, err;
};

// Waits for `pid` at most `seconds`; past that it is killed (a test for "never blocks" must not hang the suite).
Ended wait_at_most(pid_t pid, const std::string& out_path, const std::string& err_path, int seconds = 60) {
  Ended ended;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ended.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ended.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  ended.out = read_text(out_path);
  ended.err = read_text(err_path);
  return ended;
}

Ended run(const TempDir& dir, const std::vector<std::string>& args, const std::vector<std::string>& env = {},
          int seconds = 60) {
  const std::string out = dir / ".stdout", err = dir / ".stderr";
  return wait_at_most(spawn_quantize(args, env, out, err), out, err, seconds);
}

// What is at a path, to show it was not touched.
struct Node {
  ino_t inode = 0;
  mode_t mode = 0;
  std::string bytes;  // regular files only
  static Node at(const std::string& path) {
    Node node;
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) return node;
    node.inode = info.st_ino;
    node.mode = info.st_mode;
    if (S_ISREG(info.st_mode)) node.bytes = read_text(path);
    return node;
  }
  bool operator==(const Node&) const = default;
};

// The names in `dir` other than the test's own capture files.
std::vector<std::string> entries(const TempDir& dir) {
  std::vector<std::string> names;
  for (const std::string& name : dir.entries()) {
    if (name != ".stdout" && name != ".stderr") names.push_back(name);
  }
  return names;
}

// The placement methods the commit can fall back to (QUANT_COMMIT_WITHOUT pretends the filesystem lacks them).
const std::vector<std::vector<std::string>> kMethods = {
    {}, {"QUANT_COMMIT_WITHOUT=exchange"}, {"QUANT_COMMIT_WITHOUT=noreplace,exchange"},
    {"QUANT_COMMIT_WITHOUT=noreplace,exchange,link"}};

// ---------------------------------------------------------------------------------------------------------------
// 1. Two runs racing for one output without --force: both are paused mid-write (the writer's fault hook), so both
//    passed the check for an existing file; then both go on. Exactly one may place its file.

TEST(OutputSafety, OfTwoRacingRunsExactlyOneWinsAndItsReportIsTrue) {
  for (const std::vector<std::string>& method : kMethods) {
    SCOPED_TRACE(method.empty() ? "renameat2" : method[0]);
    TempDir dir("quant-race");
    const std::string output = dir / "same.gguf";
    std::vector<pid_t> pids;
    std::vector<std::string> outs, errs;
    for (const char* type : {"Q8_0", "Q6_K"}) {
      std::vector<std::string> env = method;
      env.push_back("QUANT_FAULT_STOP_AFTER_BYTES=20000");
      outs.push_back(dir / (std::string(".out-") + type));
      errs.push_back(dir / (std::string(".err-") + type));
      pids.push_back(spawn_quantize({"--json", data_path(kModel), "--to", type, "-o", output, "-t", "1"}, env,
                                    outs.back(), errs.back()));
    }
    for (pid_t pid : pids) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
      ASSERT_TRUE(WIFSTOPPED(status)) << "both runs are mid-write before either commits";
    }
    for (pid_t pid : pids) ::kill(pid, SIGCONT);
    int winners = 0;
    for (size_t i = 0; i < pids.size(); ++i) {
      const Ended ended = wait_at_most(pids[i], outs[i], errs[i]);
      if (ended.exit_code == 0) {
        ++winners;
        const nlohmann::json report = nlohmann::json::parse(ended.out);
        EXPECT_EQ(report["totals"]["output_sha256"], file_sha256(output)) << "the winner's report is the file's";
      } else {
        EXPECT_EQ(ended.exit_code, 1) << ended.err;
        EXPECT_NE(ended.err.find("--force"), std::string::npos) << ended.err;
        EXPECT_TRUE(ended.out.empty()) << "the loser reports nothing it did not do";
      }
    }
    EXPECT_EQ(winners, 1);
    const std::vector<std::string> left = entries(dir);
    EXPECT_EQ(std::count(left.begin(), left.end(), "same.gguf"), 1);
    for (const std::string& name : left) {
      EXPECT_EQ(name.find(".same.gguf."), std::string::npos) << "left behind: " << name;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Only regular files are ever replaced, by any command that writes.

// The special files a test makes in `dir`: name and how errors call it. A character device needs root.
std::vector<std::pair<std::string, std::string>> make_special_files(const TempDir& dir) {
  std::vector<std::pair<std::string, std::string>> made;
  if (::mkfifo((dir / "fifo").c_str(), 0644) == 0) made.push_back({"fifo", "a FIFO"});
  fs::create_directory(dir / "directory");
  made.push_back({"directory", "a directory"});
  dir.write("target.gguf", "a file someone links to");
  fs::create_symlink(dir / "target.gguf", dir / "link");
  made.push_back({"link", "a symbolic link"});
  // A copy of /dev/null's node: the test never goes near the real one.
  if (::mknod((dir / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    made.push_back({"null", "a character device"});
  } else {
    std::cout << "[ NOTE     ] mknod needs root: the device-node case is skipped\n";
  }
  return made;
}

TEST(OutputSafety, OnlyRegularFilesAreReplacedByAnyCommand) {
  TempDir dir("quant-special");
  const auto specials = make_special_files(dir);
  const std::string data = dir / "acts.npy";
  fs::copy_file(data_path("npy/blk.0.attn_q.weight.npy"), data);
  for (const auto& [name, kind] : specials) {
    const std::string target = dir / name;
    const Node before = Node::at(target);
    for (const bool force : {false, true}) {
      std::vector<std::string> imatrix = imatrix_command({});
      imatrix.push_back(target);
      const std::vector<std::vector<std::string>> commands = {
          {data_path(kModel), "--to", "Q8_0", "-o", target},
          imatrix,
          {"calibrate", "--data", data, "--method", "minmax", "-o", target},
      };
      for (std::vector<std::string> args : commands) {
        if (force) args.push_back("--force");
        SCOPED_TRACE(args[0] + " -o " + name + (force ? " --force" : ""));
        const Ended ended = run(dir, args);
        EXPECT_EQ(ended.exit_code, 1) << ended.err;
        EXPECT_NE(ended.err.find(kind), std::string::npos) << ended.err;
        EXPECT_TRUE(Node::at(target) == before) << "the " << kind << " was changed";
      }
    }
  }
  EXPECT_EQ(read_text(dir / "target.gguf"), "a file someone links to");
  for (const std::string& name : entries(dir)) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. `imatrix -o` and `calibrate -o` refuse an existing file unless --force, like the main job.

TEST(OutputSafety, ImatrixAndCalibrateReplaceOnlyWithForce) {
  TempDir dir("quant-force");
  const std::string data = dir / "acts.npy";
  fs::copy_file(data_path("npy/blk.0.attn_q.weight.npy"), data);
  const std::vector<std::vector<std::string>> commands = {
      imatrix_command({}), imatrix_command({"--format", "dat"}), {"calibrate", "--data", data, "--method", "minmax", "-o"}};
  for (const std::vector<std::string>& command : commands) {
    SCOPED_TRACE(command[0] + " " + command[1]);
    const std::string precious = dir.write("precious.bin", "a model someone needs");
    std::vector<std::string> args = command;
    args.push_back(precious);
    const Ended refused = run(dir, args);
    EXPECT_EQ(refused.exit_code, 1) << refused.err;
    EXPECT_NE(refused.err.find("exists (use --force to replace it)"), std::string::npos) << refused.err;
    EXPECT_EQ(read_text(precious), "a model someone needs");
    args.push_back("--force");
    const Ended replaced = run(dir, args);
    EXPECT_EQ(replaced.exit_code, 0) << replaced.err;
    EXPECT_NE(read_text(precious), "a model someone needs");
    EXPECT_EQ(entries(dir), (std::vector<std::string>{"acts.npy", "precious.bin"}));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Several outputs, all or nothing.

TEST(OutputSafety, SeveralOutputsAreReplacedAllOrNothing) {
  {
    TempDir probe("quant-probe");
    Immutable immutable(probe.write("probe", "x"));
    if (!immutable.ok()) {
      GTEST_SKIP() << "chattr +i is not available here (needs root and a filesystem with the immutable flag, such "
                      "as ext4, xfs, btrfs or tmpfs): the all-or-nothing commit of several outputs is not tested";
    }
  }
  const std::vector<std::string> names = {"a.gguf", "b.gguf", "c.gguf"};
  for (const std::vector<std::string>& method : kMethods) {
    for (size_t stubborn = 0; stubborn < names.size(); ++stubborn) {
      SCOPED_TRACE((method.empty() ? std::string("renameat2") : method[0]) + ", immutable " + names[stubborn]);
      TempDir dir("quant-all-or-nothing");
      std::vector<Node> before;
      for (const std::string& name : names) {
        dir.write(name, "the previous " + name);
        before.push_back(Node::at(dir / name));
      }
      Immutable immutable(dir / names[stubborn]);
      ASSERT_TRUE(immutable.ok());
      std::vector<std::string> args = {data_path(kModel), "--to", "Q8_0,Q6_K,F16", "--force", "--fsync"};
      for (const std::string& name : names) {
        args.push_back("-o");
        args.push_back(dir / name);
      }
      const Ended ended = run(dir, args, method);
      EXPECT_EQ(ended.exit_code, 1) << ended.err;
      EXPECT_NE(ended.err.find(names[stubborn]), std::string::npos) << ended.err;
      for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_TRUE(Node::at(dir / names[i]) == before[i]) << names[i] << " changed";
      }
      EXPECT_EQ(entries(dir), names) << "no temporary or kept file stays";
    }
  }
  // A new output beside one that cannot be replaced is not created either.
  TempDir dir("quant-all-or-nothing");
  dir.write("old.gguf", "the previous old.gguf");
  Immutable immutable(dir / "old.gguf");
  const Ended ended = run(dir, {data_path(kModel), "--to", "Q8_0,Q6_K", "--force", "-o", dir / "new.gguf", "-o",
                                dir / "old.gguf"});
  EXPECT_EQ(ended.exit_code, 1) << ended.err;
  EXPECT_EQ(entries(dir), std::vector<std::string>{"old.gguf"});
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Inputs that are not regular files are refused before anything blocks on them, by every command.

TEST(InputSafety, NonRegularInputsAreRefusedWithoutBlocking) {
  TempDir dir("quant-fifo");
  const std::string fifo = dir / "model.gguf";  // a FIFO nobody writes to: open() alone would wait forever
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directory(dir / "folder");
  const std::string model = data_path(kModel);
  const std::string out = dir / "out.gguf";
  struct Case {
    std::vector<std::string> args;
    std::string named;  // the path the error names
  };
  const std::vector<Case> cases = {
      {{fifo, "--to", "Q8_0", "-o", out}, fifo},
      {{fifo, "--to", "Q8_0", "-o", out, "--dry-run"}, fifo},
      {{"/dev/zero", "--to", "Q8_0", "-o", out}, "/dev/zero"},
      {{model, "--to", "Q8_0", "-o", out, "--imatrix", fifo}, fifo},
      {{model, "--to", "Q8_0", "-o", out, "--calibration", fifo}, fifo},
      {{model, "--to", "Q8_0", "-o", out, "--tensor-type-file", fifo}, fifo},
      {{"info", fifo}, fifo},
      {{"info", model, "/dev/zero"}, "/dev/zero"},
      {{"imatrix", "--data", fifo, "-o", out}, fifo},
      {{"imatrix", "--data", data_path("safetensors/imatrix-batch0.safetensors"), "--model", fifo, "-o", out}, fifo},
      {{"calibrate", "--data", fifo, "--method", "minmax"}, fifo},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    const Ended ended = run(dir, c.args, {}, 30);
    ASSERT_FALSE(ended.timed_out) << "blocked on a non-regular input";
    EXPECT_EQ(ended.exit_code, 1) << ended.err;
    EXPECT_NE(ended.err.find(c.named), std::string::npos) << ended.err;
    EXPECT_NE(ended.err.find("not a regular file"), std::string::npos) << ended.err;
    EXPECT_TRUE(ended.out.empty());
    EXPECT_FALSE(fs::exists(out));
  }
}

// The first SIGINT or SIGTERM ends the run, even when it comes after the last chunk was read (the process is
// paused by the fault hook after its very last byte): exit 130 and no output.
TEST(InputSafety, TheFirstSignalEndsTheRunEvenAfterTheLastChunk) {
  TempDir dir("quant-late-signal");
  const std::string reference = dir / "reference.gguf";
  ASSERT_EQ(run(dir, {data_path(kModel), "--to", "Q8_0", "-o", reference, "-q"}).exit_code, 0);
  const std::string size = std::to_string(fs::file_size(reference));
  for (const int signal : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(signal);
    const std::string output = dir / "out.gguf";
    const std::string out = dir / ".stdout", err = dir / ".stderr";
    const pid_t pid = spawn_quantize({data_path(kModel), "--to", "Q8_0", "-o", output, "-q"},
                                     {"QUANT_FAULT_STOP_AFTER_BYTES=" + size}, out, err);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
    ASSERT_TRUE(WIFSTOPPED(status));
    ::kill(pid, signal);
    ::kill(pid, SIGCONT);
    const Ended ended = wait_at_most(pid, out, err);
    EXPECT_EQ(ended.exit_code, 130) << ended.err;
    EXPECT_FALSE(fs::exists(output));
    EXPECT_EQ(entries(dir), std::vector<std::string>{"reference.gguf"});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 5. A thread count far beyond the machine runs (capped, said in a warning) and leaves nothing behind.

TEST(Threads, AnAbsurdThreadCountIsCappedNotFatal) {
  TempDir dir("quant-threads");
  const std::string reference = dir / "reference.gguf";
  ASSERT_EQ(run(dir, {data_path(kModel), "--to", "Q8_0", "-o", reference, "-q", "-t", "1"}).exit_code, 0);
  const int cap = 4 * int(std::max(1u, std::thread::hardware_concurrency()));
  for (const char* threads : {"100000", "2147483647"}) {
    for (const bool dry_run : {false, true}) {
      SCOPED_TRACE(std::string(threads) + (dry_run ? " --dry-run" : ""));
      const std::string output = dir / "out.gguf";
      std::vector<std::string> args = {"--json", data_path(kModel), "--to", "Q8_0", "-o", output, "-t", threads};
      if (dry_run) args.push_back("--dry-run");
      const Ended ended = run(dir, args);
      ASSERT_EQ(ended.exit_code, 0) << ended.err;
      const nlohmann::json report = nlohmann::json::parse(ended.out);
      EXPECT_GE(report["totals"]["threads"].get<int>(), 1);
      EXPECT_LE(report["totals"]["threads"].get<int>(), cap);
      EXPECT_NE(ended.err.find("warning: --threads"), std::string::npos) << ended.err;
      EXPECT_EQ(report["warnings"].size(), 1u);
      if (!dry_run) {
        EXPECT_EQ(file_sha256(output), file_sha256(reference));
        fs::remove(output);
      }
      EXPECT_EQ(entries(dir), std::vector<std::string>{"reference.gguf"});
    }
  }
}

}  // namespace
