#include "model/thread_pool.h"

#include "core/worker_signals.h"

namespace quant::model {

ThreadPool::ThreadPool(int threads) {
  const WorkerSignals workers_take_no_stop_signals;
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_tasks(int thread) {
  for (;;) {
    int64_t index;
    {
      std::lock_guard lock(mutex_);
      if (next_task_ >= task_count_) return;
      index = next_task_++;
    }
    (*task_)(index, thread);
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      ++busy_workers_;
    }
    run_tasks(thread);
    {
      std::lock_guard lock(mutex_);
      --busy_workers_;
    }
    done_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int)>& task) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) task(i, 0);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    task_ = &task;
    task_count_ = n;
    next_task_ = 0;
    ++generation_;
  }
  start_.notify_all();
  run_tasks(0);
  std::unique_lock lock(mutex_);
  // Every task is taken; wait for workers still running theirs. A worker that wakes late finds none left.
  done_.wait(lock, [&] { return busy_workers_ == 0; });
  task_ = nullptr;
}

}  // namespace quant::model
