// A fixed set of worker threads for the forward pass: parallel_for hands out task indices to the workers and the
// calling thread, and returns when every task is done. Tasks are small (a tile of a matmul, a block of rows), so
// they are taken one at a time from a shared counter; a pass runs thousands of them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quant::model {

class ThreadPool {
 public:
  // threads counts the caller: 1 means no workers.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }

  // Runs task(index, thread) for index in [0, n); thread in [0, threads()) says which thread runs it, for per-thread
  // scratch buffers. Not reentrant: tasks must not call parallel_for.
  void parallel_for(int64_t n, const std::function<void(int64_t index, int thread)>& task);

 private:
  void worker_loop(int thread);
  void run_tasks(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(int64_t, int)>* task_ = nullptr;
  int64_t task_count_ = 0;
  int64_t next_task_ = 0;
  int busy_workers_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

}  // namespace quant::model
