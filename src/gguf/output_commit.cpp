// commit_files(): several finished temporary files placed at their final paths together, all or nothing
// (the steps are in quant/atomic_file.h). Placing never destroys what it finds: a new file goes where nothing
// is, a replaced file is swapped out (or kept under a second name), so each step can be undone until the last
// one succeeded.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include "core/input_files.h"
#include "gguf/output_commit.h"
#include "quant/atomic_file.h"

namespace quant {
namespace output_commit {
namespace {

namespace fs = std::filesystem;

bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Which of the kernel's rename and link features this commit may use. All of them, except when the test-only
// variable QUANT_COMMIT_WITHOUT lists some (comma-separated: noreplace, exchange, link): the commit then behaves
// as on a filesystem lacking them, so the fallbacks are tested on any disk (docs/reliability.md).
struct Features {
  bool noreplace = true;
  bool exchange = true;
  bool hard_links = true;
};

Features features() {
  Features f;
  const char* without = std::getenv("QUANT_COMMIT_WITHOUT");
  if (without == nullptr) return f;
  const std::string_view list(without);
  f.noreplace = list.find("noreplace") == std::string_view::npos;
  f.exchange = list.find("exchange") == std::string_view::npos;
  f.hard_links = list.find("link") == std::string_view::npos;
  return f;
}

// Each returns 0 or the errno of the failure.
int rename_with(const std::string& from, const std::string& to, unsigned flags) {
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags) == 0 ? 0 : errno;
}
int rename_noreplace(const std::string& from, const std::string& to, const Features& f) {
  return f.noreplace ? rename_with(from, to, RENAME_NOREPLACE) : EINVAL;
}
int rename_exchange(const std::string& a, const std::string& b, const Features& f) {
  return f.exchange ? rename_with(a, b, RENAME_EXCHANGE) : EINVAL;
}
int hard_link(const std::string& from, const std::string& to, const Features& f) {
  if (!f.hard_links) return EPERM;
  return ::link(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}
// renameat2 reports a flag the filesystem (or kernel) does not support with EINVAL (ENOSYS before Linux 3.15).
bool flag_unsupported(int err) { return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP; }
// link() reports a filesystem without hard links with EPERM (vfat) or EOPNOTSUPP; EMLINK: no more links.
bool link_unsupported(int err) { return err == EPERM || err == EOPNOTSUPP || err == ENOSYS || err == EMLINK; }

// Moves `temp` to `final` where nothing is: 0, EEXIST when something is there, or another errno.
int place_new(const std::string& temp, const std::string& final, const Features& f) {
  int err = rename_noreplace(temp, final, f);
  if (err == 0 || !flag_unsupported(err)) return err;
  err = hard_link(temp, final, f);  // link() never replaces either
  if (err == 0) {
    ::unlink(temp.c_str());
    return 0;
  }
  if (!link_unsupported(err)) return err;
  // Neither (some FUSE and network filesystems): claim the name with an exclusive create, then rename over our
  // own claim. Only here can a kill at the wrong instant leave an empty file at the final path.
  const int claim = ::open(final.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (claim < 0) return errno;
  ::close(claim);
  if (::rename(temp.c_str(), final.c_str()) != 0) {
    err = errno;
    ::unlink(final.c_str());
    return err;
  }
  return 0;
}

enum class How {
  created,      // nothing was there
  exchanged,    // swapped: the old file is now at the temporary path
  backed_up,    // a hard link kept the old file at the backup path, then the new one was renamed over it
  moved_aside,  // the old file was renamed to the backup path, then the new one placed
};

struct Placement {
  How how = How::created;
  std::string old_path;  // where the replaced file is now (empty when created)
};

Error place_error(const std::string& final, const std::string& what, int err) {
  return io_error(fmt::format("{}: {}", what, std::strerror(err))).in_file(final);
}

Status refuse_inputs(const std::string& final, const struct stat& existing, const std::vector<std::string>& inputs) {
  for (const std::string& input : inputs) {
    struct stat in {};
    if (::stat(input.c_str(), &in) == 0 && same_file(in, existing)) {
      return usage_error(fmt::format("output '{}' is the input file '{}': refusing to overwrite it", final, input));
    }
  }
  return Status::success();
}

// Places `temp` at `final` under `policy`. `owns_temp` is cleared when the temporary path ends up holding
// something that is not ours (a swap that could not be undone), so it is not deleted.
Result<Placement> place(const std::string& temp, const std::string& final, const OutputPolicy& policy,
                        const Features& f, bool& owns_temp) {
  // A few tries: another process may create or remove the path between our look and our move.
  for (int attempt = 0; attempt < 4; ++attempt) {
    struct stat old {};
    if (::lstat(final.c_str(), &old) != 0) {
      if (errno != ENOENT) return place_error(final, "cannot inspect output", errno);
      const int err = place_new(temp, final, f);
      if (err == 0) return Placement{};
      if (err == EEXIST && policy.overwrite) continue;  // it appeared meanwhile: replace it if it may be
      if (err == EEXIST) {
        return io_error(fmt::format("output '{}' appeared while this run worked (another run?); it is left as "
                                    "it is (use --force to replace it)", final));
      }
      return place_error(final, fmt::format("cannot move {} into place", temp), err);
    }
    QUANT_TRY(check_existing(final, old, policy.overwrite));
    QUANT_TRY(refuse_inputs(final, old, policy.inputs));

    // Swap: the final path is never empty, and the old file stays whole at the temporary path.
    int err = rename_exchange(temp, final, f);
    if (err == 0) {
      struct stat swapped {};
      if (::lstat(temp.c_str(), &swapped) == 0 && same_file(swapped, old)) return Placement{How::exchanged, temp};
      // The path changed between our look and the swap: give back what we took, then look again.
      if (rename_exchange(temp, final, f) != 0) {
        owns_temp = false;
        return io_error(fmt::format("output '{}' changed while it was being replaced; the new file is in place and "
                                    "what was there is now {}", final, temp));
      }
      continue;
    }
    if (err == ENOENT) continue;  // it went away meanwhile
    if (!flag_unsupported(err)) return place_error(final, "cannot replace output", err);

    // No swap on this filesystem: keep the old file under a second name while the new one is renamed over it.
    const std::string backup = backup_path(final, long(::getpid()));
    err = hard_link(final, backup, f);
    if (err == 0) {
      struct stat kept {};
      if (::lstat(backup.c_str(), &kept) != 0 || !same_file(kept, old)) {
        ::unlink(backup.c_str());
        continue;
      }
      if (::rename(temp.c_str(), final.c_str()) != 0) {
        err = errno;
        ::unlink(backup.c_str());
        return place_error(final, fmt::format("cannot move {} into place", temp), err);
      }
      return Placement{How::backed_up, backup};
    }
    if (!link_unsupported(err)) return place_error(final, "cannot keep the old file while replacing it", err);
    // No hard links either: move the old file aside, then place the new one where it was. (An immutable file
    // also refuses links with EPERM; it refuses this rename too, and that error is the one reported.)
    if (::rename(final.c_str(), backup.c_str()) != 0) return place_error(final, "cannot replace output", errno);
    struct stat moved {};
    if (::lstat(backup.c_str(), &moved) != 0 || !same_file(moved, old)) {
      if (place_new(backup, final, f) != 0) {
        return io_error(fmt::format("output '{}' changed while it was being replaced; what was there is now {}",
                                    final, backup));
      }
      continue;
    }
    err = place_new(temp, final, f);
    if (err != 0) {
      if (place_new(backup, final, f) != 0) {
        return place_error(final, fmt::format("cannot move {} into place (the old file is kept as {})", temp,
                                              backup), err);
      }
      return place_error(final, fmt::format("cannot move {} into place", temp), err);
    }
    return Placement{How::moved_aside, backup};
  }
  return io_error(fmt::format("output '{}' kept changing while this run tried to place it", final));
}

// Puts back what `placement` replaced (or removes what it created); an error says where the old file is when
// it could not be put back. `owns_temp` is cleared when the temporary path keeps someone's old file.
Status undo(const Placement& placement, const std::string& temp, const std::string& final, dev_t device, ino_t inode,
            const Features& f, bool& owns_temp) {
  switch (placement.how) {
    case How::created: {
      struct stat now {};
      if (::lstat(final.c_str(), &now) == 0 && now.st_dev == device && now.st_ino == inode) ::unlink(final.c_str());
      return Status::success();
    }
    case How::exchanged:
      if (rename_exchange(temp, final, f) == 0) return Status::success();
      owns_temp = false;
      return io_error(fmt::format("could not put the previous '{}' back; it is kept as {}", final, temp));
    case How::backed_up:
    case How::moved_aside:
      if (::rename(placement.old_path.c_str(), final.c_str()) == 0) return Status::success();
      return io_error(fmt::format("could not put the previous '{}' back; it is kept as {}", final,
                                  placement.old_path));
  }
  return Status::success();
}

Status sync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(fmt::format("cannot open directory to sync: {}", std::strerror(errno))).in_file(dir);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) return io_error(fmt::format("fsync of directory failed: {}", std::strerror(saved))).in_file(dir);
  return Status::success();
}

// Closes every descriptor except those in `keep` (sorted). Async-signal-safe: for a child after fork().
void close_all_except(const int* keep, size_t count) {
  unsigned next = 0;
  for (size_t i = 0; i < count; ++i) {
    const unsigned fd = unsigned(keep[i]);
    if (fd > next) ::close_range(next, fd - 1, 0);
    next = fd + 1;
  }
  ::close_range(next, UINT_MAX, 0);
}

// Closes `fds`, which hold files already unlinked: the last close of such a file frees its blocks, which for a
// large file costs up to a second. A helper process (forked twice, so nothing waits for it or leaves a zombie)
// holds copies and closes them last, after we closed ours, so the cost is paid there. The helper keeps nothing
// else open (not our stdout: a pipe reader sees end-of-file when we exit). When no helper can be started the
// cost is paid here, as it would be without one.
void close_in_helper(const std::vector<int>& fds) {
  int gate[2] = {-1, -1};
  if (::pipe2(gate, O_CLOEXEC) == 0) {
    std::vector<int> keep = fds;  // prepared before fork(): the child must not allocate
    keep.push_back(gate[0]);
    std::sort(keep.begin(), keep.end());
    const pid_t child = ::fork();
    if (child == 0) {
      // Only async-signal-safe calls from here on: other threads of the parent may have held locks.
      if (::fork() != 0) ::_exit(0);  // the middle process ends at once; the helper becomes init's child
      close_all_except(keep.data(), keep.size());
      char byte;
      while (::read(gate[0], &byte, 1) < 0 && errno == EINTR) {
      }  // end-of-file once the parent closed its copies (below) and the gate
      for (int fd : fds) ::close(fd);
      ::_exit(0);
    }
    ::close(gate[0]);
    if (child > 0) {
      int status = 0;
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  for (int fd : fds) ::close(fd);
  if (gate[1] >= 0) ::close(gate[1]);  // now the helper closes its copies, the last ones
}

// Deletes the replaced files (their names at once; see close_in_helper for their blocks).
void release(const std::vector<std::string>& paths, bool background) {
  std::vector<int> held;
  for (const std::string& path : paths) {
    const int fd = background ? ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
    // A name that cannot be removed is left to the next run's remove_stale_temp_files().
    ::unlink(path.c_str());
    if (fd >= 0) held.push_back(fd);
  }
  if (!held.empty()) close_in_helper(held);
}

}  // namespace

Status check_existing(const std::string& path, const struct stat& info, bool overwrite) {
  if (S_ISDIR(info.st_mode)) return io_error(fmt::format("output '{}' is a directory", path));
  if (S_ISLNK(info.st_mode)) {
    return io_error(fmt::format("output '{}' is a symbolic link: quantize creates or replaces only regular files "
                                "(give the link's target as the output)", path));
  }
  if (!S_ISREG(info.st_mode)) {
    return io_error(fmt::format("output '{}' is {}: quantize creates or replaces only regular files", path,
                                file_kind(info.st_mode)));
  }
  if (!overwrite) return io_error(fmt::format("output '{}' exists (use --force to replace it)", path));
  return Status::success();
}

std::string backup_path(const std::string& final_path, long pid) {
  const fs::path path(final_path);
  std::string name = ".";  // appended, not "." + std::string: GCC 12 warns about that, wrongly
  name += path.filename().string();
  name += ".old-";
  name += std::to_string(pid);
  return (path.parent_path() / name).string();
}

}  // namespace output_commit

Result<std::vector<bool>> commit_files(std::span<AtomicFile* const> files, const OutputPolicy& policy) {
  using namespace output_commit;
  const Features f = features();
  // 1. Finish every file before touching any final path.
  for (size_t i = 0; i < files.size(); ++i) {
    AtomicFile& file = *files[i];
    if (file.placed_ || file.temp_path_.empty()) {
      return usage_error("commit of a discarded or placed file").in_file(file.final_path_);
    }
    for (size_t j = 0; j < i; ++j) {
      if (fs::path(files[j]->final_path_).lexically_normal() == fs::path(file.final_path_).lexically_normal()) {
        return usage_error(fmt::format("two outputs are the same file '{}'", file.final_path_));
      }
    }
    if (!file.finished_) {
      QUANT_TRY(file.finish(policy.fsync));
    } else if (policy.fsync && !file.synced_) {
      const int fd = ::open(file.temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
      const bool synced = fd >= 0 && ::fsync(fd) == 0;
      const int saved = errno;
      if (fd >= 0) ::close(fd);
      if (!synced) return io_error(fmt::format("fsync failed: {}", std::strerror(saved))).in_file(file.temp_path_);
      file.synced_ = true;
    }
  }
  // 2. Check every final path (again: commands check before they start, but time has passed).
  for (AtomicFile* file : files) QUANT_TRY(check_output_path(file->final_path_, policy));

  // 3. Place one after another; 4. on a failure, undo the earlier ones, last first.
  std::vector<Placement> done;
  auto undo_all = [&](Error error) -> Error {
    for (size_t i = done.size(); i-- > 0;) {
      AtomicFile& file = *files[i];
      bool owns = true;
      Status undone = undo(done[i], file.temp_path_, file.final_path_, file.device_, file.inode_, f, owns);
      if (!owns) file.placed_ = true;  // the temporary path holds the old file now: keep it
      if (!undone) error = Error(error.kind(), error.reason() + "; " + undone.error().message()).in_file(error.file());
    }
    return error;
  };
  for (AtomicFile* file : files) {
    bool owns = true;
    Result<Placement> placed = place(file->temp_path_, file->final_path_, policy, f, owns);
    if (!owns) file->placed_ = true;
    if (!placed) return undo_all(std::move(placed).error());
    done.push_back(std::move(*placed));
  }
  if (policy.fsync) {
    std::set<std::string> directories;
    for (AtomicFile* file : files) directories.insert(fs::path(file->final_path_).parent_path().string());
    for (const std::string& dir : directories) {
      Status synced = sync_directory(dir);
      if (!synced) return undo_all(std::move(synced).error());
    }
  }

  // 5. Done: the old files go.
  std::vector<bool> replaced;
  std::vector<std::string> old_files;
  for (size_t i = 0; i < files.size(); ++i) {
    files[i]->placed_ = true;
    replaced.push_back(done[i].how != How::created);
    if (!done[i].old_path.empty()) old_files.push_back(done[i].old_path);
  }
  release(old_files, policy.release_in_background);
  return replaced;
}

}  // namespace quant
