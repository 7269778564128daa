// Temporary-file names of atomic outputs and the cleanup of the ones (and of the kept old outputs) left by
// killed processes.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "quant/gguf.h"

namespace quant {
namespace {

namespace fs = std::filesystem;

// "." + the file's name + `suffix` (built by appending: GCC 12 warns, wrongly, about "." + std::string).
std::string hidden_name(const fs::path& final_path, std::string_view suffix) {
  std::string name = ".";
  name += final_path.filename().string();
  name += suffix;
  return name;
}

// The part of the temporary name before the pid: ".<name>.tmp-".
std::string temp_prefix(const fs::path& final_path) { return hidden_name(final_path, ".tmp-"); }

// True unless the process certainly does not exist (EPERM means it exists but is not ours).
bool process_alive(long pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno != ESRCH); }

}  // namespace

std::string writer_temp_path(const std::string& final_path, long pid) {
  const fs::path path(final_path);
  return (path.parent_path() / (temp_prefix(path) + std::to_string(pid))).string();
}

Result<int> remove_stale_temp_files(const std::string& final_path) {
  const fs::path path(final_path);
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const std::string temp = temp_prefix(path);
  const std::string backup = hidden_name(path, ".old-");  // output_commit::backup_path
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return io_error(fmt::format("cannot list directory: {}", ec.message())).in_file(dir.string());
  int removed = 0;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return io_error(fmt::format("cannot list directory: {}", ec.message())).in_file(dir.string());
    const std::string name = it->path().filename().string();
    const bool is_temp = name.size() > temp.size() && name.compare(0, temp.size(), temp) == 0;
    const bool is_backup = name.size() > backup.size() && name.compare(0, backup.size(), backup) == 0;
    if (!is_temp && !is_backup) continue;
    const std::string_view digits = std::string_view(name).substr(is_temp ? temp.size() : backup.size());
    long pid = 0;
    const auto [end, parse_error] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (parse_error != std::errc() || end != digits.data() + digits.size()) continue;  // not our pattern
    if (process_alive(pid)) continue;
    // A backup is a replaced output its run kept while placing the new one. If that run died before the new
    // file took the name, the name is free: the old file goes back (never over anything). Otherwise it goes.
    if (is_backup && ::renameat2(AT_FDCWD, it->path().c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) == 0) {
      continue;
    }
    if (::unlink(it->path().c_str()) != 0) {
      if (errno == ENOENT) continue;  // another cleaner got there first
      return io_error(fmt::format("cannot remove stale temporary file: {}", std::strerror(errno)))
          .in_file(it->path().string());
    }
    ++removed;
  }
  return removed;
}

}  // namespace quant
