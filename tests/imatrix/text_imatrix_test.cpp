// Importance matrices from text, the fast parts: llama.cpp's decode and ubatch plan, the accumulator's
// mixture-of-experts and --in-file paths, and a table of bad inputs (each a clear error, before anything runs).
// The comparisons with llama-imatrix's own files are in llama_imatrix_slow_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "imatrix/decode_plan.h"
#include "quant/imatrix.h"
#include "quant/model_source.h"
#include "quant/text_dataset.h"
#include "test_data.h"

namespace quant {
namespace {

using testing::data_path;

std::string temp_file(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "text_imatrix_test_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = testing::read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// ---- llama-imatrix's batching ----

// n_seq and the batch size are what llama-imatrix logs ("computing over N chunks, n_ctx=C, batch_size=B,
// n_seq=S") for the reference runs of tests/data/README.md.
TEST(DecodePlan, ChunksPerDecodeAsLlamaImatrixLogsThem) {
  struct Case { int64_t n_ctx, n_seq, n_batch; };
  for (const Case c : {Case{64, 32, 2048}, Case{100, 20, 2000}, Case{128, 16, 2048}, Case{256, 8, 2048},
                       Case{300, 6, 1800}, Case{512, 4, 2048}, Case{682, 3, 2046}, Case{1100, 1, 1100},
                       Case{4096, 1, 2048}}) {
    auto plan = imatrix::decode_plan(c.n_ctx, 2048, 512);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->n_seq, c.n_seq) << c.n_ctx;
    EXPECT_EQ(plan->n_batch, c.n_batch) << c.n_ctx;
    EXPECT_EQ(plan->n_ubatch, 512) << c.n_ctx;
  }
  EXPECT_FALSE(imatrix::decode_plan(0, 2048, 512));
}

std::vector<std::vector<int64_t>> ubatch_list(int64_t n_ctx, int64_t seqs) {
  auto plan = imatrix::decode_plan(n_ctx, 2048, 512);
  std::vector<std::vector<int64_t>> out;
  for (const imatrix::Ubatch& u : imatrix::group_ubatches(*plan, seqs)) out.push_back({u.begin, u.end, u.seqs});
  return out;
}

// split_equal advances every sequence by n_ubatch / sequences tokens; split_simple cuts each decode batch into
// runs of n_ubatch (src/llama-batch.cpp).
TEST(DecodePlan, UbatchesFollowLlamaBatchSplits) {
  using U = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(ubatch_list(256, 8), (U{{0, 64, 8}, {64, 128, 8}, {128, 192, 8}, {192, 256, 8}}));
  EXPECT_EQ(ubatch_list(682, 3), (U{{0, 170, 3}, {170, 340, 3}, {340, 510, 3}, {510, 680, 3}, {680, 682, 3}}));
  EXPECT_EQ(ubatch_list(100, 7), (U{{0, 73, 7}, {73, 100, 7}}));
  EXPECT_EQ(ubatch_list(1100, 1), (U{{0, 512, 1}, {512, 1024, 1}, {1024, 1100, 1}}));
  // A chunk longer than the batch: two decodes of 2048 tokens, each in four ubatches, then 4 tokens.
  const U long_chunk = ubatch_list(4100, 1);
  ASSERT_EQ(long_chunk.size(), 9u);
  EXPECT_EQ(long_chunk.back(), (std::vector<int64_t>{4096, 4100, 1}));
  // More sequences than tokens in a ubatch: one token of each per ubatch.
  EXPECT_EQ(ubatch_list(4, 512).size(), 4u);
}

// ---- The accumulator ----

TEST(Accumulator, RunsOfOneBatchCountTogether) {
  const std::vector<float> rows(20 * 2, 1.5f);
  ImatrixAccumulator split, whole;
  const ImatrixAccumulator::RowRun runs[] = {{rows.data(), 9}, {rows.data() + 18, 11}};
  ASSERT_TRUE(*split.add_batch("w", 2, runs));  // 9 + 11 tokens: one batch of 20, over the 16-token rule
  ASSERT_TRUE(*whole.add_batch("w", 20, 2, rows.data()));
  EXPECT_EQ(split.sums().at("w").in_sum2, whole.sums().at("w").in_sum2);
  EXPECT_EQ(split.sums().at("w").counts, std::vector<int64_t>{20});
  const ImatrixAccumulator::RowRun small[] = {{rows.data(), 8}, {rows.data(), 7}};
  EXPECT_FALSE(*split.add_batch("w", 2, small));  // 15 tokens
}

// llama-imatrix's MUL_MAT_ID path: every (token, selected expert) adds the token's row to that expert.
TEST(Accumulator, ExpertBatchesCountPerExpert) {
  ImatrixAccumulator acc;
  // 3 tokens, 2 experts used of 4, the input shared by both (slots = 1): rows 1, 2, 3 (two features each).
  const std::vector<float> shared = {1, 1, 2, 2, 3, 3};
  const std::vector<int32_t> ids = {0, 2, 2, 3, 0, 2};
  ASSERT_TRUE(acc.add_expert_batch("w", 4, 2, 3, 1, shared.data(), 2, ids.data()));
  const ImatrixAccumulator::Sums& s = acc.sums().at("w");
  EXPECT_EQ(s.counts, (std::vector<int64_t>{2, 0, 3, 1}));
  EXPECT_EQ(s.in_sum2, (std::vector<float>{10, 10, 0, 0, 14, 14, 4, 4}));
  // One row per selected expert (slots = experts used): token t, slot k reads row t * 2 + k.
  ImatrixAccumulator per_slot;
  const std::vector<float> rows = {1, 0, 0, 1, 2, 0, 0, 2, 3, 0, 0, 3};
  ASSERT_TRUE(per_slot.add_expert_batch("w", 4, 2, 3, 2, rows.data(), 2, ids.data()));
  EXPECT_EQ(per_slot.sums().at("w").in_sum2, (std::vector<float>{1 + 9, 0, 0, 0, 4, 1 + 9, 0, 4}));
  // Ids out of range and shapes that change are errors naming the weight.
  const std::vector<int32_t> bad = {0, 4, 0, 0, 0, 0};
  const Status out_of_range = acc.add_expert_batch("w", 4, 2, 3, 1, shared.data(), 2, bad.data());
  ASSERT_FALSE(out_of_range);
  EXPECT_NE(out_of_range.error().message().find("'w'"), std::string::npos) << out_of_range.error().message();
  EXPECT_FALSE(acc.add_expert_batch("w", 8, 2, 3, 1, shared.data(), 2, ids.data()));
  // A dense batch for an expert weight is refused too.
  const std::vector<float> dense(16 * 2, 1.0f);
  EXPECT_FALSE(acc.add_batch("w", 16, 2, dense.data()));
}

ImportanceMatrix one_entry(ImatrixFormat format, std::vector<float> sums, std::vector<float> counts) {
  ImportanceMatrix m;
  m.format = format;
  ImportanceEntry e;
  e.n_expert = int64_t(counts.size());
  e.n_per_row = int64_t(sums.size() / counts.size());
  e.stored_sums = std::move(sums);
  e.stored_counts = std::move(counts);
  m.entries.emplace("w", std::move(e));
  return m;
}

// load_imatrix: GGUF sums and counts added as they are; .dat values and ncall times the chunk size.
TEST(Accumulator, MergeAddsFilesAsLlamaImatrixLoadsThem) {
  ImatrixAccumulator acc;
  ASSERT_TRUE(acc.merge(one_entry(ImatrixFormat::gguf, {4, 8}, {16}), 64, "a.gguf"));
  ASSERT_TRUE(acc.merge(one_entry(ImatrixFormat::dat, {0.5f, 1.0f}, {3}), 64, "b.dat"));
  const ImatrixAccumulator::Sums& s = acc.sums().at("w");
  EXPECT_EQ(s.in_sum2, (std::vector<float>{4 + 32, 8 + 64}));
  EXPECT_EQ(s.counts, std::vector<int64_t>{16 + 3 * 64});
  // A size that differs from what is held names the file and the entry.
  const Status mismatch = acc.merge(one_entry(ImatrixFormat::gguf, {1, 2, 3}, {1}), 64, "c.gguf");
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().file(), "c.gguf");
  EXPECT_EQ(mismatch.error().tensor(), "w");
  // Per-expert counts that are all equal collapse to one count when a dense batch comes (a dense weight of an
  // old 3-D imatrix); a single count is broadcast to the experts of an expert entry.
  ImatrixAccumulator dense;
  ASSERT_TRUE(dense.merge(one_entry(ImatrixFormat::gguf, {1, 1, 1, 1}, {16, 16}), 64, "old.gguf"));
  ASSERT_TRUE(*dense.add_batch("w", 16, 4, std::vector<float>(64, 1.0f).data()));
  EXPECT_EQ(dense.sums().at("w").counts, std::vector<int64_t>{32});
  EXPECT_EQ(dense.sums().at("w").in_sum2, std::vector<float>(4, 17.0f));
  ImatrixAccumulator broadcast;
  ASSERT_TRUE(broadcast.merge(one_entry(ImatrixFormat::gguf, {1, 1}, {5}), 64, "x.gguf"));
  ASSERT_TRUE(broadcast.merge(one_entry(ImatrixFormat::gguf, {1, 1}, {5}), 64, "y.gguf"));
  EXPECT_EQ(broadcast.sums().at("w").counts, std::vector<int64_t>{10});
}

// GGUF keeps per-expert sums and counts as [n_per_row, n_expert] and [1, n_expert]; .dat stores 1 x ncall for
// an expert without tokens.
TEST(Accumulator, ExpertSumsWriteAndReadBack) {
  ImatrixAccumulator acc;
  const std::vector<float> shared = {1, 1, 2, 2, 3, 3};
  const std::vector<int32_t> ids = {0, 2, 2, 3, 0, 2};
  ASSERT_TRUE(acc.add_expert_batch("w", 4, 2, 3, 1, shared.data(), 2, ids.data()));
  const ImatrixMetadata metadata{{"t.txt"}, 1, 2};
  const std::string gguf = ::testing::TempDir() + "text_imatrix_test_experts.gguf";
  ASSERT_TRUE(write_imatrix_gguf(gguf, acc.sums(), metadata));
  auto read = read_imatrix(gguf);
  ASSERT_TRUE(read) << read.error().message();
  const ImportanceEntry& e = read->entries.at("w");
  EXPECT_EQ(e.n_per_row, 2);
  EXPECT_EQ(e.n_expert, 4);
  EXPECT_EQ(e.stored_counts, (std::vector<float>{2, 0, 3, 1}));
  EXPECT_EQ(e.values, (std::vector<float>{5, 5, 1, 1, 14.0f / 3, 14.0f / 3, 4, 4}));
  const std::string dat = ::testing::TempDir() + "text_imatrix_test_experts.dat";
  ASSERT_TRUE(write_imatrix_dat(dat, acc.sums(), metadata));
  auto legacy = read_imatrix(dat);
  ASSERT_TRUE(legacy) << legacy.error().message();
  // ncall = ceil(3 / 2) = 2; v = (sum / count) * 2, read back as v / 2.
  EXPECT_EQ(legacy->entries.at("w").stored_counts, std::vector<float>{2});
  EXPECT_EQ(legacy->entries.at("w").values, (std::vector<float>{5, 5, 1, 1, 14.0f / 3, 14.0f / 3, 4, 4}));
  std::remove(gguf.c_str());
  std::remove(dat.c_str());
}

// ---- Calibration text files ----

TEST(CalibrationText, PlainTextIsReadAsLlamaCppReadsAPromptFile) {
  auto text = read_calibration_text(temp_file("plain.txt", "one\ntwo\n\n"));
  ASSERT_TRUE(text) << text.error().message();
  EXPECT_EQ(text->text, "one\ntwo\n");  // one trailing newline removed, no more
  EXPECT_EQ(text->format, TextFormat::plain);
  EXPECT_EQ(text->documents, 1);
}

TEST(CalibrationText, JsonlDocumentsAndChatsAreFlattened) {
  const std::string jsonl =
      "{\"text\": \"first document\", \"id\": 7}\n"
      "\n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": "
      "[{\"type\": \"text\", \"text\": \"hi\"}, {\"type\": \"image_url\", \"image_url\": {}}]}]}\r\n"
      "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n"
      "{\"text\": \"\"}\n";
  auto text = read_calibration_text(temp_file("chat.jsonl", jsonl));
  ASSERT_TRUE(text) << text.error().message();
  EXPECT_EQ(text->format, TextFormat::jsonl);
  EXPECT_EQ(text->documents, 3);
  EXPECT_EQ(text->text, "first document\n\nbe brief\n\nhi\n\nq\n\na");
}

// One row per class of damage: the error, its kind and where it points.
TEST(CalibrationText, BadFilesAreClearErrors) {
  struct Case {
    const char* name;
    std::string contents;
    ErrorKind kind;
    const char* message;
    int64_t offset;  // -1: none
  };
  const Case cases[] = {
      {"empty.txt", "", ErrorKind::invalid_input, "the text is empty", -1},
      {"newline.txt", "\n", ErrorKind::invalid_input, "the text is empty", -1},
      {"binary.txt", std::string("GGUF\x03\0\0\0", 8), ErrorKind::invalid_input, "NUL byte", 5},
      {"latin1.txt", "caf\xe9 au lait", ErrorKind::invalid_input, "byte 0xe9 is not valid UTF-8", 3},
      {"overlong.txt", "a\xc0\xaf" "b", ErrorKind::invalid_input, "byte 0xc0", 1},
      {"surrogate.txt", "\xed\xa0\x80", ErrorKind::invalid_input, "byte 0xed", 0},
      {"bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": ", ErrorKind::invalid_input, "line 2: not valid JSON", -1},
      {"nofield.jsonl", "{\"prompt\": \"x\"}", ErrorKind::invalid_input, "line 1: no \"text\", \"messages\"", -1},
      {"number.jsonl", "{\"text\": 3}", ErrorKind::invalid_input, "line 1: \"text\" must be a string", -1},
      {"array.jsonl", "[\"text\"]", ErrorKind::invalid_input, "line 1: expected a JSON object", -1},
      {"turns.jsonl", "{\"messages\": {\"role\": \"user\"}}", ErrorKind::invalid_input, "must be a list of turns", -1},
      {"nul.jsonl", "{\"text\": \"a\\u0000b\"}", ErrorKind::invalid_input, "line 1: NUL byte", -1},
      {"blank.jsonl", "\n\n{\"text\": \"\"}\n", ErrorKind::invalid_input, "no text in 3 lines", -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = temp_file(c.name, c.contents);
    auto text = read_calibration_text(path);
    ASSERT_FALSE(text);
    EXPECT_EQ(text.error().kind(), c.kind);
    EXPECT_EQ(text.error().file(), path);
    EXPECT_NE(text.error().message().find(c.message), std::string::npos) << text.error().message();
    if (c.offset >= 0) {
      EXPECT_EQ(text.error().offset(), std::optional<uint64_t>(c.offset));
    }
  }
  auto missing = read_calibration_text("/nonexistent/calib.txt");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::io);
}

// ---- imatrix_from_text: bad input is refused before the model runs ----

class TextImatrixOnStories : public ::testing::Test {
 protected:
  void SetUp() override {
    auto source = open_model(data_path("gguf/stories260K.gguf"));
    ASSERT_TRUE(source) << source.error().message();
    source_ = std::move(*source);
  }
  Result<ImatrixCollection> run(TextImatrixOptions options) { return imatrix_from_text(*source_, options); }
  std::unique_ptr<ModelSource> source_;
};

TEST_F(TextImatrixOnStories, BadInputsAreClearErrors) {
  struct Case {
    const char* name;
    std::function<void(TextImatrixOptions&)> set;
    ErrorKind kind;
    const char* message;
  };
  const std::string calib = data_path("text/calib.txt");
  const std::string short_text = temp_file("short.txt", read_text(calib).substr(0, 300));
  const Case cases[] = {
      {"empty text", [&](auto& o) { o.text_path = temp_file("empty.txt", ""); }, ErrorKind::invalid_input,
       "the text is empty"},
      {"binary text", [&](auto& o) { o.text_path = data_path("gguf/stories260K.gguf"); }, ErrorKind::invalid_input,
       "NUL byte: this looks like a binary file"},
      // About 150 tokens: fewer than two chunks of 128.
      {"text under two chunks", [&](auto& o) { o.text_path = short_text; }, ErrorKind::impossible,
       "a context of 128 needs at least 256 (two chunks"},
      {"context beyond training", [&](auto& o) { o.n_ctx = 4096; }, ErrorKind::impossible,
       "a context of 4096 tokens is beyond the 2048 the model was trained on"},
      {"in-file of another model", [&](auto& o) { o.in_files = {data_path("imatrix/tiny-llama.imatrix.gguf")}; },
       ErrorKind::invalid_input, "was made for another model"},
      {"zero chunks", [&](auto& o) { o.max_chunks = 0; }, ErrorKind::usage, "chunk limit 0"},
      {"zero context", [&](auto& o) { o.n_ctx = 0; }, ErrorKind::usage, "must each be at least 1"},
      {"no text", [&](auto& o) { o.text_path.clear(); }, ErrorKind::usage, "no calibration text"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TextImatrixOptions options;
    options.text_path = calib;
    options.n_ctx = 128;
    c.set(options);
    auto result = run(options);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind(), c.kind) << result.error().message();
    EXPECT_NE(result.error().message().find(c.message), std::string::npos) << result.error().message();
  }
}

// An in-file is checked entry by entry against the model's weights: a .dat entry of another row length, and an
// entry naming a weight the model does not have, name the file and the entry.
TEST_F(TextImatrixOnStories, InFilesOfAnotherModelNameTheEntry) {
  ImatrixAccumulator acc;
  ASSERT_TRUE(*acc.add_batch("blk.0.attn_q.weight", 16, 3, std::vector<float>(48, 1.0f).data()));
  const std::string dat = ::testing::TempDir() + "text_imatrix_test_rows.dat";
  ASSERT_TRUE(write_imatrix_dat(dat, acc.sums(), {{"x"}, 1, 16}));
  TextImatrixOptions options;
  options.text_path = data_path("text/calib.txt");
  options.n_ctx = 128;
  options.in_files = {dat};
  auto result = run(options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().file(), dat);
  EXPECT_EQ(result.error().tensor(), "blk.0.attn_q.weight");
  EXPECT_NE(result.error().reason().find("3 values (3 x 1 experts) for a weight of 64 columns"), std::string::npos)
      << result.error().message();

  ImatrixAccumulator other;
  ASSERT_TRUE(*other.add_batch("blk.9.attn_q.weight", 16, 64, std::vector<float>(16 * 64, 1.0f).data()));
  const std::string gguf = ::testing::TempDir() + "text_imatrix_test_layers.gguf";
  ASSERT_TRUE(write_imatrix_gguf(gguf, other.sums(), {{"x"}, 1, 16}));
  options.in_files = {gguf};
  result = run(options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().tensor(), "blk.9.attn_q.weight");
  EXPECT_NE(result.error().reason().find("no weight of this name in the model"), std::string::npos);
  std::remove(dat.c_str());
  std::remove(gguf.c_str());
}

// The same text as plain text and as one JSONL document gives the same tokens, so the same sums bit for bit; the
// metadata is llama-imatrix's (text path as given, chunk size = context, chunk count = largest count / context).
TEST_F(TextImatrixOnStories, JsonlDocumentEqualsThePlainText) {
  const std::string calib = data_path("text/calib.txt");
  std::string text = read_text(calib);
  text.pop_back();  // the plain reader drops the trailing newline
  std::string escaped;
  for (const char c : text) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  const std::string jsonl = temp_file("calib.jsonl", "{\"text\": \"" + escaped + "\"}\n");
  TextImatrixOptions options;
  options.n_ctx = 128;
  options.max_chunks = 4;
  options.text_path = calib;
  auto plain = run(options);
  ASSERT_TRUE(plain) << plain.error().message();
  options.text_path = jsonl;
  auto documents = run(options);
  ASSERT_TRUE(documents) << documents.error().message();
  EXPECT_EQ(documents->text->text_format, "jsonl");
  EXPECT_EQ(documents->text->text_tokens, plain->text->text_tokens);
  ASSERT_EQ(documents->accumulator.sums().size(), plain->accumulator.sums().size());
  for (const auto& [name, sums] : plain->accumulator.sums()) {
    EXPECT_EQ(documents->accumulator.sums().at(name).in_sum2, sums.in_sum2) << name;
    EXPECT_EQ(sums.counts, std::vector<int64_t>{4 * 128}) << name;
  }
  EXPECT_EQ(plain->metadata.datasets, std::vector<std::string>{calib});
  EXPECT_EQ(plain->metadata.chunk_size, 128);
  EXPECT_EQ(plain->metadata.chunk_count, 4);
  EXPECT_EQ(plain->accumulator.sums().count("output.weight"), 0u);  // only with process_output
  EXPECT_EQ(plain->text->running_perplexity.size(), 4u);
  ASSERT_TRUE(plain->text->perplexity);
  EXPECT_DOUBLE_EQ(*plain->text->perplexity, plain->text->running_perplexity.back());
}

}  // namespace
}  // namespace quant
