// The scale-out examples (docs/scale-out.md, examples/scale-out/), tested by simulation: for each batch engine,
// three local processes run examples/scale-out/quantize-shard.sh at once, each with the environment that engine
// gives its jobs (a Slurm array task, a Kubernetes Indexed Job pod, a GitHub Actions matrix job). Their shards
// must be the same bytes whichever engine ran them, load as one model, and merge into the single run's tensors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cli/cli_harness.h"
#include "quant/gguf.h"
#include "quant/split.h"
#include "test_data.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using quant::testing::data_path;
using quant::testing::file_sha256;
using quant::testing::read_text;
using quant::testing::run_quantize;
using quant::testing::ScratchDir;

const std::string kScript = std::string(QUANT_TEST_DATA_DIR) + "/../../examples/scale-out/quantize-shard.sh";
constexpr int kShards = 3;

// Starts `bash script args` with `env` added to this process's environment (minus the engines' own variables, so
// the host cannot leak a shard index into the test), output to files in `logs`.
pid_t start_job(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log) {
  std::vector<std::string> argv_strings = {"/bin/bash", kScript};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings = env;
  env_strings.push_back(std::string("QUANTIZE=") + QUANTIZE_BINARY);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool engine = false;
    for (const char* name : {"SHARD_", "SLURM_", "JOB_COMPLETION_INDEX", "QUANTIZE="}) {
      engine = engine || entry.rfind(name, 0) == 0;
    }
    if (!engine) env_strings.push_back(entry);
  }
  std::vector<char*> argv, envp;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// What each engine sets in job i (1-based) of kShards.
std::vector<std::string> engine_env(const std::string& engine, int i) {
  if (engine == "slurm") {  // --array=1-3
    return {"SLURM_ARRAY_TASK_ID=" + std::to_string(i), "SLURM_ARRAY_TASK_MIN=1",
            "SLURM_ARRAY_TASK_COUNT=" + std::to_string(kShards), "SLURM_ARRAY_JOB_ID=4242"};
  }
  if (engine == "slurm-from-zero") {  // --array=0-2
    return {"SLURM_ARRAY_TASK_ID=" + std::to_string(i - 1), "SLURM_ARRAY_TASK_MIN=0",
            "SLURM_ARRAY_TASK_COUNT=" + std::to_string(kShards)};
  }
  if (engine == "kubernetes") {  // completionMode: Indexed, SHARD_COUNT set in the pod spec
    return {"JOB_COMPLETION_INDEX=" + std::to_string(i - 1), "SHARD_COUNT=" + std::to_string(kShards)};
  }
  // GitHub Actions: SHARD_INDEX from ${{ matrix.shard }}, SHARD_COUNT from ${{ strategy.job-total }}.
  return {"SHARD_INDEX=" + std::to_string(i), "SHARD_COUNT=" + std::to_string(kShards)};
}

std::map<std::string, std::vector<uint8_t>> tensor_data(const std::string& path) {
  std::map<std::string, std::vector<uint8_t>> out;
  auto model = quant::open_model(path);
  if (!model) throw std::runtime_error(model.error().message());
  for (const quant::TensorInfo& t : (*model)->tensors()) out[t.name] = *(*model)->read_tensor_data(t);
  return out;
}

TEST(ScaleOut, EveryEnginesJobsMakeTheSameShardsAndTheSingleRunsModel) {
  ScratchDir dir;
  const std::string model = data_path("models/tiny-llama-f16.gguf");
  ASSERT_EQ(run_quantize({model, "--to", "Q4_K_M", "-o", dir / "single.gguf", "-q"}).exit_code, 0);
  const auto single = tensor_data(dir / "single.gguf");

  std::map<std::string, std::string> first_engine_shas;  // shard file name -> sha256
  for (const std::string engine : {"slurm", "slurm-from-zero", "kubernetes", "github-actions"}) {
    SCOPED_TRACE(engine);
    const std::string out = dir / engine;  // the script makes the folder
    std::vector<pid_t> jobs;
    for (int i = 1; i <= kShards; ++i) {
      jobs.push_back(start_job({model, "Q4_K_M", out + "/tl-Q4_K_M.gguf", "--threads", "1"}, engine_env(engine, i),
                               dir / (engine + "-" + std::to_string(i) + ".log")));
    }
    for (int i = 1; i <= kShards; ++i) {
      const int status = wait_for(jobs[size_t(i - 1)]);
      const std::string log = read_text(dir / (engine + "-" + std::to_string(i) + ".log"));
      ASSERT_EQ(status, 0) << log;
      // The job printed its plan first: its shard's file.
      EXPECT_NE(log.find(quant::split_path("tl-Q4_K_M", uint32_t(i - 1), kShards)), std::string::npos) << log;
    }
    std::map<std::string, std::string> shas;
    for (uint32_t i = 0; i < kShards; ++i) {
      const std::string name = quant::split_path("tl-Q4_K_M", i, kShards);
      shas[name] = file_sha256(out + "/" + name);
    }
    if (first_engine_shas.empty()) first_engine_shas = shas;
    EXPECT_EQ(shas, first_engine_shas);  // the same bytes whichever engine ran the jobs

    // One model from its shards, and merged into one file: the single run's tensors.
    EXPECT_EQ(tensor_data(out + "/" + quant::split_path("tl-Q4_K_M", 0, kShards)), single);
    ASSERT_EQ(run_quantize({"merge", out + "/" + quant::split_path("tl-Q4_K_M", 2, kShards), out + "/merged.gguf", "-q"})
                  .exit_code,
              0);
    EXPECT_EQ(tensor_data(out + "/merged.gguf"), single);
  }
}

TEST(ScaleOut, AJobWithoutAShardIndexStops) {
  ScratchDir dir;
  const pid_t job = start_job({data_path("models/tiny-llama-f16.gguf"), "Q4_K_M", dir / "x.gguf"}, {}, dir / "log");
  EXPECT_EQ(wait_for(job), 2);
  EXPECT_NE(read_text(dir / "log").find("no shard index"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "x-00001-of-00003.gguf"));
}

TEST(ScaleOut, TheExamplesCallTheScript) {
  // The simulated script is the one the examples run, with the model, type and output as its arguments.
  for (const char* example : {"slurm.sbatch", "k8s-indexed-job.yaml", "github-actions.yml", "Dockerfile"}) {
    const std::string text = read_text(std::string(QUANT_TEST_DATA_DIR) + "/../../examples/scale-out/" + example);
    EXPECT_NE(text.find("quantize-shard.sh"), std::string::npos) << example;
  }
}

}  // namespace
