// Internal: what atomic_file.cpp, output_commit.cpp and temp_files.cpp share about output paths.
#pragma once

#include <sys/stat.h>

#include <string>

#include "quant/error.h"

namespace quant::output_commit {

// Whether an existing entry (lstat `info`) at `path` may be replaced: only a regular file, and only when
// `overwrite`. The error says what is there and what to do.
Status check_existing(const std::string& path, const struct stat& info, bool overwrite);

// Where a replaced file is kept while a commit that cannot swap files runs: "<dir>/.<name>.old-<pid>".
// remove_stale_temp_files() puts such a file back when its run died before the new file took its place, and
// deletes it otherwise.
std::string backup_path(const std::string& final_path, long pid);

}  // namespace quant::output_commit
