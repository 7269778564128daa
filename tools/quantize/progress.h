// A one-line progress bar on stderr, shown only when stderr is a terminal (never in pipes or CI logs) and
// the terminal is not TERM=dumb; NO_COLOR turns its colour off.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace quant::cli {

class ProgressBar {
 public:
  explicit ProgressBar(bool silenced) {
    const char* term = std::getenv("TERM");
    enabled_ = !silenced && isatty(STDERR_FILENO) && !(term != nullptr && std::strcmp(term, "dumb") == 0);
    colour_ = std::getenv("NO_COLOR") == nullptr;
  }
  bool enabled() const { return enabled_; }

  void update(uint64_t done, uint64_t total, const std::string& tensor) {
    if (!enabled_ || total == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;  // at most 10 redraws/s
    last_draw_ = now;
    const int width = 30;
    const int filled = int(double(done) / double(total) * width);
    std::string bar(size_t(filled), '#');
    bar.resize(size_t(width), '.');
    std::fprintf(stderr, "\r%s[%s]%s %5.1f%%  %-40.40s", colour_ ? "\x1b[36m" : "", bar.c_str(),
                 colour_ ? "\x1b[0m" : "", 100.0 * double(done) / double(total), tensor.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void finish() {
    if (drawn_) std::fprintf(stderr, "\r%80s\r", "");
    drawn_ = false;
  }

 private:
  bool enabled_ = false;
  bool colour_ = true;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace quant::cli
