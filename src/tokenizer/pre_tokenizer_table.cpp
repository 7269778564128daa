// The table of llama.cpp's BPE pre-tokenizers (llama-vocab.cpp at 34af94c): which tokenizer.ggml.pre values
// select which regex list, and the flags llama.cpp sets with them. The regexes are llama.cpp's own text (most
// came from the models' tokenizer.json, some adapted by llama.cpp); a regex's text also decides whether
// llama.cpp runs a hand-written splitter for it (custom_splits.h).
#include <array>

#include "tokenizer/pre_tokenizer.h"

namespace quant::text {
namespace {

// clang-format off
constexpr std::string_view kDefaultPunctuation = "[\\p{P}\\$\\+<=>\\^~\\|]+";
constexpr std::string_view kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr std::string_view kNumberRuns = "\\p{N}+";
constexpr std::string_view kThreeAsciiDigits = "[0-9][0-9][0-9]";
constexpr std::string_view kLlama3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kCrOrLf = "[\r\n]";
constexpr std::string_view kDeepseekLlmLetters = "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
constexpr std::string_view kDeepseekLlmPunctuation = "\\s?[!-/:-~！-／：-～‘-‟　-。]+";
constexpr std::string_view kTrailingWhitespace = "\\s+$";
constexpr std::string_view kDeepseekCjk = "[一-龥ࠀ-一가-퟿]+";
constexpr std::string_view kDeepseekCoderLetters = "\\s?\\p{L}+";
constexpr std::string_view kDeepseekCoderPunctuation = "\\s?\\p{P}+";
constexpr std::string_view kSingleNumber = "\\p{N}";
constexpr std::string_view kNumbersUpToThree = "\\p{N}{1,3}";
constexpr std::string_view kDeepseekV3Cjk = "[一-龥぀-ゟ゠-ヿ]+";
constexpr std::string_view kDeepseekV3Words = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kYoutuCjk = "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+";
constexpr std::string_view kYoutuWords = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kFalconPunctuation = "[\\p{P}\\$\\+<=>\\^~\\|`]+";
constexpr std::string_view kJais2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}";
constexpr std::string_view kNewlineRuns = "[^\\n]+|[\\n]+";
constexpr std::string_view kNonWhitespaceRuns = "\\S+";
constexpr std::string_view kQwen2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen35 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kBloom = " ?[^(\\s|.,!?…。，、।۔،)]+";
constexpr std::string_view kTekken = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kExaoneMoe = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
constexpr std::string_view kChameleonSentinel = "<sentinel:[0-9]+>";
constexpr std::string_view kChameleonImage = "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z";
constexpr std::string_view kChameleonSpacing = "([\\t\\n]|    |  )";
constexpr std::string_view kChameleonPunctuation = "[\\p{P}!-/:-@\\[-`{-~]";
constexpr std::string_view kGpt4o = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kGraniteEmbMulti = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kTinyAyaDigits = "\\d{1,3}(?=(?:\\d{3})*\\b)";
constexpr std::string_view kTinyAyaWords = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kSuperbpeThousands = "(?=(\\d{3})+(?!\\d))";
constexpr std::string_view kBailingMoe = "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
constexpr std::string_view kSeedCoder = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kKimiK2Han = "\\p{Han}+";
constexpr std::string_view kAfmoeDigits = "\\p{AFMoE_digits}";
constexpr std::string_view kAfmoeCjk = "[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+";
constexpr std::string_view kAfmoeWords = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kMinicpm5 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const std::vector<PreTokenizerSpec>& pre_tokenizer_table() {
  static const std::vector<PreTokenizerSpec> table = {
      {.type = "default",
       .names = {"default"},
       .regexes = {kDefaultPunctuation, kGpt2, kNumberRuns, kThreeAsciiDigits}},
      {.type = "llama3",
       .names = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
       .regexes = {kLlama3},
       .ignore_merges = true, .add_bos = true},
      {.type = "deepseek-llm",
       .names = {"deepseek-llm"},
       .regexes = {kCrOrLf, kDeepseekLlmLetters, kDeepseekLlmPunctuation, kTrailingWhitespace, kDeepseekCjk, kNumberRuns}},
      {.type = "deepseek-coder",
       .names = {"deepseek-coder"},
       .regexes = {kCrOrLf, kDeepseekCoderLetters, kDeepseekCoderPunctuation, kDeepseekCjk, kSingleNumber}},
      {.type = "deepseek3-llm",
       .names = {"deepseek-v3"},
       .regexes = {kNumbersUpToThree, kDeepseekV3Cjk, kDeepseekV3Words}},
      {.type = "youtu",
       .names = {"youtu"},
       .regexes = {kYoutuCjk, kYoutuWords},
       .ignore_merges = true},
      {.type = "falcon",
       .names = {"falcon"},
       .regexes = {kFalconPunctuation, kGpt2, kThreeAsciiDigits}},
      {.type = "mpt",
       .names = {"mpt"},
       .regexes = {kGpt2}},
      {.type = "starcoder",
       .names = {"starcoder"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "gpt2",
       .names = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "exaone4"},
       .regexes = {kGpt2}},
      {.type = "gpt2",
       .names = {"jina-v1-en", "jina-v2-code", "roberta-bpe"},
       .regexes = {kGpt2},
       .add_sep = true},
      {.type = "jais2",
       .names = {"jais-2"},
       .regexes = {kJais2}},
      {.type = "gemma4",
       .names = {"gemma4", "granite-embed-multi-311m"},
       .regexes = {kNewlineRuns},
       .escape_whitespaces = true, .byte_encode = false},
      {.type = "sarvam-moe",
       .names = {"sarvam-moe"},
       .regexes = {kNewlineRuns},
       .escape_whitespaces = true, .byte_encode = false},
      {.type = "whitespace",
       .names = {"whitespace"},
       .regexes = {kNonWhitespaceRuns},
       .byte_encode = false, .lowercase_default_off = true},
      {.type = "refact",
       .names = {"refact"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "command-r",
       .names = {"command-r"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "qwen2",
       .names = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"},
       .regexes = {kQwen2}},
      {.type = "qwen35",
       .names = {"qwen35"},
       .regexes = {kQwen35}},
      {.type = "stablelm2",
       .names = {"stablelm2"},
       .regexes = {kQwen2}},
      {.type = "olmo",
       .names = {"olmo"},
       .regexes = {kGpt2}},
      {.type = "dbrx",
       .names = {"dbrx"},
       .regexes = {kLlama3}},
      {.type = "smaug",
       .names = {"smaug-bpe"},
       .regexes = {kLlama3}},
      {.type = "poro",
       .names = {"poro-chat"},
       .regexes = {kBloom}},
      {.type = "chatglm4",
       .names = {"glm4", "chatglm-bpe"},
       .regexes = {kLlama3},
       .no_bos = true},
      {.type = "viking",
       .names = {"viking"},
       .regexes = {kBloom, kSingleNumber}},
      {.type = "jais",
       .names = {"jais"},
       .regexes = {kGpt2}},
      {.type = "tekken",
       .names = {"tekken"},
       .regexes = {kTekken},
       .ignore_merges = true, .add_bos = true},
      {.type = "smollm",
       .names = {"smollm"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "codeshell",
       .names = {"codeshell"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "bloom",
       .names = {"bloom"},
       .regexes = {kBloom}},
      {.type = "gpt3-finnish",
       .names = {"gpt3-finnish"},
       .regexes = {kBloom}},
      {.type = "exaone",
       .names = {"exaone"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "exaone-moe",
       .names = {"exaone-moe"},
       .regexes = {kExaoneMoe}},
      {.type = "chameleon",
       .names = {"chameleon"},
       .regexes = {kChameleonSentinel, kChameleonImage, kChameleonSpacing, kSingleNumber, kChameleonPunctuation, kGpt2},
       .add_bos = true},
      {.type = "minerva",
       .names = {"minerva-7b"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "gpt4o",
       .names = {"gpt-4o", "llama4", "kanana2", "talkie"},
       .regexes = {kGpt4o}},
      {.type = "granite-emb-multi",
       .names = {"granite-embed-multi-97m"},
       .regexes = {kGraniteEmbMulti},
       .ignore_merges = true},
      {.type = "tiny-aya",
       .names = {"tiny_aya", "cohere2moe"},
       .regexes = {kTinyAyaDigits, kTinyAyaWords}},
      {.type = "superbpe",
       .names = {"superbpe"},
       .regexes = {kNumberRuns, kSuperbpeThousands}},
      {.type = "trillion",
       .names = {"trillion"},
       .regexes = {kGpt2}},
      {.type = "granite-docling",
       .names = {"granite-docling"},
       .regexes = {kGpt2}},
      {.type = "bailingmoe",
       .names = {"bailingmoe", "bailingmoe2", "llada-moe"},
       .regexes = {kBailingMoe}},
      {.type = "seed-coder",
       .names = {"seed-coder"},
       .regexes = {kSeedCoder}},
      {.type = "hunyuan",
       .names = {"hunyuan"},
       .regexes = {kQwen2}},
      {.type = "hunyuan-dense",
       .names = {"hunyuan-dense"},
       .regexes = {kNumbersUpToThree, kDeepseekV3Cjk, kDeepseekV3Words}},
      {.type = "joyai-llm",
       .names = {"joyai-llm"},
       .regexes = {kNumbersUpToThree, kDeepseekV3Cjk, kDeepseekV3Words}},
      {.type = "kimi-k2",
       .names = {"kimi-k2"},
       .regexes = {kKimiK2Han}},
      {.type = "grok-2",
       .names = {"grok-2"},
       .regexes = {kQwen2}},
      {.type = "afmoe",
       .names = {"afmoe"},
       .regexes = {kAfmoeDigits, kAfmoeCjk, kAfmoeWords}},
      {.type = "laguna",
       .names = {"laguna"},
       .regexes = {kNewlineRuns, kQwen2}},
      {.type = "minimax-m2",
       .names = {"minimax-m2"},
       .regexes = {kGpt4o}},
      {.type = "solar-open",
       .names = {"solar-open"},
       .regexes = {kQwen2}},
      {.type = "mellum2",
       .names = {"mellum2"},
       .regexes = {kSingleNumber, kGpt2}},
      {.type = "minicpm5",
       .names = {"minicpm5"},
       .regexes = {kNumbersUpToThree, kMinicpm5},
       .ignore_merges = true},  };
  return table;
}
// clang-format on

}  // namespace

const PreTokenizerSpec* find_pre_tokenizer(std::string_view name) {
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) {
    for (const std::string_view candidate : spec.names) {
      if (candidate == name) return &spec;
    }
  }
  return nullptr;
}

std::vector<std::string_view> pre_tokenizer_names() {
  std::vector<std::string_view> names;
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) names.insert(names.end(), spec.names.begin(), spec.names.end());
  return names;
}

}  // namespace quant::text
