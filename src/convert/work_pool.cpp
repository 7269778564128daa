#include "convert/work_pool.h"

#include <algorithm>
#include <system_error>

#include "core/worker_signals.h"

namespace quant::convert_internal {

WorkPool::WorkPool(int threads) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 0) threads = cores;
  // More compute threads than hardware threads only adds switching; a few times more is allowed (tests
  // oversubscribe on purpose), far more (-t 100000) would spend seconds starting threads and could use up the
  // user's process limit, so that other programs (and our own I/O threads) could not start one.
  threads = std::min(threads, cores * kMaxThreadsPerCore);
  const WorkerSignals workers_take_no_stop_signals;
  for (int i = 1; i < threads; ++i) {
    try {
      workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error&) {
      break;  // the system refused another thread (process limit): work with the ones we have
    }
  }
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void WorkPool::run(int parts, const std::function<void(int)>& task) {
  if (parts <= 0) return;
  if (workers_.empty() || parts == 1) {
    for (int part = 0; part < parts; ++part) task(part);
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  task_ = &task;
  parts_ = parts;
  next_part_ = 0;
  unfinished_ = parts;
  ++generation_;
  work_ready_.notify_all();
  // The caller takes parts too, then waits for the stragglers.
  while (next_part_ < parts_) {
    const int part = next_part_++;
    lock.unlock();
    task(part);
    lock.lock();
    --unfinished_;
  }
  work_done_.wait(lock, [this] { return unfinished_ == 0; });
  task_ = nullptr;
}

void WorkPool::worker_loop() {
  uint64_t seen_generation = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stopping_ || (generation_ != seen_generation && next_part_ < parts_); });
    if (stopping_) return;
    seen_generation = generation_;
    while (task_ != nullptr && next_part_ < parts_) {
      const int part = next_part_++;
      const std::function<void(int)>* task = task_;
      lock.unlock();
      (*task)(part);
      lock.lock();
      if (--unfinished_ == 0) work_done_.notify_all();
    }
  }
}

IoThread::IoThread() {
  const WorkerSignals io_thread_takes_no_stop_signals;
  try {
    thread_ = std::thread([this] { loop(); });  // after every member it uses exists
  } catch (const std::system_error&) {
    inline_ = true;  // the system refused a thread: run the jobs on the caller's
  }
}

IoThread::~IoThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  posted_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IoThread::run(std::function<Status()>& job, std::unique_lock<std::mutex>& lock) {
  const bool skip = error_.has_value() || abandoned_;
  lock.unlock();
  Status status = skip ? Status::success() : job();
  lock.lock();
  if (!status && !error_) error_ = std::move(status).error();
  ++finished_count_;
  finished_.notify_all();
}

IoThread::Ticket IoThread::post(std::function<Status()> job) {
  std::unique_lock<std::mutex> lock(mutex_);
  const Ticket ticket = ++posted_count_;
  if (inline_) {
    run(job, lock);
    return ticket;
  }
  jobs_.push_back(std::move(job));
  posted_.notify_one();
  return ticket;
}

Status IoThread::wait(Ticket ticket) {
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [&] { return finished_count_ >= ticket; });
  if (error_) return *error_;
  return Status::success();
}

Status IoThread::wait_all() {
  Ticket last;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last = posted_count_;
  }
  return wait(last);
}

Status IoThread::failure() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) return *error_;
  return Status::success();
}

void IoThread::abandon() {
  std::lock_guard<std::mutex> lock(mutex_);
  abandoned_ = true;
}

void IoThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    posted_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything posted has run
    std::function<Status()> job = std::move(jobs_.front());
    jobs_.pop_front();
    run(job, lock);
  }
}

}  // namespace quant::convert_internal
