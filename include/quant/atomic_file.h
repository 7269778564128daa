// Atomic outputs: every file quantize writes (a model, each shard of a split model, an imatrix, a calibration
// table) is written under a temporary name beside its final path and placed there only when complete, and the
// files one command writes are placed together, all or nothing.
//
// An AtomicFile is the temporary file ".<name>.tmp-<pid>" (remove_stale_temp_files in quant/gguf.h removes the
// ones a killed run left). commit_files() places several of them:
//   1. Finish: every file is closed (with OutputPolicy::fsync, flushed to disk first) before any existing file
//      is touched, so a late write, flush or close error changes nothing.
//   2. Check: each final path holds nothing, or with `overwrite` a regular file. A directory, device node, FIFO,
//      socket or symbolic link is never replaced, nor is one of the policy's inputs (through any link), even
//      with `overwrite`.
//   3. Place, one file after another. A new file never replaces anything: renameat2(RENAME_NOREPLACE), or
//      link() + unlink() where the filesystem lacks that flag, so of two runs racing for one path exactly one
//      wins and the other fails with nothing changed. A replaced file is swapped with the new one
//      (renameat2(RENAME_EXCHANGE), else a hard link keeps the old file while the new one is renamed over it),
//      so the final path is never missing and the old file stays whole until the end.
//   4. Undo: if one placement fails, the earlier ones are undone (the old files go back, the new ones go), so
//      every final path holds exactly what it held before.
//   5. Release: the replaced files are deleted last. Freeing a large file's blocks can take a second; with
//      OutputPolicy::release_in_background that happens in a short-lived helper process, after the outputs are
//      in place and off the caller's path (the names are gone at once either way).
// A SIGKILL during step 3 of a multi-file commit can leave some outputs replaced and others not, but every
// output path always holds one whole file, old or new.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/error.h"

namespace quant {

// What a command may do to the paths it writes.
struct OutputPolicy {
  bool overwrite = false;  // replace an existing regular file (--force); otherwise an existing path is an error
  bool fsync = false;      // flush every file, then its directory, to disk: the result survives a power cut
  // Files the command reads: never replaced, also with `overwrite` (a usage error, naming the input).
  std::vector<std::string> inputs;
  // Free the replaced files' blocks in a helper process (see step 5) rather than before commit_files returns.
  bool release_in_background = false;
};

// Whether `path` may be written under `policy` now: a usage error when it is one of the inputs (or a link to
// one), an I/O error when something is there that may not be replaced (anything without `overwrite`; a
// directory, device, FIFO, socket or symbolic link even with it). Commands call this before they start the
// work; commit_files() checks again when it places the file.
Status check_output_path(const std::string& path, const OutputPolicy& policy);

// A temporary file that becomes `final_path` when committed. Destroying one that was not placed removes it.
class AtomicFile {
 public:
  // Removes stale temporary files of final_path, then creates its temporary file (O_EXCL: never writing
  // through an existing file or a link planted under that name).
  static Result<AtomicFile> create(const std::string& final_path);
  AtomicFile() = default;  // an empty one, owning no file

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  const std::string& final_path() const { return final_path_; }
  const std::string& temp_path() const { return temp_path_; }
  int fd() const { return fd_; }  // open until finish(); -1 after
  bool finished() const { return finished_; }
  bool placed() const { return placed_; }

  // Appends all of `bytes`, retrying short writes; errors name the final path.
  Status write(std::span<const uint8_t> bytes);
  // Closes the file, flushing it to disk first when `fsync`: its bytes are then final. commit_files() finishes
  // the files not finished yet.
  Status finish(bool fsync);
  // Removes the temporary file now (nothing when it was placed).
  void discard();

 private:
  friend Result<std::vector<bool>> commit_files(std::span<AtomicFile* const> files, const OutputPolicy& policy);

  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  dev_t device_ = 0;  // the temporary file's identity, to tell it from anything else at its final path
  ino_t inode_ = 0;
  bool finished_ = false;
  bool synced_ = false;
  bool placed_ = false;
};

// Places every file at its final path, all or nothing (steps 1 to 5 above); returns, per file, whether an
// existing file was replaced. On error every final path holds what it held before and the temporary files are
// left to their AtomicFile objects (which remove them). Two files with the same final path are a usage error.
Result<std::vector<bool>> commit_files(std::span<AtomicFile* const> files, const OutputPolicy& policy);

// One small file (an imatrix, a calibration table): create, write `bytes`, commit under `policy`.
Status write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, const OutputPolicy& policy);

}  // namespace quant
