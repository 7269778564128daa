#!/usr/bin/python3
"""Small Hugging Face checkpoints whose only tokenizer is a GPT-2 style BPE tokenizer.json, and llama.cpp's
conversions of them.

usage: make_bpe_checkpoints.py OUT_DIR VOCAB_DIR [--convert HFREF_DIR LLAMA_CPP_DIR]

VOCAB_DIR holds llama.cpp's vocabulary files (ggml-vocab-gpt-2.gguf from ../shared/gguf/vocab; the cases on
models/ggml-vocab-{deepseek-coder,starcoder}.gguf were checked locally and are not committed, and a case whose file
is not in VOCAB_DIR is skipped): real
vocabularies of models the converter knows by the hash of its fixed text. Each checkpoint's tokenizer.json keeps,
at their real ids, only the tokens that are substrings of that text in GPT-2's byte-level alphabet, the merges
among them and the added tokens: that tokenizes the text exactly as the full vocabulary does (every merge that
can fire inside a substring of the text is kept, in rank order), so the converter's hash and its name for the
pre-tokenizer are the real model's, while the files stay small. The pre-tokenizer, normalizer and post-processor
are the real models' (as their tokenizer.json files spell them).

Writes OUT_DIR/bpe-<case>/ (config.json, tokenizer.json, tokenizer_config.json, model.safetensors.gz: weights of
a few distinct values so the file compresses), and the variants' tokenizer.json files
(OUT_DIR/bpe-variants/<variant>.tokenizer.json: pre-tokenizers of models whose vocabularies are not at hand,
run on the gpt-2 case's vocabulary; no known hash). With --convert it runs llama.cpp's unchanged
convert_hf_to_gguf.py (through HFREF_DIR/convert.py, with PYTHONPATH=<this folder>/bpe_shim, whose
transformers.AutoTokenizer is the tokenizers library's Node.js binding) and writes OUT_DIR/bpe-<case>.<outtype>
.gguf.gz, and OUT_DIR/bpe-variants/expected-chkhsh.txt: the hash the converter prints for each variant.

Also writes OUT_DIR/bpe-llama-hf/: a Mistral checkpoint with a small SentencePiece-style tokenizer.json written
here (the converter's LlamaHfVocab path).

Needs Debian's python3-numpy and python3-sentencepiece (for make_checkpoints.py's helpers); --convert also needs
python3-torch (the shared wrapper's README) and Node.js with the npm package tokenizers 0.23.2 on NODE_PATH
(`npm install tokenizers@0.23.2` in a scratch folder, NODE_PATH=<it>/node_modules).
"""
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_checkpoints import config_for, tensor_bytes, weights, write_safetensors  # noqa: E402

CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001F680 (normal) \U0001F636\u200d\U0001F32B\ufe0f (multiple emojis '
          'concatenated) \u2705 \U0001F999\U0001F999 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 '
          '\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\U0001F601 '
          '?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= '
          '\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 '
          '\'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll '
          'make it, \'D you like some tea? We\'Ve a\'lL')


def byte_level(text):
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    return "".join(table[b] for b in text.encode("utf-8"))


def read_gguf_vocab(path):
    """tokens, token types, merges and the u32 keys of a vocabulary-only GGUF (stdlib only)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF"
    pos = 4
    _version, _tensors, kvs = take("I"), take("Q"), take("Q")
    out = {}
    for _ in range(kvs):
        key = string()
        out[key] = value(take("I"))
    return out


def prune(kv, keep_text):
    """tokenizer.json's model vocabulary, merges and added tokens for the tokens needed by `keep_text`."""
    tokens, types, merges = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"], kv["tokenizer.ggml.merges"]
    vocab, added = {}, []
    for i, (tok, typ) in enumerate(zip(tokens, types)):
        if typ == 1 and tok in keep_text:
            vocab[tok] = i
        elif typ in (3, 4):
            # Added tokens sit in the model vocabulary too, at their real ids, so the tokenizers library gives
            # them those ids although the pruned vocabulary is short.
            vocab[tok] = i
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": typ == 4, "special": typ == 3})
    kept = []
    for m in merges:
        a, b = m.split(" ")
        if a in vocab and b in vocab and a + b in vocab and (a + b) in keep_text:
            kept.append(m)
    return vocab, kept, added


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def template(bos, bos_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


DEEPSEEK_BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
DEEPSEEK_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"

# Each case: the vocabulary file, the architecture and shapes (make_checkpoints.py's fields), the real model's
# pipeline, tokenizer_config.json, extra added tokens, and the converter outtypes to make.
CASES = {
    # deepseek-coder-6.7b-base: LlamaForCausalLM, LlamaTokenizerFast (BOS from add_bos_token), digits split
    # singly, non-ASCII special tokens (decode round trip, does_token_look_special's fullwidth bars).
    "bpe-deepseek-coder": dict(
        vocab="ggml-vocab-deepseek-coder.gguf", arch="LlamaForCausalLM", model_type="llama", hidden=32, ffn=32,
        layers=1, heads=2, kv_heads=1, head_dim=16, dtype="F16", tied=True,
        pipeline=dict(normalizer=None,
                      pre_tokenizer={"type": "Sequence", "pretokenizers": [
                          split("[\r\n]"), split("\\s?\\p{L}+"), split("\\s?\\p{P}+"), split("[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"),
                          {"type": "Digits", "individual_digits": True}, BYTE_LEVEL_NO_REGEX]},
                      post_processor=template(DEEPSEEK_BOS, 32013)),
        tokenizer_config={"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": False,
                          "bos_token": {"__type": "AddedToken", "content": DEEPSEEK_BOS, "lstrip": False,
                                        "normalized": True, "rstrip": False, "single_word": False},
                          "eos_token": {"__type": "AddedToken", "content": DEEPSEEK_EOS, "lstrip": False,
                                        "normalized": True, "rstrip": False, "single_word": False},
                          "pad_token": None, "unk_token": None, "clean_up_tokenization_spaces": False,
                          "legacy": True, "model_max_length": 16384,
                          "chat_template": "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"},
        config_update={"bos_token_id": 32013, "eos_token_id": 32014},
        outtypes=["f16", "q8_0"]),
    # GPT-2's own tokenizer under Qwen2ForCausalLM (Qwen2TokenizerFast: <|endoftext|> as unk, eos and pad), with
    # three added tokens past the vocabulary (two not special and not normalized: the decode round trip), a
    # padded vocab_size, and the pair format of merges.
    "bpe-gpt2-qwen2": dict(
        vocab="ggml-vocab-gpt-2.gguf", arch="Qwen2ForCausalLM", model_type="qwen2", hidden=16, ffn=16,
        layers=1, heads=1, kv_heads=1, head_dim=16, dtype="BF16", tied=True, vocab_size=50304, merge_pairs=True,
        pipeline=dict(normalizer=None, pre_tokenizer=BYTE_LEVEL,
                      post_processor={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                                      "use_regex": True}),
        extra_added=[{"id": 50257, "content": "<tool_call>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": False},
                     {"id": 50258, "content": "<|im_start|>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True},
                     # All in the byte-level alphabet: whether decode() passes it through the decoder shows.
                     {"id": 50259, "content": "\u0120tool", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": False}],
        tokenizer_config={"tokenizer_class": "Qwen2Tokenizer", "errors": "replace", "model_max_length": 1024,
                          "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                          "unk_token": None, "clean_up_tokenization_spaces": False,
                          "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"},
        config_update={"bos_token_id": 50256, "eos_token_id": 50256},
        outtypes=["auto"]),
    # StarCoder's tokenizer under Phi3ForCausalLM with tokenizer_class GPT2Tokenizer (the converter's Phi-4
    # path): specials inside the model vocabulary, digits split singly before GPT-2's own split. (Not named
    # "phi3": llama.cpp looks "</s>" up in any vocabulary of a model so named, and this one has none.)
    "bpe-starcoder-phi": dict(
        vocab="ggml-vocab-starcoder.gguf", arch="Phi3ForCausalLM", model_type="phi3", hidden=16, ffn=16,
        layers=1, heads=1, kv_heads=1, head_dim=16, dtype="F32", tied=True,
        pipeline=dict(normalizer=None,
                      pre_tokenizer={"type": "Sequence", "pretokenizers": [
                          {"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
                      post_processor={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                      "use_regex": True}),
        tokenizer_config={"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "model_max_length": 8192,
                          "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                          "clean_up_tokenization_spaces": True},
        config_update={"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": None},
        outtypes=["f16"]),
}

# Pipelines of models whose vocabularies are not at hand, on bpe-gpt2-qwen2's vocabulary: no known hash, so the
# converter refuses them and prints its hash, which must be ours.
VARIANTS = {
    # Llama 3: its split, ignore_merges, a BOS template (PreTrainedTokenizerFast keeps tokenizer.json's).
    "llama3": dict(pipeline=dict(normalizer=None,
                                 pre_tokenizer={"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), BYTE_LEVEL_NO_REGEX]},
                                 post_processor={"type": "Sequence", "processors": [
                                     {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                                     template("<|endoftext|>", 50256)]}),
                   ignore_merges=True, tokenizer_class="PreTrainedTokenizerFast"),
    # Qwen2: NFC, its split.
    "qwen2": dict(pipeline=dict(normalizer={"type": "NFC"},
                                pre_tokenizer={"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), BYTE_LEVEL_NO_REGEX]},
                                post_processor=None),
                  tokenizer_class="Qwen2Tokenizer"),
    # The other Split behaviours, a String pattern, inverted matches, contiguous digits, a prefix space, a
    # Roberta post-processor.
    "behaviours": dict(pipeline=dict(normalizer={"type": "Sequence", "normalizers": [{"type": "NFKC"}]},
                                     pre_tokenizer={"type": "Sequence", "pretokenizers": [
                                         {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
                                         {"type": "Split", "pattern": {"Regex": "[.!?]+"}, "behavior": "MergedWithPrevious", "invert": False},
                                         {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Contiguous", "invert": True},
                                         {"type": "Split", "pattern": {"String": "="}, "behavior": "Removed", "invert": False},
                                         {"type": "Digits", "individual_digits": False},
                                         {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]},
                                     post_processor={"type": "RobertaProcessing", "sep": ["<|endoftext|>", 50256],
                                                     "cls": ["<|endoftext|>", 50256], "trim_offsets": True,
                                                     "add_prefix_space": True}),
                       tokenizer_class="PreTrainedTokenizerFast"),
    # LlamaTokenizerFast rebuilds the post-processor: add_bos_token null (no BOS), add_eos_token true (EOS).
    "llama-class-eos": dict(pipeline=dict(normalizer=None, pre_tokenizer=BYTE_LEVEL, post_processor=None),
                            tokenizer_config={"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": None,
                                              "add_eos_token": True, "bos_token": "<|endoftext|>",
                                              "eos_token": "<|endoftext|>", "unk_token": None,
                                              "clean_up_tokenization_spaces": False}),
}


def sentencepiece_style_tokenizer():
    """A small SentencePiece-style BPE tokenizer.json (byte fallback, a Sequence decoder: what gguf-py's LlamaHfVocab
    reads), written here: <unk> <s> </s>, the 256 byte tokens, a few pieces and the merges that make them, and two
    added tokens past the vocabulary (one special)."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges = []
    for word in ["\u2581the", "\u2581quick", "\u2581brown", "\u2581fox", "ing", "\u2581a"]:
        piece = word[0]
        vocab.setdefault(piece, len(vocab))
        for c in word[1:]:
            vocab.setdefault(c, len(vocab))
            if piece + c not in vocab:
                merges.append(f"{piece} {c}")
                vocab[piece + c] = len(vocab)
            piece += c
    n = len(vocab)
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    added = [dict(special, id=0, content="<unk>"), dict(special, id=1, content="<s>"), dict(special, id=2, content="</s>"),
             dict(special, id=n, content="<|im_start|>"),
             dict(special, id=n + 1, content="<tool>", special=False, normalized=False)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": template("<s>", 1),
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }, n + 2


def low_entropy_weights(case, rng):
    """make_checkpoints.py's tensors with values from a small set, so the safetensors file compresses."""
    out = []
    for name, v in weights(case, rng):
        # The vocabulary-sized matrices (most of the bytes) in steps of 1/16: nearly all zero.
        step = 16 if name in ("model.embed_tokens.weight", "lm_head.weight") else 64
        out.append((name, np.asarray(np.round(v * step) / step, dtype=np.float32)))
    return out


def tokenizer_json(kv, pipeline, extra_added=(), merge_pairs=False, ignore_merges=False):
    keep = byte_level(CHKTXT) + byte_level(unicodedata.normalize("NFKC", CHKTXT))
    vocab, merges, added = prune(kv, keep)
    # Extra added tokens sit in the model vocabulary too: over a vocabulary whose ids are not 0..n-1 (pruned),
    # versions of the tokenizers library number new added tokens differently.
    for token in extra_added:
        vocab[token["content"]] = token["id"]
    added = added + list(extra_added)
    if merge_pairs:
        merges = [m.split(" ") for m in merges]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": pipeline["normalizer"], "pre_tokenizer": pipeline["pre_tokenizer"],
        "post_processor": pipeline["post_processor"], "decoder": DECODER,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    }


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)


def gzip_file(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path + ".gz", "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    os.remove(path)


def make_case(out_dir, vocab_dir, name, case):
    kv = read_gguf_vocab(os.path.join(vocab_dir, case["vocab"]))
    case = dict(case)
    case.setdefault("vocab_size", len(kv["tokenizer.ggml.tokens"]))
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, name)))
    tensors = [(n, case["dtype"], v.shape, tensor_bytes(v, case["dtype"])) for n, v in low_entropy_weights(case, rng)]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    gzip_file(os.path.join(folder, "model.safetensors"))
    config = config_for(case)
    config.update(case.get("config_update", {}))
    write_json(os.path.join(folder, "config.json"), config)
    write_json(os.path.join(folder, "tokenizer_config.json"), case["tokenizer_config"])
    write_json(os.path.join(folder, "tokenizer.json"),
               tokenizer_json(kv, case["pipeline"], case.get("extra_added", ()), case.get("merge_pairs", False)))
    return kv


def make_llama_hf(out_dir):
    """bpe-llama-hf: MistralForCausalLM with the SentencePiece-style tokenizer.json and no tokenizer.model."""
    tokenizer, size = sentencepiece_style_tokenizer()
    case = dict(arch="MistralForCausalLM", model_type="mistral", hidden=32, ffn=32, layers=1, heads=2, kv_heads=1,
                head_dim=16, dtype="F16", tied=True, vocab_size=size)
    folder = os.path.join(out_dir, "bpe-llama-hf")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    tensors = [(n, case["dtype"], v.shape, tensor_bytes(v, case["dtype"])) for n, v in low_entropy_weights(case, rng)]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    gzip_file(os.path.join(folder, "model.safetensors"))
    write_json(os.path.join(folder, "config.json"), config_for(case))
    write_json(os.path.join(folder, "tokenizer.json"), tokenizer)
    write_json(os.path.join(folder, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
                "additional_special_tokens": ["<|im_start|>"], "clean_up_tokenization_spaces": False,
                "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}</s>{% endfor %}"})


def make_variants(out_dir, gpt2_kv):
    folder = os.path.join(out_dir, "bpe-variants")
    os.makedirs(folder, exist_ok=True)
    for name, variant in VARIANTS.items():
        write_json(os.path.join(folder, f"{name}.tokenizer.json"),
                   tokenizer_json(gpt2_kv, variant["pipeline"], ignore_merges=variant.get("ignore_merges", False)))
        write_json(os.path.join(folder, f"{name}.tokenizer_config.json"),
                   variant.get("tokenizer_config") or {"tokenizer_class": variant["tokenizer_class"],
                                                       "eos_token": "<|endoftext|>",
                                                       "clean_up_tokenization_spaces": False})


def run_converter(hfref, llama_cpp, folder, args):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_shim"))
    return subprocess.run(["/usr/bin/python3", os.path.join(hfref, "convert.py"), llama_cpp, folder] + args,
                          env=env, capture_output=True, text=True)


def unpacked_copy(folder):
    """A temporary copy of a case folder with model.safetensors unpacked (the converter reads it so)."""
    tmp = tempfile.mkdtemp()
    copy = os.path.join(tmp, os.path.basename(folder))
    shutil.copytree(folder, copy)
    with gzip.open(os.path.join(copy, "model.safetensors.gz"), "rb") as f, \
            open(os.path.join(copy, "model.safetensors"), "wb") as out:
        out.write(f.read())
    os.remove(os.path.join(copy, "model.safetensors.gz"))
    return tmp, copy


def convert(out_dir, hfref, llama_cpp):
    for name, case in list(CASES.items()) + [("bpe-llama-hf", {"outtypes": ["f16"]})]:
        tmp, copy = unpacked_copy(os.path.join(out_dir, name))
        for outtype in case["outtypes"]:
            target = os.path.join(out_dir, f"{name}.{outtype}.gguf")
            run = run_converter(hfref, llama_cpp, copy, ["--outtype", outtype, "--outfile", target])
            if run.returncode != 0:
                sys.exit(f"{name} {outtype}: converter failed\n{run.stderr[-3000:]}")
            gzip_file(target)
        shutil.rmtree(tmp)
    lines = []
    for name in VARIANTS:
        tmp, copy = unpacked_copy(os.path.join(out_dir, "bpe-gpt2-qwen2"))
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(out_dir, "bpe-variants", f"{name}.{file}"), os.path.join(copy, file))
        run = run_converter(hfref, llama_cpp, copy, ["--outtype", "f16", "--outfile", os.path.join(tmp, "x.gguf")])
        found = re.search(r"chkhsh:\s+([0-9a-f]{64})", run.stderr)
        if run.returncode == 0 or not found or "pre-tokenizer was not recognized" not in run.stderr:
            sys.exit(f"variant {name}: expected the converter to refuse an unknown hash\n{run.stderr[-3000:]}")
        lines.append(f"{name} {found.group(1)}\n")
        shutil.rmtree(tmp)
    with open(os.path.join(out_dir, "bpe-variants", "expected-chkhsh.txt"), "w") as f:
        f.writelines(lines)


def main():
    out_dir, vocab_dir = sys.argv[1], sys.argv[2]
    gpt2_kv = None
    for name, case in CASES.items():
        if not os.path.exists(os.path.join(vocab_dir, case["vocab"])):
            print(f"skipping {name}: no {case['vocab']} in {vocab_dir}")
            continue
        kv = make_case(out_dir, vocab_dir, name, case)
        if case["vocab"] == "ggml-vocab-gpt-2.gguf":
            gpt2_kv = kv
    make_variants(out_dir, gpt2_kv)
    make_llama_hf(out_dir)
    if len(sys.argv) > 3 and sys.argv[3] == "--convert":
        convert(out_dir, sys.argv[4], sys.argv[5])


if __name__ == "__main__":
    main()
