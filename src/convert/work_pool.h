// A fixed set of worker threads that run one parallel loop at a time. Work is split into contiguous ranges in
// a fixed way, so results that are merged in range order do not depend on the number of threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quant::convert_internal {

class WorkPool {
 public:
  explicit WorkPool(int threads);  // threads <= 0: all cores
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }  // the calling thread works too

  // Runs task(part) for part in [0, parts) across the threads and waits for all of them.
  void run(int parts, const std::function<void(int part)>& task);

 private:
  void worker_loop();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_, work_done_;
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0;
  int next_part_ = 0;
  int unfinished_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

}  // namespace quant::convert_internal
