// A scratch folder in /dev/shm for fuzz targets that read a folder of files (checkpoints), and writing one file
// of it from the fuzzer's bytes.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace quant::fuzz {

// Creates /dev/shm/<prefix>-XXXXXX; aborts when it cannot (the harness cannot run: not a finding).
inline std::string make_fuzz_folder(const char* prefix) {
  std::string pattern = std::string("/dev/shm/") + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  return pattern;
}

// Writes `size` bytes as dir/name, or removes that file when `data` is null.
inline void put_file(const std::string& dir, const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = dir + "/" + name;
  if (data == nullptr) {
    ::unlink(path.c_str());
    return;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

}  // namespace quant::fuzz
