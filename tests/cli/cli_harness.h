// Shared helpers of the whole-program tests (tests/cli/*_test.cpp): run the built `quantize` binary
// (QUANTIZE_BINARY, set by tests/CMakeLists.txt) capturing its exit code, stdout and stderr; scratch folders
// (test_files.h); whole-file text reads and writes; the sha256 of a file.
//
// The binary is started with fork/execve, never through a shell, so arguments need no quoting.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "quant/sha256.h"
#include "test_data.h"
#include "test_files.h"

extern char** environ;

namespace quant::testing {

// What one run of the binary gave back.
struct ProgramRun {
  int exit_code = -1;  // -1 when the process did not exit normally (a signal)
  std::string out;
  std::string err;
};

// The whole file at `path` as text; throws when it cannot be opened.
inline std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// Writes `text` as the whole of the file at `path`, replacing what was there; throws when it cannot.
inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Scratch folders are the shared test helper (test_files.h).
using ScratchDir = TempDir;

// One scratch directory for the whole test process (files several tests share), removed when the process exits.
inline std::string temp_dir() {
  static const ScratchDir process_dir;
  return process_dir.path().string();
}

// A fresh empty folder `name` under temp_dir(), for tests that look at every file a run leaves.
inline std::string empty_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(temp_dir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Starts `binary` with exactly `args` and the "NAME=value" strings of `extra_env` added to this
// process's environment, its stdout and stderr going to the files named (created or truncated), in `cwd` when
// given; returns its pid for waitpid. A child that cannot set itself up exits 126 (127 if exec fails).
inline pid_t spawn_program(const std::string& binary, const std::vector<std::string>& args,
                           const std::vector<std::string>& extra_env, const std::string& stdout_path,
                           const std::string& stderr_path, const std::string& cwd = "") {
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = extra_env;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int out_fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0 || err_fd < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(126);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

inline pid_t spawn_quantize(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                            const std::string& stdout_path, const std::string& stderr_path,
                            const std::string& cwd = "") {
  return spawn_program(QUANTIZE_BINARY, args, extra_env, stdout_path, stderr_path, cwd);
}

// Runs `binary` (another tool: llama.cpp's, for references) with exactly `args`, in `cwd` when given, and
// captures its exit code, stdout and stderr.
inline ProgramRun run_program(const std::string& binary, const std::vector<std::string>& args,
                              const std::string& cwd = "") {
  ScratchDir capture;
  const std::string out_path = capture / "stdout";
  const std::string err_path = capture / "stderr";
  const pid_t pid = spawn_program(binary, args, {}, out_path, err_path, cwd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  }
  ProgramRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = read_text(out_path);
  run.err = read_text(err_path);
  return run;
}

// Runs the built binary with exactly `args`, in `cwd` when given, and captures its exit code, stdout and stderr.
inline ProgramRun run_quantize(const std::vector<std::string>& args, const std::string& cwd = "") {
  return run_program(QUANTIZE_BINARY, args, cwd);
}

// The words of `text`, split at white space.
inline std::vector<std::string> split_spaces(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// Runs the binary with `command_line` split at white space (for tests that build their arguments as one line;
// an argument cannot hold a space).
inline ProgramRun run_quantize_line(const std::string& command_line) {
  return run_quantize(split_spaces(command_line));
}

// The lowercase hex sha256 of the file at `path`, or a "(cannot open ...)" text that matches no digest.
inline std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(cannot open " + path + ")";
  Sha256 hash;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), std::streamsize(buffer.size()));
    hash.update(buffer.data(), size_t(in.gcount()));
  }
  return hash.finish_hex();
}

}  // namespace quant::testing
