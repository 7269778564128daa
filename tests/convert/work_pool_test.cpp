// The conversion's threads (src/convert/work_pool.h): a thread count far beyond the machine is capped, and a thread
// the system refuses makes the pool smaller (an I/O thread runs its jobs inline) instead of ending the process.
#include "convert/work_pool.h"

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <thread>
#include <vector>

#include "quant/convert.h"
#include "test_data.h"
#include "test_files.h"

namespace quant::convert_internal {
namespace {

// Runs `parts` tasks and checks each ran exactly once.
bool runs_every_part_once(WorkPool& pool, int parts) {
  std::vector<std::atomic<int>> seen(static_cast<size_t>(parts));
  pool.run(parts, [&](int part) { seen[size_t(part)]++; });
  for (const auto& count : seen) {
    if (count.load() != 1) return false;
  }
  return true;
}

TEST(WorkPool, AThreadCountFarBeyondTheMachineIsCapped) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  for (const int asked : {100000, 1 << 30}) {
    WorkPool pool(asked);
    EXPECT_GE(pool.size(), 1);
    EXPECT_LE(pool.size(), cores * WorkPool::kMaxThreadsPerCore);
    EXPECT_TRUE(runs_every_part_once(pool, 1000));
  }
  WorkPool two(2);
  EXPECT_EQ(two.size(), std::min(2, cores * WorkPool::kMaxThreadsPerCore));
}

// Makes every later thread creation of this process fail with EAGAIN, as a process or memory limit would: a
// seccomp filter on clone and clone3 (pthread_create's system calls).
bool refuse_new_threads() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAGAIN & SECCOMP_RET_DATA)),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// In a child that cannot start a thread, the pool is the caller alone and the I/O threads run their jobs inline:
// same results, and a whole conversion writes the same bytes as with threads.
TEST(WorkPool, RefusedThreadsMakeThePoolSmallerNotFatal) {
  testing::TempDir dir("quant-work-pool");
  ConvertRequest request;
  request.input = testing::data_path("gguf/stories260K-rows256-F32.gguf");
  request.targets = {{"Q8_0", dir / "threaded.gguf"}, {"Q4_K_M", dir / "threaded-q4km.gguf"}};
  request.threads = 4;
  ASSERT_TRUE(convert(request));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!refuse_new_threads()) ::_exit(10);
    WorkPool pool(8);
    if (pool.size() != 1) ::_exit(11);
    if (!runs_every_part_once(pool, 100)) ::_exit(12);
    IoThread io;
    int done = 0;
    const IoThread::Ticket first = io.post([&]() -> Status {
      ++done;
      return Status::success();
    });
    if (!io.wait(first) || done != 1) ::_exit(13);
    io.post([&]() -> Status { return usage_error("the second job fails"); });
    const IoThread::Ticket third = io.post([&]() -> Status {
      ++done;  // skipped: an earlier job failed
      return Status::success();
    });
    if (io.wait(third) || done != 1) ::_exit(14);
    ConvertRequest alone = request;
    alone.targets = {{"Q8_0", dir / "alone.gguf"}, {"Q4_K_M", dir / "alone-q4km.gguf"}};
    auto reports = convert(alone);
    if (!reports || reports->front().threads != 1) ::_exit(15);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child ended by a signal: " << WTERMSIG(status);
  ASSERT_NE(WEXITSTATUS(status), 10) << "seccomp is not available here";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(testing::read_bytes(dir / "alone.gguf"), testing::read_bytes(dir / "threaded.gguf"));
  EXPECT_EQ(testing::read_bytes(dir / "alone-q4km.gguf"), testing::read_bytes(dir / "threaded-q4km.gguf"));
}

}  // namespace
}  // namespace quant::convert_internal
