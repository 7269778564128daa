// The conversion's threads: a WorkPool of compute threads that run one parallel loop at a time, and IoThreads
// (one reading ahead, one writing behind) that run their jobs in the order asked, so file I/O overlaps the
// computing. Work is split into contiguous ranges in a fixed way, so results that are merged in range order do
// not depend on the number of threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "quant/error.h"

namespace quant::convert_internal {

class WorkPool {
 public:
  // threads <= 0: all cores. At most kMaxThreadsPerCore per hardware thread are started, and a thread the
  // system refuses (process or memory limits) is one fewer: the pool works with the ones it got.
  explicit WorkPool(int threads);
  static constexpr int kMaxThreadsPerCore = 4;
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

// One background thread running jobs strictly in the order they were posted. After a job fails, the later
// ones are skipped, and every wait reports that first error. A job may wait on another IoThread's ticket
// provided that thread never waits back on this one. When the system refuses the thread, post() runs each job
// at once on the caller's thread: slower, the same results.
class IoThread {
 public:
  using Ticket = uint64_t;

  IoThread();
  ~IoThread();  // runs (or skips, after an error) what was posted, then stops
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Queues a job; the ticket names it for wait().
  Ticket post(std::function<Status()> job);
  // Blocks until the job `ticket` and every job posted before it have finished; the first error so far, if any.
  Status wait(Ticket ticket);
  // Blocks until every posted job has finished.
  Status wait_all();
  // The first error so far, without waiting.
  Status failure();
  // Skips every job not yet started (they still count as finished, so waits return); for a caller that gives
  // up after an error and will discard what the jobs produce.
  void abandon();

 private:
  void loop();
  // Runs one job (or skips it after an error or abandon()) and records its outcome; `lock` holds mutex_ before
  // and after, not during the job.
  void run(std::function<Status()>& job, std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;
  std::condition_variable posted_, finished_;
  std::deque<std::function<Status()>> jobs_;
  Ticket posted_count_ = 0;    // tickets are 1, 2, ... in posting order
  Ticket finished_count_ = 0;  // jobs 1..finished_count_ are done
  std::optional<Error> error_;
  bool abandoned_ = false;
  bool stopping_ = false;
  bool inline_ = false;  // no thread: jobs run inside post()
  std::thread thread_;
};

}  // namespace quant::convert_internal
